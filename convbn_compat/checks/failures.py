"""What a record keeps of an exception: the innermost cause behind Dynamo's and
Inductor's wrappers, its first line, and where it happened.

``frames`` keeps the last frames that point into torch, and always the innermost frame
in the pass's own file, as ``file:line in function: source``: a new error arrives with
its location, and the pass's frame (function and source text, which hold across
releases better than line numbers) says which of its lines failed.
"""

from __future__ import annotations

import traceback

__all__ = ["PASS_FILE", "describe", "first_line", "frames", "pass_frame", "root_cause"]

PASS_FILE = "fx_passes/efficient_conv_bn_eval.py"
TORCH_FRAMES = 4
"""How many of the innermost frames inside torch a record keeps."""


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception behind Dynamo's and Inductor's wrappers."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "inner_exception", None) or exc.__cause__
        if inner is None:
            break
        exc = inner
    return exc


def first_line(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


def _torch_path(filename: str) -> str | None:
    """``torch/_inductor/...py`` for a file inside torch, else None."""
    normal = filename.replace("\\\\", "/")
    marker = "/torch/"
    return "torch/" + normal.rsplit(marker, 1)[1] if marker in normal else None


def _text(frame: traceback.FrameSummary, path: str) -> str:
    return f"{path}:{frame.lineno} in {frame.name}: {(frame.line or '').strip()}"[:300]


def frames(exc: BaseException) -> list[str]:
    """The innermost frames inside torch of the root cause (the pass's own innermost
    frame always among them), outermost first."""
    cause = root_cause(exc)
    stack = traceback.extract_tb(cause.__traceback__)
    inside = [(f, p) for f in stack if (p := _torch_path(f.filename))]
    kept = inside[-TORCH_FRAMES:]
    own = [fp for fp in inside if fp[1].endswith(PASS_FILE)]
    if own and own[-1] not in kept:
        kept = [own[-1], *kept]
    return [_text(f, p) for f, p in kept]


def pass_frame(exc: BaseException) -> tuple[str, str] | None:
    """(function, source line) of the innermost frame in the pass's own file: where the
    pass itself failed, in words that hold across releases. None where it did not."""
    stack = traceback.extract_tb(root_cause(exc).__traceback__)
    own = [f for f in stack if f.filename.replace("\\\\", "/").endswith(PASS_FILE)]
    return (own[-1].name, (own[-1].line or "").strip()) if own else None


def describe(exc: BaseException) -> str:
    """One line for a record's message: the root cause's first line, where in the pass
    it was raised (function and source text), and the wrapper it came through."""
    cause = root_cause(exc)
    text = first_line(cause)
    own = pass_frame(exc)
    if own is not None:
        text += f" in {own[0]}: {own[1]}"
    if cause is not exc:
        text += f" (raised through {type(exc).__name__})"
    return text[:2000]
