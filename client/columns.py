"""Which fields `pm <noun> list` shows for each noun, and how wide (characters; None: as wide
as its widest value). The one hand-written part of the generated commands: a noun missing here
shows its id and its first few fields, so a new one works before it gets a line.

Fields ending in `_at` are times, shown as "3 days ago" (`--json` gives them exactly).
"""

from __future__ import annotations

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    Columns = tuple[tuple[str, int | None], ...]

COLUMNS: dict[str, Columns] = {
    "jobs": (
        ("id", None),
        ("kind", 24),
        ("status", 10),
        ("source", 7),
        ("started_at", 16),
        ("error", 48),
    ),
}

DEFAULT_COUNT = 6  # fields shown for a noun without a line above, id first
DEFAULT_WIDTH = 40
NOT_SHOWN_BY_DEFAULT = frozenset({"uid", "version", "created_at"})


def columns(noun: str, fields: list[list[str]]) -> Columns:
    """The noun's columns, or its id and first scalar fields (then `updated_at`)."""
    if noun in COLUMNS:
        return COLUMNS[noun]
    names = [name for name, kind in fields if kind == "scalar" and name not in NOT_SHOWN_BY_DEFAULT]
    chosen = [n for n in names if n != "updated_at"][:DEFAULT_COUNT]
    if "updated_at" in names:
        chosen.append("updated_at")
    return tuple((name, None if name == "id" else DEFAULT_WIDTH) for name in chosen)
