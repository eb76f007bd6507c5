"""Dense 0-based positions: phases within a plan, top-level steps within a phase, subtasks
within their parent. Inserting at an index, moving and deleting shift the siblings after it so
positions stay 0…n-1 with no gaps; a `position` past the end means "at the end".

The positions are UNIQUE in the schema, and SQLite checks uniqueness row by row during an
UPDATE, so a shift goes through a band far above any real position (`_BAND`) and back.
Siblings' shifts bump no version: a row's position is implied by the created/moved/deleted
event of the row that caused it (the order is the container's, and dense).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from daemon.domain.work.model import Phase, Task
from daemon.store.batch import Tx

_BAND = 1 << 40
# What makes SQL here is one of these (typed, so only code can choose); the ids are parameters.
Ordered = Literal["phases", "tasks"]
Among = Literal["plan_id = ?", "phase_id = ? AND parent_id IS NULL", "parent_id = ?"]


@dataclass(frozen=True)
class Siblings:
    """The rows ordered together: `where` is a constant fragment of this module's own."""

    table: Ordered
    where: Among
    args: tuple[Any, ...]

    def count(self, conn: sqlite3.Connection) -> int:
        """The siblings in order (a row parked for a move is not)."""
        sql = f"SELECT count(*) FROM {self.table} WHERE {self.where} AND position < {_BAND}"
        return int(conn.execute(sql, self.args).fetchone()[0])

    def ids(self, conn: sqlite3.Connection) -> list[int]:
        sql = f"SELECT id FROM {self.table} WHERE {self.where} ORDER BY position"
        return [r[0] for r in conn.execute(sql, self.args)]

    def _shift(self, tx: Tx, start: int, delta: int) -> None:
        """Every sibling at `start` or after moves by `delta`."""
        tx.conn.execute(
            f"UPDATE {self.table} SET position = position + {_BAND}"
            f" WHERE {self.where} AND position >= ? AND position < {_BAND}",
            (*self.args, start),
        )
        tx.conn.execute(
            f"UPDATE {self.table} SET position = position - {_BAND} + ?"
            f" WHERE {self.where} AND position >= {_BAND} AND position < {2 * _BAND}",
            (delta, *self.args),
        )

    def open_at(self, tx: Tx, position: int | None) -> int:
        """Make room at `position` (None or past the end: the end); returns where it is."""
        end = self.count(tx.conn)
        at = end if position is None else min(position, end)
        if at < end:
            self._shift(tx, at, 1)
        return at

    def close_at(self, tx: Tx, position: int) -> None:
        """Close the gap a row left at `position`."""
        self._shift(tx, position + 1, -1)


def park(tx: Tx, table: Ordered, row_id: int) -> None:
    """Take a row out of its siblings' order for a move (a position no sibling has)."""
    tx.conn.execute(f"UPDATE {table} SET position = ? WHERE id = ?", (2 * _BAND + row_id, row_id))


def phases_of(plan_id: int) -> Siblings:
    return Siblings("phases", "plan_id = ?", (plan_id,))


def steps_of(phase_id: int) -> Siblings:
    return Siblings("tasks", "phase_id = ? AND parent_id IS NULL", (phase_id,))


def subtasks_of(parent_id: int) -> Siblings:
    return Siblings("tasks", "parent_id = ?", (parent_id,))


def siblings(row: Task | Phase) -> Siblings | None:
    """The order a row is part of (a todo with no parent is in none)."""
    if isinstance(row, Phase):
        return phases_of(row.plan_id)
    if row.parent_id is not None:
        return subtasks_of(row.parent_id)
    if row.phase_id is not None:
        return steps_of(row.phase_id)
    return None
