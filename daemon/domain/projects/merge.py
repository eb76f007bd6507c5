"""One project recorded twice becomes one again, and nothing of either record is lost.

Older versions took a project that moved into another folder while the daemon ran (`mv
~/Dev/huey ~/Dev/clients/huey`) for a new one: a second record at the new path, and the first
one marked missing. Such records share the checkout's identity (its reflog's first line, or
its folder's inode); when exactly one of them is present, they are one project, and the next
scan merges them. Who wins:

- the id, and when the project was first recorded: the oldest record's — the id people and
  scripts have used the longest;
- the path and everything a scan reads from disk: the present record's — it is what is there;
- fields set by hand: every one set on any record is kept. When several records set the same
  field, the present record's value wins (it is the one the user saw and edited since the
  split), else the newest record's; each value that lost is kept in the `project.merged`
  event (`overridden`), so it can be put back by hand;
- `registered` if any record was registered by hand;
- every row that refers to a merged record (quality history, jobs, linked worktrees, and any
  table added later with a foreign key to projects) refers to the kept one. Past events keep
  the ids they were written with; `project.merged` says which ids became which.

Two present records of one checkout (a copy: `cp -r huey huey2`) are two folders, and stay two
projects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from daemon.domain.projects import sql as projects_db
from daemon.store.writer import Tx

Record = dict[str, Any]  # a projects row as stored


def merge_op(identity: str) -> Callable[[Tx], int]:
    """The write that merges the records of `identity`; it returns how many were folded in
    (0 when, by the time it runs, there is nothing to merge)."""

    def op(tx: Tx) -> int:
        records = projects_db.records_with_identity(tx.conn, identity)
        present = [r for r in records if r["present"]]
        if len(records) < 2 or len(present) != 1:
            return 0  # changed since the scan looked
        keep, here = records[0], present[0]
        drops = [r for r in records if r is not keep]
        dropped = {r["id"] for r in drops}
        user_set, chosen, overridden = _hand_set(records, here)
        values: Record = {c: here[c] for c in projects_db.FACT_COLUMNS}
        values |= {
            "path": here["path"], "present": 1, "missing_since": None,
            "scanned_at": here["scanned_at"], "fingerprint": here["fingerprint"],
            "worktree_of": None if here["worktree_of"] in dropped else here["worktree_of"],
            "deployed_url": here["deployed_url"],
            "source": "registered" if any(r["source"] == "registered" for r in records)
            else here["source"],
        }  # fmt: skip
        values |= chosen
        values["user_set"] = msgspec.json.encode(sorted(user_set)).decode()
        moved: dict[str, int] = {}
        for record in drops:
            for ref, count in projects_db.repoint(
                tx.conn, keep=keep["id"], drop=record["id"]
            ).items():
                moved[ref] = moved.get(ref, 0) + count
            projects_db.delete(tx.conn, record["id"])
        projects_db.update_stored(tx.conn, keep["id"], values, tx.now)
        tx.emit(
            "project.merged",
            {"id": keep["id"], "path": here["path"], "merged": sorted(dropped),
             "moved_rows": moved, "overridden": overridden},
        )  # fmt: skip
        return len(drops)

    return op


def _hand_set(records: list[Record], here: Record) -> tuple[set[str], Record, list[Record]]:
    """The fields set by hand on any record, the value each keeps, and the values that lost."""
    sets = {r["id"]: set(msgspec.json.decode(r["user_set"])) for r in records}
    fields = set().union(*sets.values())
    chosen: Record = {}
    overridden: list[Record] = []
    for field in sorted(fields):
        setters = [r for r in records if field in sets[r["id"]]]
        winner = here if any(r is here for r in setters) else setters[-1]  # oldest first
        chosen[field] = winner[field]
        overridden += [
            {"id": r["id"], "field": field, "value": r[field]}
            for r in setters
            if r is not winner and r[field] != winner[field]
        ]
    return fields, chosen, overridden
