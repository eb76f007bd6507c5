"""Instructions, skills and agent definitions from the projects themselves, kept in the
documents table (origin "repo"), and `instructions.for_path`.

`RepoIndex.refresh(project)` is the indexing: a few stat calls say whether anything that
could hold an instruction changed since the last look (repo_files.fingerprint); only then the
project is read (repo_files.read_project, on a thread) and its repo documents brought in line
in one write — new files inserted, changed ones updated, vanished ones deleted, each with its
event. The runtime calls `refresh_all` after every scan (the watcher's included), so a change
the watcher or a rescan sees reaches the index without a walk of unchanged projects.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from typing import Annotated, Any

import msgspec
import structlog

from daemon.domain.app import App
from daemon.domain.projects.ref import ProjectRef, resolve
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidParams, ShuttingDown
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.database import Database
from daemon.store.table import Where

from . import globs, repo_files
from .model import DOCUMENTS, Document, of_project_and_global, typed_metadata

log = structlog.get_logger("pm.memory")
methods = Methods()

AbsPath = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
_TITLE_MAX = 1000


class SyncOutcome(msgspec.Struct, kw_only=True):
    project_id: int
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    problems: list[str] = msgspec.field(default_factory=list)


def _repo_docs(conn: sqlite3.Connection, project_id: int) -> list[Document]:
    where = (
        Where(DOCUMENTS).eq("project_id", project_id).eq("origin", "repo")
        .sql("t.kind != 'code_chunk'")
    )  # fmt: skip
    return DOCUMENTS.rows(conn, where, "id", budget=False)


def sync_op(project_id: int, read: repo_files.RepoRead) -> Any:
    """One write: the project's repo documents (but code chunks) made equal to `read`."""

    def op(tx: Tx) -> SyncOutcome:
        out = SyncOutcome(project_id=project_id, problems=list(read.problems))
        if tx.conn.execute("SELECT 1 FROM projects WHERE id = ?", (project_id,)).fetchone() is None:
            return out  # forgotten meanwhile
        by_key: dict[tuple[str, str | None], Document] = {
            (d.kind, d.path): d for d in _repo_docs(tx.conn, project_id)
        }
        for doc in read.docs:
            try:
                metadata = typed_metadata(doc.kind, doc.metadata)
            except InvalidParams as e:  # a value past a limit: reported, not indexed
                out.problems.append(f"{doc.path}: {e.message}")
                continue
            values = {
                "title": doc.title[:_TITLE_MAX], "content": doc.content, "tags": doc.tags,
                "metadata": metadata,
            }  # fmt: skip
            old = by_key.pop((doc.kind, doc.path), None)
            if old is None:
                DOCUMENTS.insert(
                    tx,
                    {**values, "kind": doc.kind, "origin": "repo", "path": doc.path,
                     "project_id": project_id},
                )  # fmt: skip
                out.added += 1
            elif any(getattr(old, k) != v for k, v in values.items()):
                DOCUMENTS.update(tx, old.id, values)
                out.updated += 1
            else:
                out.unchanged += 1
        for gone in by_key.values():
            DOCUMENTS.delete(tx, gone.id)
            out.removed += 1
        return out

    return op


