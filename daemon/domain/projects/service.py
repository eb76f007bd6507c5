"""Projects as users and agents see them: find one, list, correct by hand, register, forget."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from daemon.domain.projects import ref as project_ref
from daemon.domain.projects import sql as projects_db
from daemon.domain.projects.sql import Order, Project
from daemon.rpc.errors import InvalidParams, NotFound
from daemon.runtime.scan_plan import ScanSummary
from daemon.runtime.scanner import Scanner
from daemon.store.database import Database
from daemon.store.writer import Tx

ProjectRef = int | str


class Forgotten(msgspec.Struct, kw_only=True):
    id: int
    path: str
    ignored: bool  # the folder is still under a Dev root: discovery will skip it from now on


class Page(msgspec.Struct, kw_only=True):
    items: list[Project]
    total: int


def _clean(path: str) -> str:
    return os.path.normpath(path)  # string work only; the caller checked it is absolute


async def _is_dir(path: str) -> bool:
    return await asyncio.to_thread(os.path.isdir, path)  # a stat can hang on a network mount


def _is_under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _linked_below_root(path: str, roots: Sequence[str]) -> bool:
    """A symbolic link between the root and `path`: the walk would not enter it (when links
    are not followed), and it may lead anywhere on the disk."""
    for root in roots:
        if _is_under(path, [root]):
            below = os.path.relpath(path, root)
            real = os.path.normpath(os.path.join(os.path.realpath(root), below))
            return os.path.realpath(path) != real
    return True


class ProjectService:
    def __init__(self, db: Database, scanner: Scanner) -> None:
        self._db = db
        self._scanner = scanner

    async def resolve(self, ref: ProjectRef) -> Project:
        """A project by id, absolute path or name (daemon/domain/projects/ref.py)."""
        return await project_ref.resolve(self._db, ref)

    async def list(
        self,
        *,
        status: Sequence[str],
        query: str | None,
        order: Order,
        include_missing: bool,
        limit: int,
        offset: int,
    ) -> Page:
        def page(c: sqlite3.Connection) -> Page:  # always counted: see KvService.list
            items = projects_db.list_projects(
                c, status=status, query=query, order=order, include_missing=include_missing,
                limit=limit, offset=offset,
            )  # fmt: skip
            total = projects_db.count_projects(
                c, status=status, query=query, include_missing=include_missing
            )
            return Page(items=items, total=total)

        return await self._db.read(page)

    async def update(
        self, ref: ProjectRef, values: Mapping[str, Any], reset: Sequence[str]
    ) -> Project:
        """Set fields by hand (they win over inference from then on), or hand them back."""
        unknown = (set(values) | set(reset)) - set(projects_db.USER_COLUMNS)
        if unknown:
            raise InvalidParams(f"Invalid params: not a field you can set: {sorted(unknown)}")
        both = set(values) & set(reset)
        if both:
            raise InvalidParams(f"Invalid params: both set and reset: {sorted(both)}")
        project = await self.resolve(ref)

        def op(tx: Tx) -> None:
            stored = projects_db.user_set_of(tx.conn, project.id)
            if stored is None:
                raise NotFound(f"project {project.id} was forgotten (or merged) meanwhile")
            user_set = (set(stored) | set(values)) - set(reset)
            changes: dict[str, Any] = dict(values)
            changes["user_set"] = sorted(user_set)
            if reset:
                # Forget the fingerprint so the rescan below reads the project again.
                changes["fingerprint"] = None
                if "deployed_url" in reset:
                    changes["deployed_url"] = None  # nothing infers it
            projects_db.update(tx.conn, project.id, changes, tx.now)
            tx.emit(
                "project.updated",
                {"id": project.id, "path": project.path, "changed": dict(values),
                 "reset": list(reset), "by": "user"},
            )  # fmt: skip

        await self._db.write(op)
        if reset and project.present:
            await self._scanner.scan_projects([project.path])
        return await self.resolve(project.id)

    async def register(self, path: str) -> Project:
        """Track a folder outside the Dev roots (or any folder) as a project."""
        if not os.path.isabs(path):
            raise InvalidParams("Invalid params: path must be absolute", field="path")
        path = _clean(path)
        if not await _is_dir(path):
            raise NotFound(f"{path} is not a folder", path=path)
        existing = await self._db.read(projects_db.get_by_path, path)
        name = os.path.basename(path) or path

        def op(tx: Tx) -> None:
            projects_db.unignore_path(tx.conn, path)
            if existing is None:
                project_id = projects_db.insert(
                    tx.conn,
                    {"name": name, "path": path, "source": "registered", "fingerprint": None},
                    tx.now,
                )
                tx.emit(
                    "project.added",
                    {"id": project_id, "name": name, "path": path, "source": "registered"},
                )

        await self._db.write(op)
        await self._scanner.scan_projects([path])
        self._scanner.announce(ScanSummary(scope=[path], new=1))  # watch it from now on
        return await self.resolve(path)

    async def forget(self, ref: ProjectRef) -> Forgotten:
        project = await self.resolve(ref)
        still_there = await _is_dir(project.path)
        ignore = still_there and _is_under(project.path, self._scanner.roots)

        def op(tx: Tx) -> None:
            projects_db.delete(tx.conn, project.id)
            if ignore:
                projects_db.ignore_path(tx.conn, project.path, tx.now)
            tx.emit(
                "project.forgotten", {"id": project.id, "path": project.path, "ignored": ignore}
            )

        await self._db.write(op)
        self._scanner.announce(ScanSummary(scope=[project.path], missing=1))  # stop watching
        return Forgotten(id=project.id, path=project.path, ignored=ignore)

    async def scan(self, ref: ProjectRef | None, report: Any = None) -> ScanSummary:
        if ref is None:
            return await self._scanner.scan_all(report)
        if isinstance(ref, str) and ref.startswith(os.sep):
            path = _clean(ref)
            known = await self._db.read(projects_db.get_by_path, path)
            if known is None:
                roots = self._scanner.roots
                if (
                    await _is_dir(path)
                    and _is_under(path, roots)
                    and (
                        self._scanner.follow_symlinks
                        or not await asyncio.to_thread(_linked_below_root, path, roots)
                    )
                ):
                    return await self._scanner.scan_folders([path], report)
                raise NotFound(f"no project at {path}; register it first", project=ref)
            return await self._scanner.scan_projects([path], report)
        project = await self.resolve(ref)
        return await self._scanner.scan_projects([project.path], report)
