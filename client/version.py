"""This install's version, and how versions compare, for the CLI's fast path (which must not
import the daemon package). Equal to daemon.__version__: tests/test_packaging.py checks it."""

from __future__ import annotations

__version__ = "0.1.0"


def release(version: object) -> tuple[int, ...] | None:
    """(0, 1, 0) for "0.1.0" or "0.1.0.dev3+g12ab"; None for what is not a version."""
    parts: list[int] = []
    for piece in str(version).split("."):
        digits = piece[: len(piece) - len(piece.lstrip("0123456789"))]
        if not digits:
            break
        parts.append(int(digits))
        if digits != piece:
            break
    return tuple(parts) or None


def is_older(theirs: object, mine: str = __version__) -> bool:
    """Is `theirs` an older release than `mine` (this install's, by default)?"""
    a, b = release(theirs), release(mine)
    return a is not None and b is not None and a < b