def _present(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    return [
        (int(i), str(p)) for i, p in conn.execute("SELECT id, path FROM projects WHERE present = 1")
    ]


class RepoIndex:
    """What was last read of each project (its fingerprint and the files found), so an
    unchanged project costs a few stat calls."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._seen: dict[int, tuple[str, list[str]]] = {}
        self._lock = asyncio.Lock()
        self._pending: asyncio.Task[None] | None = None
        self._again = False
        self._asked: set[str] | None = set()  # folders a refresh was asked for; None: all

    async def refresh(self, project_id: int, path: str, *, force: bool = False) -> SyncOutcome:
        async with self._lock:
            return await self._refresh(project_id, path, force)

    async def _refresh(self, project_id: int, path: str, force: bool) -> SyncOutcome:
        fingerprint, known = self._seen.get(project_id, ("", []))
        now = await asyncio.to_thread(repo_files.fingerprint, path, known)
        if not force and now == fingerprint:
            return SyncOutcome(project_id=project_id)
        read = await asyncio.to_thread(repo_files.read_project, path)
        outcome: SyncOutcome = await self._db.write(sync_op(project_id, read))
        # The fingerprint taken before reading: a file changed or deleted while it was read
        # (or since) differs from it at the next refresh. (One taken after the write hid a
        # deletion made meanwhile for good.) When the files found are not those known, the
        # next refresh reads once more, finds the same, and keeps a fingerprint of them.
        self._seen[project_id] = (now, sorted(d.path for d in read.docs))
        if outcome.problems:
            log.info("instruction files with problems", project=path, problems=outcome.problems)
        return outcome

    async def refresh_all(self, within: list[str] | None = None) -> list[SyncOutcome]:
        """Every present project (or those in or below the folders `within`) whose files may
        have changed."""
        outcomes = []
        for project_id, path in await self._db.read(_present):
            if within is not None and not any(_under(path, folder) for folder in within):
                continue
            try:
                outcomes.append(await self.refresh(project_id, path))
            except ShuttingDown:
                break
            except Exception:  # one project's failure must not stop the others
                log.exception("indexing instruction files failed", project=path)
        return outcomes

    def forget(self) -> None:
        """Another database file is live: every project is read again at the next refresh."""
        self._seen.clear()

    def refresh_soon(self, scope: list[str] | None = None) -> None:
        """From a scan listener (a plain callback): the projects in the scan's `scope` (None:
        all) refreshed, coalesced — scopes asked for while a refresh runs are refreshed once
        more after it (it may have listed the projects before the scan that asked)."""
        if scope is None or self._asked is None:
            self._asked = None
        else:
            self._asked.update(scope)
        self._again = True
        if self._pending is not None and not self._pending.done():
            return

        async def run() -> None:
            while self._again:
                within = None if self._asked is None else sorted(self._asked)
                self._again, self._asked = False, set()
                await self.refresh_all(within)

        self._pending = asyncio.get_running_loop().create_task(run(), name="pm-repo-index")


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def repo_index(app: App) -> RepoIndex:
    """The App's index (made on first use where the runtime did not make one)."""
    if app.repo_index is None:
        app.repo_index = RepoIndex(app.db)
    index: RepoIndex = app.repo_index
    return index


# --- methods ----------------------------------------------------------------------------------
class RefreshParams(Params, frozen=True):
    project: ProjectRef


@methods("instructions.refresh")
async def refresh(app: App, call: Call, p: RefreshParams) -> SyncOutcome:
    """Read a project's instruction, skill and agent files now (scans and the watcher do it
    by themselves); returns what changed and the files with problems."""
    project = await resolve(app.db, p.project)
    return await repo_index(app).refresh(project.id, project.path, force=True)


class ForPathParams(Params, frozen=True):
    path: AbsPath
    project: ProjectRef | None = None  # then `path` may be relative to it
    content: bool = True
    on_request: bool = False  # also rules an agent applies when their description fits


class Applicable(msgspec.Struct, kw_only=True):
    id: int
    title: str
    path: str | None  # the file in the project it was read from; null when stored by hand
    format: str | None
    why: str
    applies: str  # "always", "folder", "glob", "on_request"
    specificity: int  # higher is more specific
    content: str | None
    problem: str | None


class ForPath(msgspec.Struct, kw_only=True):
    project_id: int | None
    relative_path: str | None
    items: list[Applicable]  # most specific first


def candidates(conn: sqlite3.Connection, project_id: int | None) -> list[Document]:
    return of_project_and_global(conn, "instruction", project_id)


