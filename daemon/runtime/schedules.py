"""Schedules as the config writes them, and what the scheduler reports about itself.

"90s", "30m", "6h", "1d" are intervals; "daily 03:00" is a local wall-clock time; "off" runs
only when asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from datetime import time as dtime

import msgspec

from daemon.domain.jobs.service import Progress


@dataclass(frozen=True)
class Interval:
    seconds: float

    def __str__(self) -> str:
        return f"every {self.seconds:g} s"


@dataclass(frozen=True)
class Daily:
    hour: int
    minute: int

    def __str__(self) -> str:
        return f"daily {self.hour:02d}:{self.minute:02d}"


Schedule = Interval | Daily | None  # None: off (run only when asked)

_SCHEDULE = re.compile(
    r"^(?:(?P<off>off)|(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[smhd])"
    r"|daily\s+(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d))$"
)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WORDS = re.compile(r"^(\d+(?:\.\d+)?)\s*(sec|second|min|minute|hour|day)s?$")
HOW = (
    'write an interval as a number and a unit (s, m, h or d): "90s", "30m", "6h", "1d"; '
    'a local time of day as "daily 03:00"; or "off"'
)


def parse_schedule(text: str) -> Schedule:
    """A schedule: "6h", "30m", "90s", "1d", "daily 03:00" (local time) or "off" (0 is off)."""
    clean = text.strip()
    match = _SCHEDULE.match(clean)
    if match is None:
        raise ValueError(f"not a schedule: {text!r}; {_hint(clean)}")
    if match["off"]:
        return None
    if match["n"] is not None:
        seconds = float(match["n"]) * _UNIT[match["unit"]]
        return Interval(seconds) if seconds > 0 else None
    return Daily(int(match["h"]), int(match["m"]))


def _hint(text: str) -> str:
    """What the user probably meant, in words, then how a schedule is written."""
    words = _WORDS.match(text.lower())
    if words:
        return f'write it as "{words[1]}{words[2][0]}"'
    if text.replace(".", "", 1).isdigit():
        return f'a number needs a unit (s, m, h or d), as in "{text}h"'
    if text.lower().startswith("daily"):
        return (
            'a daily slot is "daily HH:MM", a local time in 24-hour form from "daily 00:00" '
            'to "daily 23:59"'
        )
    return HOW


def local_now() -> datetime:
    return datetime.now().astimezone()


def next_daily(daily: Daily, after: datetime, tz: tzinfo | None) -> datetime:
    """The first daily slot strictly after `after`, in `tz` (None: system local time)."""
    local = after.astimezone(tz)
    at = dtime(daily.hour, daily.minute)
    for days in range(3):
        day = local.date() + timedelta(days=days)
        if tz is None:
            candidate = datetime.combine(day, at).astimezone()  # the system's rules (DST)
        else:
            candidate = datetime.combine(day, at, tzinfo=tz)
        if candidate > after:
            return candidate
    raise AssertionError("no daily slot within three days")  # pragma: no cover


# --- what the scheduler reports ----------------------------------------------------------
class KindStatus(msgspec.Struct, kw_only=True):
    kind: str
    schedule: str
    priority: int
    next_run_at: str | None  # wall clock estimate; null when off


class RunStatus(msgspec.Struct, kw_only=True):
    kind: str
    job_id: int | None
    trigger: str
    attempt: int
    progress: Progress | None


class SchedulerStatus(msgspec.Struct, kw_only=True):
    concurrency: int
    running: list[RunStatus]
    waiting: int
    slept_s: float
    kinds: list[KindStatus]
