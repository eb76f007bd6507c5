"""UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, the version, the variant, random bits.

Every domain row carries one as `uid`: integer ids are per database and collide when rows move
between machines (export, merge, sync); a uid never does, and sorts by creation time.
"""

from __future__ import annotations

import os
import random
import time
from datetime import datetime

# Unique, not secret: a generator of our own, seeded from os.urandom (and again in a forked
# child, so parent and child never share a sequence), instead of a getrandom() system call
# per row; nobody else's random.seed() can touch it.
_random = random.Random()  # noqa: S311 - uniqueness, not secrecy
os.register_at_fork(after_in_child=_random.seed)


def uuid7(ms: int | None = None) -> str:
    """A new UUIDv7, for now or for the Unix millisecond `ms`."""
    if ms is None:
        ms = time.time_ns() // 1_000_000
    rand = _random.getrandbits(80)
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & 0x3FFF_FFFF_FFFF_FFFF
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def uuid7_at(moment: str | None) -> str:
    """A UUIDv7 whose time is `moment` (ISO 8601, as rows store their times), for rows made
    before they had a uid; now when the time cannot be read."""
    try:
        parsed = datetime.fromisoformat(moment or "")
    except ValueError:
        return uuid7()
    return uuid7(int(parsed.timestamp() * 1000))
