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
    "agents": (
        ("id", None),
        ("name", 24),
        ("type", 12),
        ("status", 10),
        ("current_task_id", None),
        ("last_activity_at", 16),
    ),
    "checkpoints": (
        ("id", None),
        ("name", 32),
        ("kind", 10),
        ("git_branch", 20),
        ("created_at", 16),
    ),
    "continue_points": (
        ("id", None),
        ("last_action", 40),
        ("file", 32),
        ("line", None),
        ("agent", 16),
        ("created_at", 16),
    ),
    "deps": (
        ("id", None),
        ("from_type", 6),
        ("from_id", None),
        ("kind", 16),
        ("to_type", 6),
        ("to_id", None),
    ),
    "documents": (
        ("id", None),
        ("kind", 12),
        ("title", 48),
        ("project_id", None),
        ("updated_at", 16),
    ),
    "features": (
        ("id", None),
        ("status", 12),
        ("priority", 8),
        ("name", 40),
        ("completed_tasks", None),
        ("estimated_tasks", None),
    ),
    "jobs": (
        ("id", None),
        ("kind", 24),
        ("status", 10),
        ("source", 7),
        ("started_at", 16),
        ("error", 48),
    ),
    "lineage": (
        ("id", None),
        ("from_agent", 16),
        ("to_agent", 16),
        ("reason", 40),
        ("created_at", 16),
    ),
    "metrics": (("id", None), ("type", 20), ("value", None), ("agent", 16), ("timestamp", 27)),
    "phases": (("id", None), ("plan_id", None), ("position", None), ("status", 11), ("title", 48)),
    "plans": (
        ("id", None),
        ("status", 11),
        ("kind", 10),
        ("priority", 8),
        ("title", 48),
        ("updated_at", 16),
    ),
    "program_projects": (
        ("id", None),
        ("program_id", None),
        ("project_id", None),
        ("linked_by", 16),
    ),
    "programs": (("id", None), ("status", 11), ("priority", 8), ("title", 48), ("updated_at", 16)),
    "requirements": (
        ("id", None),
        ("category", 14),
        ("priority", 8),
        ("description", 56),
        ("validated", None),
    ),
    "session_files": (("id", None), ("session_id", None), ("status", 10), ("path", 60)),
    "sessions": (
        ("id", None),
        ("kind", 12),
        ("status", 10),
        ("agent", 16),
        ("task_description", 40),
        ("started_at", 16),
    ),
    "tasks": (
        ("id", None),
        ("status", 11),
        ("priority", None),
        ("title", 48),
        ("assigned_agent", 16),
        ("updated_at", 16),
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
