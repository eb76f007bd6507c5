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

from daemon.domain.projects import metadata, sql
from daemon.domain.projects.model import Candidate, ProjectFacts
from daemon.domain.projects.row import (
    MISSING,
    MOVED,
    NAME_MAX,
    PROJECTS,
    RETURNED,
    URL_MAX,
    Project,
    RemoteRow,
    folder_name,
)  # fmt: skip
from daemon.domain.projects.scanning import ScanIssue, ScanSummary
from daemon.store.batch import Tx

Op = Callable[[Tx], Any]


class Result(msgspec.Struct, frozen=True):
    candidate: Candidate
    fingerprint: str | None
    facts: ProjectFacts | None  # None: unchanged (or failed)
    error: str | None = None


def fact_columns(facts: ProjectFacts) -> dict[str, Any]:
    """The FACTS of a project as read from its files, in the types its row holds them."""
    git = facts.git
    url = facts.repository_url
    return {
        "name": facts.name[:NAME_MAX],
        "description": facts.description,
        "status": facts.status,
        "origin_type": facts.origin_type,
        "ownership": facts.ownership,
        "last_worked_on": facts.last_worked_on,
        # A URL longer than any a browser or a git host takes is not recorded: no method could
        # send the row back (the row's own limit), and nobody could open it anyway.
        "repository_url": url if url is None or len(url) <= URL_MAX else None,
        "root": None,  # set by the scanner, which knows the Dev roots
        "vcs": facts.vcs,
        "git_kind": git.kind if git else None,
        "git_common_dir": git.common_dir if git else None,
        "branch": git.branch if git else None,
        "head_sha": git.head_sha if git else None,
        "detached": bool(git and git.detached),
        "default_branch": git.default_branch if git else None,
        "remotes": [RemoteRow(r.name, r.url) for r in (git.remotes if git else [])],
        "languages": facts.languages,
        "manifests": facts.manifests,
        "archived_marker": facts.archived_marker,
        "identity": facts.identity,
        "device": facts.device,
        "inode": facts.inode,
        "scan_error": facts.error or (git.error if git else None),
    }


def under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class Planner:
    def __init__(self, roots: Sequence[str], now: datetime) -> None:
        self.roots = roots
        self._now = now

    def plan(
        self,
        results: list[Result],
        in_scope: list[Project],
        all_rows: list[Project],
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
        self, row: Project | None, facts: ProjectFacts | None, summary: ScanSummary
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

    def _update(self, row: Project, facts: ProjectFacts, *, returned: bool) -> tuple[Op, bool]:
        """The write for a project found where it was stored, and whether its facts changed."""
        new = self._columns(facts)
        changed = any(getattr(row, c) != v for c, v in new.items())
        if not changed and not returned:
            fingerprint = facts.fingerprint

            def touch(tx: Tx) -> None:
                sql.note_scan(tx, row.id, tx.now, fingerprint)

            return touch, False

        def op(tx: Tx) -> None:
            current = PROJECTS.get(tx.conn, row.id)  # the user may have set a field since
            if current is None:
                return  # forgotten meanwhile
            values = {c: v for c, v in new.items() if c not in current.user_set}
            values |= _linkage(tx, facts)
            values |= {"scanned_at": tx.now, "fingerprint": facts.fingerprint}
            if returned:
                values |= {"present": True, "missing_since": None}
            sql.write(tx, current, values, RETURNED if returned else None)

        return op, changed

    def _aged(self, row: Project) -> Op | None:
        """Status follows time even when nothing on disk changed: 31 days without work turn
        an active project on-hold, whether or not a file moved."""
        if "status" in row.user_set:
            return None
        status = metadata.status(row.last_worked_on, archived=row.archived_marker, now=self._now)
        if status == row.status:
            return None

        def op(tx: Tx) -> None:
            current = PROJECTS.get(tx.conn, row.id)
            if current is not None and "status" not in current.user_set:
                sql.write(tx, current, {"status": status})

        return op

    def _move(self, row: Project, facts: ProjectFacts) -> Op:
        def op(tx: Tx) -> None:
            current = PROJECTS.get(tx.conn, row.id)
            if current is None:
                return
            values = {c: v for c, v in self._columns(facts).items() if c not in current.user_set}
            values |= _linkage(tx, facts)
            values |= {
                "path": facts.path, "present": True, "missing_since": None,
                "scanned_at": tx.now, "fingerprint": facts.fingerprint,
            }  # fmt: skip
            sql.write(tx, current, values, MOVED, from_=current.path, to=facts.path)

        return op

    def _insert(self, facts: ProjectFacts) -> Op:
        def op(tx: Tx) -> int:
            values = self._columns(facts)
            values |= _linkage(tx, facts)
            values |= {"path": facts.path, "scanned_at": tx.now, "fingerprint": facts.fingerprint}
            return PROJECTS.insert(tx, values).id

        return op

    def _failed(self, row: Project | None, cand: Candidate, error: str, summary: ScanSummary) -> Op:
        """A project that could not be read: its error is recorded and its fingerprint
        forgotten, so the next scan reads it again; a new one is recorded by name and path
        only (a later read that succeeds fills in the rest, or merges it with the project it
        turns out to be)."""
        if row is None:
            summary.new += 1

            def insert(tx: Tx) -> int:
                values = {
                    "name": folder_name(cand.path), "path": cand.path,
                    "root": self._root_of(cand.path), "status": "on-hold",
                    "device": cand.device, "inode": cand.inode, "scan_error": error,
                    "scanned_at": tx.now, "fingerprint": None,
                }  # fmt: skip
                return PROJECTS.insert(tx, values).id

            return insert
        returned = not row.present
        if returned:
            summary.returned += 1

        def record(tx: Tx) -> None:
            current = PROJECTS.get(tx.conn, row.id)
            if current is None:
                return
            values: dict[str, Any] = {
                "fingerprint": None, "scanned_at": tx.now, "scan_error": error,
            }  # fmt: skip
            if returned:
                values |= {"present": True, "missing_since": None}
            sql.write(tx, current, values, RETURNED if returned else None)

        return record

    def _missing(self, row: Project) -> Op:
        def op(tx: Tx) -> None:
            current = PROJECTS.get(tx.conn, row.id)
            if current is not None and current.present:
                sql.write(tx, current, {"present": False, "missing_since": tx.now}, MISSING)

        return op


def _linkage(tx: Tx, facts: ProjectFacts) -> dict[str, Any]:
    if facts.git is None or facts.git.kind != "linked-worktree":
        return {}
    return {"worktree_of": sql.worktree_owner(tx.conn, facts.git.common_dir)}
