"""Devices and matmul precision: GPU detection and TF32 control."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["gpu_available", "gpu_required", "gpu_skip_reason", "tf32", "tf32_supported"]


def gpu_available() -> bool:
    import torch

    return torch.cuda.is_available()


def gpu_required() -> bool:
    """``CONVBN_REQUIRE_GPU=1`` turns a missing GPU from a skip into a failure."""
    return os.environ.get("CONVBN_REQUIRE_GPU", "").strip() not in ("", "0")


def gpu_skip_reason() -> str:
    import torch

    if torch.version.cuda is None:
        return f"needs a CUDA build of torch; installed {torch.__version__} is CPU-only"
    return (
        f"needs a CUDA GPU; none visible to torch {torch.__version__} (CUDA {torch.version.cuda})"
    )


def tf32_supported() -> bool:
    """TF32 exists on Ampere (sm_80) and newer; upstream varies it only there."""
    import torch

    return gpu_available() and torch.cuda.get_device_capability()[0] >= 8


def _fp32_precision_api(torch) -> bool:
    # torch 2.9 added per-backend ``fp32_precision`` and deprecated ``allow_tf32``;
    # mixing the two raises in some releases, so use the new one wherever it exists.
    # Remove the allow_tf32 branch when torch>=2.9.
    return hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(
        getattr(torch.backends.cudnn, "conv", None), "fp32_precision"
    )


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """Allow (or forbid) TF32 in CUDA matmuls and cuDNN convolutions within the block."""
    import torch

    if _fp32_precision_api(torch):
        knobs = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
        saved = [k.fp32_precision for k in knobs]
        try:
            for k in knobs:
                k.fp32_precision = "tf32" if enabled else "ieee"
            yield
        finally:
            for k, value in zip(knobs, saved):
                k.fp32_precision = value
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
