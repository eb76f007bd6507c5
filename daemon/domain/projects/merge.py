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
  split), else the newest record's; each value that lost is kept in the `projects.merged`
  event (`overridden`), so it can be put back by hand;
- `registered` if any record was registered by hand;
- every row that refers to a merged record (quality history, jobs, linked worktrees, and any
  table added later with a foreign key to projects) refers to the kept one. Past events keep
  the ids they were written with; `projects.merged` says which ids (and uids) became which.

Two present records of one checkout (a copy: `cp -r huey huey2`) are two folders, and stay two
projects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from daemon.domain.projects import sql
from daemon.domain.projects.row import FACTS, MERGED, PROJECTS, Overridden, Project
from daemon.store.batch import Tx


def merge_op(identity: str) -> Callable[[Tx], int]:
    """The write that merges the records of `identity`; it returns how many were folded in
    (0 when, by the time it runs, there is nothing to merge)."""

    def op(tx: Tx) -> int:
        records = sql.with_identity(tx.conn, identity)
        present = [r for r in records if r.present]
        if len(records) < 2 or len(present) != 1:
            return 0  # changed since the scan looked
        keep, here = records[0], present[0]
        drops = [r for r in records if r is not keep]
        dropped = {r.id for r in drops}
        user_set, chosen, overridden = _hand_set(records, here)
        values: dict[str, Any] = {c: getattr(here, c) for c in FACTS}
        values |= {
            "path": here.path, "present": True, "missing_since": None,
            "scanned_at": here.scanned_at, "fingerprint": here.fingerprint,
            "worktree_of": None if here.worktree_of in dropped else here.worktree_of,
            "deployed_url": here.deployed_url,
            "source": "registered" if any(r.source == "registered" for r in records)
            else here.source,
        }  # fmt: skip
        values |= chosen
        values["user_set"] = sorted(user_set)
        moved: dict[str, int] = {}
        for record in drops:
            for ref, count in sql.repoint(tx.conn, keep=keep.id, drop=record.id).items():
                moved[ref] = moved.get(ref, 0) + count
            PROJECTS.delete(tx, record.id, emit=False)  # said by the merge's own event
        sql.write(
            tx, PROJECTS.must_get(tx.conn, keep.id), values, MERGED,
            merged=[r.id for r in drops], merged_uids=[r.uid for r in drops],
            moved_rows=moved, overridden=overridden,
        )  # fmt: skip
        return len(drops)

    return op


def _hand_set(
    records: list[Project], here: Project
) -> tuple[set[str], dict[str, Any], list[Overridden]]:
    """The fields set by hand on any record, the value each keeps, and the values that lost."""
    fields: set[str] = set().union(*(r.user_set for r in records))
    chosen: dict[str, Any] = {}
    overridden: list[Overridden] = []
    for field in sorted(fields):
        setters = [r for r in records if field in r.user_set]
        winner = here if any(r is here for r in setters) else setters[-1]  # oldest first
        chosen[field] = getattr(winner, field)
        overridden += [
            Overridden(id=r.id, field=field, value=getattr(r, field))
            for r in setters
            if r is not winner and getattr(r, field) != getattr(winner, field)
        ]
    return fields, chosen, overridden
