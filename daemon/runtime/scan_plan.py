"""Turning what a scan read into write operations: one per project that changed.

A project found where a stored one is: an update (only what changed, never a field the user
set). Found nowhere before, it may be a stored project that moved (same identity, or same
inode): one that vanished from this scan's scope, one missing for a while, or one outside the
scope whose folder is gone (the scanner checks) — then it keeps its id. Otherwise it is new.
A stored project in the scan's scope that was not found is missing. A project that could not
be read (it failed, or overran its time bound) is recorded with its `scan_error` and read
again next time. Time alone can change a status, too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

import msgspec

from daemon.domain.projects import metadata
from daemon.domain.projects import sql as projects_db
from daemon.domain.projects.model import Candidate, ProjectFacts
from daemon.domain.projects.sql import ScanRow
from daemon.store.writer import Tx

Op = Callable[[Tx], Any]


class ScanIssue(msgspec.Struct, frozen=True):
    path: str
    error: str


class ScanSummary(msgspec.Struct, kw_only=True):
    scope: list[str]
    found: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: int = 0
    moved: int = 0
    returned: int = 0
    merged: int = 0  # duplicate records of one project folded into one (see project_merge)
    errors: list[ScanIssue] = msgspec.field(default_factory=list)
    duration_ms: float = 0.0


class Result(msgspec.Struct, frozen=True):
    candidate: Candidate
    fingerprint: str | None
    facts: ProjectFacts | None  # None: unchanged (or failed)
    error: str | None = None


def fact_columns(facts: ProjectFacts) -> dict[str, Any]:
    git = facts.git
    return {
        "name": facts.name,
        "description": facts.description,
        "status": facts.status,
        "origin_type": facts.origin_type,
        "ownership": facts.ownership,
        "last_worked_on": facts.last_worked_on,
        "repository_url": facts.repository_url,
        "root": None,  # set by the scanner, which knows the Dev roots
        "vcs": facts.vcs,
        "git_kind": git.kind if git else None,
        "git_common_dir": git.common_dir if git else None,
        "branch": git.branch if git else None,
        "head_sha": git.head_sha if git else None,
        "detached": int(bool(git and git.detached)),
        "default_branch": git.default_branch if git else None,
        "remotes": [{"name": r.name, "url": r.url} for r in (git.remotes if git else [])],
        "languages": facts.languages,
        "manifests": facts.manifests,
        "archived_marker": int(facts.archived_marker),
        "identity": facts.identity,
        "device": facts.device,
        "inode": facts.inode,
        "scan_error": facts.error or (git.error if git else None),
    }


def _stored(column: str, value: Any) -> Any:
    return projects_db.encode_value(column, value)


def under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class Planner:
    def __init__(self, roots: Sequence[str], now: datetime) -> None:
        self.roots = roots
        self._now = now

    def plan(
        self,
        results: list[Result],
        in_scope: list[ScanRow],
        all_rows: list[ScanRow],
        summary: ScanSummary,
        *,
        gone_elsewhere: Collection[int] = (),
    ) -> list[Op]:
        by_path = {r.path: r for r in all_rows}
        seen = {res.candidate.path for res in results}
        vanished = [r for r in in_scope if r.path not in seen and r.present]
        # A new folder may be a vanished, long-missing or gone-elsewhere project that moved.
        movable = vanished + [
            r for r in all_rows
            if r.path not in seen and (not r.present or r.id in gone_elsewhere)
        ]  # fmt: skip
        by_identity = {r.identity: r for r in movable if r.identity}
        by_inode = {(r.device, r.inode): r for r in movable if r.inode is not None}
        moved_ids: set[int] = set()
        actions: list[Op] = []
        # Main checkouts first, so a linked worktree finds the project it belongs to.
        ordered = sorted(
            results,
            key=lambda r: bool(r.facts and r.facts.git and r.facts.git.kind == "linked-worktree"),
        )
        for res in ordered:
            row = by_path.get(res.candidate.path)
            if res.error is not None:
                summary.errors.append(ScanIssue(res.candidate.path, res.error))
                actions.append(self._failed(row, res.candidate, res.error, summary))
                continue
            if res.facts is None or row is not None:
                action = self._known(row, res.facts, summary)
                if action is not None:
                    actions.append(action)
                continue
            match = by_identity.get(res.facts.identity) or by_inode.get(
                (res.facts.device, res.facts.inode)
            )
            if match is not None and match.id not in moved_ids:
                moved_ids.add(match.id)
                summary.moved += 1
                actions.append(self._move(match, res.facts))
                continue
            summary.new += 1
            actions.append(self._insert(res.facts))
        for row in vanished:
            if row.id not in moved_ids:
                summary.missing += 1
                actions.append(self._missing(row))
        return actions

    def _root_of(self, path: str) -> str | None:
        return next((root for root in self.roots if under(path, root) and path != root), None)

    def _columns(self, facts: ProjectFacts) -> dict[str, Any]:
        columns = fact_columns(facts)
        columns["root"] = self._root_of(facts.path)
        return columns

    def _known(
        self, row: ScanRow | None, facts: ProjectFacts | None, summary: ScanSummary
    ) -> Op | None:
        """A project found where a stored one is (facts None: its fingerprint did not move)."""
        if facts is None:
            aged = self._aged(row) if row is not None else None
            if aged is None:
                summary.unchanged += 1
            else:
                summary.updated += 1
            return aged
        assert row is not None
        if not row.present:
            summary.returned += 1
        action, changed = self._update(row, facts, returned=not row.present)
        if row.present:
            if changed:
                summary.updated += 1
            else:
                summary.unchanged += 1  # only its fingerprint moved (an mtime)
        return action

    def _update(self, row: ScanRow, facts: ProjectFacts, *, returned: bool) -> tuple[Op, bool]:
        """The write for a project found where it was stored, and whether its facts changed."""
        new = self._columns(facts)
        changed = {c: v for c, v in new.items() if _stored(c, v) != row.facts.get(c)}
        if not changed and not returned:
            fingerprint = facts.fingerprint

            def touch(tx: Tx) -> None:
                projects_db.touch_scanned(tx.conn, row.id, fingerprint, tx.now)

            return touch, False

        def op(tx: Tx) -> None:
            user_set = _current_user_set(tx, row.id)
            values = {c: v for c, v in changed.items() if c not in user_set}
            values.update(_linkage(tx, facts))
            values["scanned_at"] = tx.now
            values["fingerprint"] = facts.fingerprint
            if returned:
                values["present"] = 1
                values["missing_since"] = None
            projects_db.update(tx.conn, row.id, values, tx.now)
            if returned:
                tx.emit("project.returned", {"id": row.id, "path": row.path})
            visible = {c: v for c, v in values.items() if c in changed}
            if visible:
                tx.emit("project.updated", {"id": row.id, "path": row.path, "changed": visible})

        return op, bool(changed)

    def _aged(self, row: ScanRow) -> Op | None:
        """Status follows time even when nothing on disk changed: 31 days without work turn
        an active project on-hold, whether or not a file moved."""
        if "status" in row.user_set:
            return None
        stored = row.facts
        status = metadata.status(
            stored["last_worked_on"], archived=bool(stored["archived_marker"]), now=self._now
        )
        if status == stored["status"]:
            return None

        def op(tx: Tx) -> None:
            if "status" in _current_user_set(tx, row.id):
                return
            projects_db.update(tx.conn, row.id, {"status": status}, tx.now)
            tx.emit(
                "project.updated", {"id": row.id, "path": row.path, "changed": {"status": status}}
            )

        return op

    def _move(self, row: ScanRow, facts: ProjectFacts) -> Op:
        def op(tx: Tx) -> None:
            user_set = _current_user_set(tx, row.id)
            values = {c: v for c, v in self._columns(facts).items() if c not in user_set}
            values.update(_linkage(tx, facts))
            values |= {
                "path": facts.path, "present": 1, "missing_since": None,
                "scanned_at": tx.now, "fingerprint": facts.fingerprint,
            }  # fmt: skip
            projects_db.update(tx.conn, row.id, values, tx.now)
            tx.emit("project.moved", {"id": row.id, "from": row.path, "to": facts.path})

        return op

    def _insert(self, facts: ProjectFacts) -> Op:
        def op(tx: Tx) -> int:
            values = self._columns(facts)
            values.update(_linkage(tx, facts))
            values |= {"path": facts.path, "scanned_at": tx.now, "fingerprint": facts.fingerprint}
            project_id = projects_db.insert(tx.conn, values, tx.now)
            tx.emit(
                "project.added",
                {"id": project_id, "name": facts.name, "path": facts.path, "status": facts.status},
            )
            return project_id

        return op

    def _failed(self, row: ScanRow | None, cand: Candidate, error: str, summary: ScanSummary) -> Op:
        """A project that could not be read: its error is recorded and its fingerprint
        forgotten, so the next scan reads it again; a new one is recorded by name and path
        only (a later read that succeeds fills in the rest, or merges it with the project it
        turns out to be)."""
        if row is None:
            summary.new += 1
            name = os.path.basename(cand.path.rstrip(os.sep)) or cand.path  # UTF-8: checked

            def insert(tx: Tx) -> int:
                values = {
                    "name": name, "path": cand.path, "root": self._root_of(cand.path),
                    "status": "on-hold", "device": cand.device, "inode": cand.inode,
                    "scan_error": error, "scanned_at": tx.now, "fingerprint": None,
                }  # fmt: skip
                project_id = projects_db.insert(tx.conn, values, tx.now)
                tx.emit(
                    "project.added",
                    {"id": project_id, "name": name, "path": cand.path, "scan_error": error},
                )
                return project_id

            return insert
        returned = not row.present
        if returned:
            summary.returned += 1

        def record(tx: Tx) -> None:
            values: dict[str, Any] = {"fingerprint": None, "scanned_at": tx.now}
            if row.facts.get("scan_error") != error:
                values["scan_error"] = error
            if returned:
                values |= {"present": 1, "missing_since": None}
            projects_db.update(tx.conn, row.id, values, tx.now)
            if returned:
                tx.emit("project.returned", {"id": row.id, "path": row.path})
            if "scan_error" in values:
                tx.emit(
                    "project.updated",
                    {"id": row.id, "path": row.path, "changed": {"scan_error": error}},
                )

        return record

    def _missing(self, row: ScanRow) -> Op:
        def op(tx: Tx) -> None:
            projects_db.update(tx.conn, row.id, {"present": 0, "missing_since": tx.now}, tx.now)
            tx.emit("project.missing", {"id": row.id, "path": row.path})

        return op


def _current_user_set(tx: Tx, project_id: int) -> frozenset[str]:
    """Read inside the transaction: the user may have set a field since the scan began."""
    return projects_db.user_set_of(tx.conn, project_id) or frozenset()


def _linkage(tx: Tx, facts: ProjectFacts) -> dict[str, Any]:
    if facts.git is None or facts.git.kind != "linked-worktree":
        return {}
    return {"worktree_of": projects_db.worktree_owner(tx.conn, facts.git.common_dir)}