def applies(doc: Document, rel: str | None, on_request: bool) -> tuple[str, str, int] | None:
    """(applies, why, specificity) when `doc` applies to the project-relative path `rel`."""
    meta = doc.metadata
    scope = meta.get("scope")
    where = doc.path or f"stored instruction {doc.id}"
    if scope is not None and rel is not None:
        if scope and not (rel == scope or rel.startswith(scope + "/")):
            return None
        depth = scope.count("/") + 1 if scope else 0
        shown = f"{scope}/" if scope else "the project root"
        return "folder", f"{where} governs {shown} and below", 100 + 20 * depth
    for pattern in meta.get("applies_to") or []:
        if rel is not None and globs.matches(pattern, rel):
            depth = globs.literal_depth(pattern)
            return "glob", f"{where}: {pattern} matches {rel}", 110 + 20 * depth
    if meta.get("always_apply") or (not meta.get("applies_to") and doc.origin == "stored"):
        return "always", f"{where} applies to every path", 10 if doc.project_id else 0
    if on_request and meta.get("description") and not meta.get("applies_to"):
        return "on_request", f"{where}: an agent applies it when: {meta['description']}", 1
    return None


async def locate(app: App, p: ForPathParams) -> tuple[int | None, str | None]:
    """The project and the path relative to it."""
    if p.project is not None:
        project = await resolve(app.db, p.project)
        rel = relative(project.path, p.path)
        if rel is None:
            raise InvalidParams(f"Invalid params: {p.path} is outside {project.path}", field="path")
        return project.id, rel
    if not p.path.startswith("/"):
        raise InvalidParams("Invalid params: path must be absolute (or give project)", field="path")
    found = await app.db.read(owner, p.path)
    if found is None:
        return None, None
    return found[0], relative(found[1], p.path)


def relative(root: str, path: str) -> str | None:
    """`path` (absolute, or relative to `root`) as "/"-separated and relative to `root`; None
    when it lies outside. String work only: the file need not exist."""
    full = os.path.normpath(os.path.join(root, path))
    rel = os.path.relpath(full, root)
    if rel == ".." or rel.startswith(".." + os.sep):
        return None
    return "" if rel == "." else rel.replace(os.sep, "/")


def owner(conn: sqlite3.Connection, path: str) -> tuple[int, str] | None:
    """The project holding `path`: the nearest ancestor folder that is a project."""
    ancestors = [os.path.normpath(path)]
    while True:
        parent = os.path.dirname(ancestors[-1])
        if parent == ancestors[-1] or len(ancestors) > 64:
            break
        ancestors.append(parent)
    marks = ", ".join("?" for _ in ancestors)
    row = conn.execute(
        f"SELECT id, path FROM projects WHERE path IN ({marks}) ORDER BY length(path) DESC LIMIT 1",
        ancestors,
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def rank(
    docs: list[Document], rel: str | None, *, content: bool, on_request: bool
) -> list[Applicable]:
    items = []
    for doc in docs:
        found = applies(doc, rel, on_request)
        if found is None:
            continue
        how, why, specificity = found
        items.append(
            Applicable(
                id=doc.id, title=doc.title, path=doc.path, format=doc.metadata.get("format"),
                why=why, applies=how, specificity=specificity,
                content=doc.content if content else None, problem=doc.metadata.get("problem"),
            )
        )  # fmt: skip
    items.sort(key=lambda a: (-a.specificity, a.path or "", a.id))
    return items


@methods("instructions.for_path")
async def for_path(app: App, call: Call, p: ForPathParams) -> ForPath:
    """The instructions that apply to a file or folder, most specific first, each with why:
    the project's own files (nested AGENTS.md/CLAUDE.md/GEMINI.md for their folder and below,
    .github/copilot-instructions.md, *.instructions.md `applyTo`, Cursor rules `globs` and
    `alwaysApply`) and instructions stored by hand (`metadata.applies_to` globs, relative to
    the project; none: every path). A path in no project gets the global ones."""
    if p.project is None and p.path.startswith("/"):
        # The common case in one read: the owning project and its instructions together.
        project_id, rel, docs = await app.db.read(lookup, p.path)
    else:
        project_id, rel = await locate(app, p)
        docs = await app.db.read(candidates, project_id)
    items = rank(docs, rel, content=p.content, on_request=p.on_request)
    return ForPath(project_id=project_id, relative_path=rel, items=items)


def lookup(conn: sqlite3.Connection, path: str) -> tuple[int | None, str | None, list[Document]]:
    found = owner(conn, path)
    if found is None:
        return None, None, candidates(conn, None)
    return found[0], relative(found[1], path), candidates(conn, found[0])
