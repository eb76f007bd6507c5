"""What a tool call hands back to the model: brief by default, everything on request, and a
daemon error as a tool error (message and kind) — the bridge itself never fails a call.

Brief means each row cut to the fields that say what it is (id, title, status…) and where it
stands; nested rows (a plan's phases and their tasks, a page's items) are kept, cut the same
way. Every core tool takes `full: true` for the rows as the daemon returns them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from client.errors import ClientError, RemoteError

# The fields that identify a row and say where it stands, whatever its table.
BRIEF_FIELDS = frozenset(
    {
        "id", "name", "title", "kind", "type", "status", "priority", "blocked", "blocked_reason",
        "project_id", "plan_id", "phase_id", "task_id", "parent_id", "position",
        "claimed_by", "lease_until", "due_at", "defer_until", "unblocks", "open_subtasks",
        "snippet", "score", "path", "tags", "seq", "topic", "ts", "data",
        "last_action", "next_steps", "created_at",
    }
)  # fmt: skip

FULL_PARAM = {"type": "boolean", "description": "all fields"}

_encoder = msgspec.json.Encoder()


def brief(value: Any) -> Any:
    """`value` with every row (a dict with an `id`) cut to BRIEF_FIELDS and its child rows."""
    if isinstance(value, list):
        return [brief(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "id" not in value:
        return {key: brief(item) for key, item in value.items()}
    return {key: brief(item) for key, item in value.items() if key in BRIEF_FIELDS or _rows(item)}


def _rows(value: Any) -> bool:
    """A list of rows (a plan's phases, a phase's tasks): kept inside a brief row."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and "id" in item for item in value)
    )


def to_text(value: Any) -> str:
    """Compact JSON (text as it is): every character of an answer is paid for in context."""
    return value if isinstance(value, str) else _encoder.encode(value).decode()


def error_body(error: BaseException) -> dict[str, Any]:
    """A failed call as the model sees it: the daemon's message, kind and code, or the
    bridge's own reason."""
    if isinstance(error, RemoteError):
        body: dict[str, Any] = {"error": error.message, "kind": error.kind or "error"}
        body["code"] = error.code
        extra = {k: v for k, v in error.data.items() if k != "kind"}
        if extra:
            body["data"] = extra
        return body
    if isinstance(error, ClientError):
        return {"error": str(error), "kind": error.kind}
    return {"error": f"{type(error).__name__}: {error}", "kind": "internal"}
