"""How the CLI prints: data on stdout, messages on stderr, colour only for a person."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any


def colour_enabled() -> bool:
    return not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def paint(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if colour_enabled() else text


def print_json(value: Any) -> None:
    """Stable machine output: pretty for a person, one line for a pipe."""
    if sys.stdout.isatty():
        text = json.dumps(value, indent=2, ensure_ascii=False)
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    sys.stdout.write(text + "\n")


def show(value: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    """Machine output with --json, the person's rendering otherwise."""
    if as_json:
        print_json(value)
    else:
        sys.stdout.write(render(value))


def compact(value: Any, width: int) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [paint(line(headers), "1"), *(line(r) for r in rows)]
    return "\n".join(out) + "\n"


def error(message: str) -> None:
    print(f"pm: {message}", file=sys.stderr)


def relative_time(iso: str | None, now: float | None = None) -> str:
    """ "3 days ago" for an ISO 8601 UTC timestamp; "never" for none."""
    if not iso:
        return "never"
    import time
    from datetime import datetime

    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return iso
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
        sys.stderr.write(f"\r[{bar}] {pct:3d}% {message[:50]:<50}")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            sys.stderr.write("\r" + " " * (self.width + 60) + "\r")
            sys.stderr.flush()
