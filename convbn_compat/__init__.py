"""convbn-compat: Inductor's efficient conv-bn eval pass, checked across torch releases.

The shim (``shim/``: ``inductor``, ``tracing``, ``devices``, ``paths``) is the one place
that knows how releases differ; tests and sessions speak only its language.
"""

__version__ = "0.2.0"

from .core.outcomes import Outcome, Unsupported
from .core.releases import RELEASES, ConfigError, Release
from .core.versions import release_of, torch_version_at_least

__all__ = [
    "RELEASES",
    "ConfigError",
    "Outcome",
    "Release",
    "Unsupported",
    "__version__",
    "release_of",
    "torch_version_at_least",
]
