import pytest
from packaging.version import Version

from convbn_compat.core.versions import (
    is_prerelease_build,
    release_of,
    torch_release,
    torch_version_at_least,
)

# Real torch.__version__ strings seen in the wild, and what they count as.
REAL_VERSIONS = [
    ("2.2.2", "2.2.2", "2.2", False),
    ("2.2.2+cu121", "2.2.2", "2.2", False),
    ("2.4.1+cpu", "2.4.1", "2.4", False),
    ("2.5.1+cu124", "2.5.1", "2.5", False),
    ("2.11.0+cu130", "2.11.0", "2.11", False),
    ("2.15.0+cu132", "2.15.0", "2.15", False),
    ("2.6.0.dev20241001+cu124", "2.6.0", "2.6", True),
    ("2.16.0.dev20261120+cpu", "2.16.0", "2.16", True),
    ("2.5.0a0+git9f17037", "2.5.0", "2.5", True),
    ("2.4.0a0+3bcc3cddb5.nv24.07", "2.4.0", "2.4", True),
    ("2.3.0rc12", "2.3.0", "2.3", True),
]


@pytest.mark.parametrize(("raw", "release", "key", "pre"), REAL_VERSIONS)
def test_real_versions(raw, release, key, pre):
    assert torch_release(raw) == Version(release)
    assert release_of(raw) == key
    assert is_prerelease_build(raw) is pre


@pytest.mark.parametrize(
    ("minimum", "version", "expected"),
    [
        ("2.4", "2.4.1+cpu", True),
        ("2.4.1", "2.4.0", False),
        ("2.5", "2.4.1+cu121", False),
        # A nightly counts as the release it leads to (documented in versions.py).
        ("2.6", "2.6.0.dev20241001+cu124", True),
        ("2.6.1", "2.6.0.dev20241001+cu124", False),
        ("2.5", "2.5.0a0+git9f17037", True),
        ("2.10", "2.9.1", False),  # numeric, not lexical, comparison
        ("2.9", "2.10.0", True),
    ],
)
def test_at_least(minimum, version, expected):
    assert torch_version_at_least(minimum, version) is expected


def test_garbage_version_names_itself():
    with pytest.raises(ValueError, match="'two point four' is not a torch version"):
        torch_release("two point four")
