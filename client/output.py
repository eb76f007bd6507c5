"""How the CLI prints: data on stdout, messages on stderr, colour only for a person."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
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
