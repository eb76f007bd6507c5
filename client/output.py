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
# and isolates that reorder what is shown ("Trojan Source").
_UNSAFE = [
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
]
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
_SHOWN = {c: _NAMED.get(c, f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _UNSAFE}
# In JSON text these can only stand inside strings, where \\uXXXX is the same value.
_JSON_SAFE = {c: f"\\u{c:04x}" for c in _UNSAFE if c >= 0x7F}

_json_stderr = False  # `pm --json`: every message on stderr is a JSON object too


def visible(text: str) -> str:
    """`text` with every character a terminal would act on shown as an escape (\\x1b, \\n)."""
    return text if text.isprintable() else text.translate(_SHOWN)


def colour_enabled() -> bool:
    return not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def paint(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if colour_enabled() else text


def json_text(value: Any, *, pretty: bool = False) -> str:
    """Exact JSON, with nothing in it a terminal would act on (those characters escaped)."""
    import json

    if pretty:
        text = json.dumps(value, indent=2, ensure_ascii=False)
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if text.isascii() else text.translate(_JSON_SAFE)


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


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    rows = [[visible(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

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


def relative_time(iso: str | None, now: float | None = None) -> str:
    """ "3 days ago" for an ISO 8601 UTC timestamp; "never" for none."""
    if not iso:
        return "never"
    import time
    from datetime import datetime

    try:
        then = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
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
