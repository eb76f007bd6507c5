"""Where a document belongs: a project, and within it a plan, phase, task or session.

The narrowest scope given implies the wider ones (a task's plan and project, a session's
project and plan), filled in inside the write; a wider one given that contradicts it is
refused. A document below a plan carries the plan, so archiving the plan archives it in one
statement (`set_archived`, the hook work tracking calls inside its archive transaction).
"""

from __future__ import annotations

from typing import Any

from daemon.rpc.errors import InvalidParams, NotFound
from daemon.store.batch import Tx

# What each scope says about the wider ones: (our column, its table, its columns that are
# ours too).
_IMPLIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("task_id", "tasks", ("phase_id", "plan_id", "project_id")),
    ("phase_id", "phases", ("plan_id",)),
    ("session_id", "sessions", ("plan_id", "project_id")),
    ("plan_id", "plans", ("project_id", "archived")),
)
_PARAM = {"task_id": "task", "phase_id": "phase", "session_id": "session", "plan_id": "plan"}


def complete(tx: Tx, values: dict[str, Any]) -> None:
    """Fill `values`' wider scopes from its narrower ones (and `archived` from the plan);
    refuse a contradiction."""
    for column, table, implied in _IMPLIES:
        row_id = values.get(column)
        if row_id is None:
            continue
        found = tx.conn.execute(
            f"SELECT {', '.join(implied)} FROM {table} WHERE id = ?", (row_id,)
        ).fetchone()
        if found is None:
            raise NotFound(f"no {_PARAM[column]} with id {row_id}", field=_PARAM[column])
        for ours, value in zip(implied, found, strict=True):
            if value is None:
                continue
            if ours == "archived":
                values["archived"] = bool(value)
            elif values.get(ours) is None:
                values[ours] = value
            elif values[ours] != value:
                raise InvalidParams(
                    f"Invalid params: {_PARAM[column]} {row_id} belongs to "
                    f"{ours.removesuffix('_id')} {value}, not {values[ours]}",
                    field=ours.removesuffix("_id"),
                )


def set_archived(tx: Tx, plan_id: int, archived: bool) -> int:
    """Every document of a plan in or out of search with it (the FTS triggers follow the
    flag); returns how many changed. Called inside work tracking's archive transaction."""
    cursor = tx.conn.execute(
        "UPDATE documents SET archived = ? WHERE plan_id = ? AND archived != ?",
        (int(archived), plan_id, int(archived)),
    )
    return cursor.rowcount
