"""Timestamps as they appear on the wire and in the database: ISO 8601, UTC, microseconds, "Z".

Fixed width, so they sort as strings (the database compares them that way).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

_second_prefix: tuple[int, str] = (-1, "")  # the formatted current second, reused


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> str:
    """Now, formatted; ~3x cheaper than strftime because the second changes rarely."""
    global _second_prefix  # noqa: PLW0603 - a one-entry cache; swapping a tuple is atomic
    now = time.time()
    second = int(now)
    cached_second, prefix = _second_prefix
    if cached_second != second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_prefix = (second, prefix)
    micros = min(int((now - second) * 1_000_000), 999_999)
    return f"{prefix}.{micros:06d}Z"
