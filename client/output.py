"""How the CLI prints: data on stdout, messages on stderr, colour only for a person.

Text that came from outside (a repository's description, a folder's name, a value someone
stored) reaches a person's terminal only through `visible`: an escape sequence in it cannot
retitle the window, recolour the screen or forge a line. `--json` output stays exact JSON.

Standard library only and `json` imported only when used: the fast `pm status` loads this.
"""

from __future__ import annotations

import os
import sys

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

# Characters a terminal acts on rather than shows: C0 controls, DEL, C1 controls (ESC's 8-bit
# twins, CSI among them), the line and paragraph separators, and the bidirectional overrides
# and isolates that reorder what is shown ("Trojan Source"). The tables are built when first
# needed: most text is printable, and every command's start-up counts.
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
_tables: tuple[dict[int, str], dict[int, str]] | None = None


def _unsafe() -> tuple[dict[int, str], dict[int, str]]:
    """(how each unsafe character is shown, its escape inside JSON strings)."""
    global _tables  # noqa: PLW0603 - built once, on first use
    if _tables is None:
        unsafe = [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029,
                  *range(0x202A, 0x202F), *range(0x2066, 0x206A)]  # fmt: skip
        shown = {c: _NAMED.get(c, f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in unsafe}
        # In JSON text these can only stand inside strings, where \\uXXXX is the same value.
        _tables = shown, {c: f"\\u{c:04x}" for c in unsafe if c >= 0x7F}
    return _tables


_json_stderr = False  # `pm --json`: every message on stderr is a JSON object too


def visible(text: str) -> str:
    """`text` with every character a terminal would act on shown as an escape (\\x1b, \\n)."""
    return text if text.isprintable() else text.translate(_unsafe()[0])


def colour_enabled() -> bool:
    return not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def paint(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if colour_enabled() else text


def json_text(value: Any, *, pretty: bool = False) -> str:
    """Exact JSON, with nothing in it a terminal would act on (those characters escaped)."""
    if pretty:
        import json  # for a person at a terminal only: pipes get the fast compact form

        text = json.dumps(value, indent=2, ensure_ascii=False)
    else:
        from client import fastjson

        text = fastjson.dumps(value)
    return text if text.isascii() else text.translate(_unsafe()[1])


def print_json(value: Any) -> None:
    """Stable machine output: pretty for a person, one line for a pipe."""
    sys.stdout.write(json_text(value, pretty=sys.stdout.isatty()) + "\n")


def show(value: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    """Machine output with --json, the person's rendering otherwise."""
    if as_json:
        print_json(value)
    else:
        sys.stdout.write(render(value))


def compact(value: Any, width: int) -> str:
    text = json_text(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def clip(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[: max(width - 1, 0)] + "…"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int | None] = ()
) -> str:
    """Columns as wide as their widest cell, or at most `widths[i]` characters (cut with …)."""
    limits = list(widths) + [None] * (len(headers) - len(widths))
    rows = [
        [clip(visible(cell), limit) for cell, limit in zip(row, limits, strict=True)]
        for row in rows
    ]
    sizes = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            sizes[i] = max(sizes[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, sizes, strict=True)).rstrip()

    out = [paint(line(headers), "1"), *(line(r) for r in rows)]
    return "\n".join(out) + "\n"


def use_json_stderr(on: bool) -> None:
    global _json_stderr  # noqa: PLW0603 - one process, one mode, set once from the flags
    _json_stderr = on


def json_stderr() -> bool:
    return _json_stderr


def error(message: str) -> None:
    """A message for the person on stderr (one JSON object under --json)."""
    if _json_stderr:
        sys.stderr.write(json_text({"message": message}) + "\n")
    else:
        lines = message.split("\n")  # a message may have lines; none may fake one
        sys.stderr.write("pm: " + "\n".join(visible(line) for line in lines) + "\n")


def fail(
    message: str,
    *,
    kind: str,
    exit_code: int,
    code: int | None = None,
    data: Any = None,
    tagged: bool = False,
) -> int:
    """The error a command ends with, on stderr; returns its exit code. Under --json it is
    `{"message", "kind", "exit_code"}` (plus the daemon's `code` and `data` for its errors);
    else the message, `[kind]` after it when `tagged` (the daemon's errors)."""
    if _json_stderr:
        report: dict[str, Any] = {"message": message, "kind": kind, "exit_code": exit_code}
        if code is not None:
            report["code"] = code
        if data:
            report["data"] = data
        sys.stderr.write(json_text(report) + "\n")
    else:
        error(f"{message} [{kind}]" if tagged else message)
    return exit_code


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def epoch_seconds(iso: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 time with a timezone; None if it is not one.

    The daemon's own form (`2026-01-02T03:04:05.123456Z`, or with `+HH:MM`) is read by hand:
    `datetime` costs ~2 ms of start-up, and listings show times. Other forms go to it.
    """
    if len(iso) >= 20 and iso[4] + iso[7] + iso[10] + iso[13] + iso[16] in ("--T::", "-- ::"):
        rest = iso[19:]
        if rest.endswith("Z"):
            fraction, offset = rest[:-1], _offset_seconds("+00:00")
        else:
            fraction, offset = rest[:-6], _offset_seconds(rest[-6:])
        fields = (iso[0:4], iso[5:7], iso[8:10], iso[11:13], iso[14:16], iso[17:19])
        if (
            offset is not None
            and all(_digits(f) for f in fields)
            and (not fraction or (fraction[0] == "." and _digits(fraction[1:])))
        ):
            year, month, day, hour, minute, second = (int(f) for f in fields)
            if 1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60:
                whole = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60
                return whole + second - offset + (float("0" + fraction) if fraction else 0.0)
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp()


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _offset_seconds(zone: str) -> int | None:
    """`+HH:MM` → seconds east of UTC; None when it is not an offset."""
    if len(zone) != 6 or zone[0] not in "+-" or zone[3] != ":":
        return None
    hours, minutes = zone[1:3], zone[4:6]
    if not (_digits(hours) and _digits(minutes)):
        return None
    seconds = int(hours) * 3600 + int(minutes) * 60
    return seconds if zone[0] == "+" else -seconds


def relative_time(iso: str | None, now: float | None = None) -> str:
    """ "3 days ago" for an ISO 8601 UTC timestamp; "never" for none."""
    if not iso:
        return "never"
    import time

    then = epoch_seconds(iso)
    if then is None:
        return visible(iso)
    seconds = (now if now is not None else time.time()) - then
    if seconds < 0:
        return "in the future"
    steps = [
        (60, "just now", None),
        (3600, "minute", 60),
        (86400, "hour", 3600),
        (86400 * 7, "day", 86400),
        (86400 * 30, "week", 86400 * 7),
        (86400 * 365, "month", 86400 * 30),
    ]
    for limit, unit, size in steps:
        if seconds < limit:
            if size is None:
                return unit
            count = int(seconds // size)
            if unit == "day" and count == 1:
                return "yesterday"
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    years = int(seconds // (86400 * 365))
    return f"{years} year{'s' if years != 1 else ''} ago"


class ProgressBar:
    """A one-line bar on stderr, only when stderr is a terminal (never in a pipe or a log)."""

    def __init__(self, width: int = 30) -> None:
        self.enabled = sys.stderr.isatty()
        self.width = width
        self._shown = False

    def update(self, percentage: int | None, message: str) -> None:
        if not self.enabled:
            return
        pct = max(0, min(100, percentage or 0))
        filled = self.width * pct // 100
        bar = "#" * filled + "-" * (self.width - filled)
        sys.stderr.write(f"\r[{bar}] {pct:3d}% {visible(message)[:50]:<50}")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * (self.width + 60) + "\r")
            sys.stderr.flush()
