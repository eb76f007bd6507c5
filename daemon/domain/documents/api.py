"""documents.add/get/list/update/delete (generated), documents.search, and the episode's
access count.

Rules of its own: metadata is typed by kind (model.METADATA) and a kind's `type` is one it
allows; a document read from a repository is the daemon's copy of a file (changing it by hand
would be undone at the next scan, so it is refused); reading an episode counts an access.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from daemon.domain.app import App
from daemon.domain.crud import Crud, Id, Ref, Rules
from daemon.domain.projects.ref import PROJECT, ProjectRef, project_id
from daemon.domain.work import archive
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidState
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.clock import iso
from daemon.store.limits import Limit, Offset
from daemon.store.table import Page

from . import scope
from . import search as fts
from .model import DOCUMENTS, AgentName, Document, Kind, Subtype, Tags, check_type, typed_metadata

methods = Methods()

UtcTime = Annotated[datetime, msgspec.Meta(tz=True, description="ISO 8601 with a timezone")]
Mark = Annotated[str, msgspec.Meta(max_length=16)]


class DocumentRules(Rules[Document]):
    def before_add(self, tx: Tx, values: dict[str, Any]) -> None:
        scope.complete(tx, values)
        check_type(values["kind"], values.get("type"))
        values["metadata"] = typed_metadata(values["kind"], values.get("metadata") or {})

    def before_update(self, tx: Tx, old: Document, changes: dict[str, Any]) -> None:
        _refuse_repo_copy(old)
        if "type" in changes:
            check_type(old.kind, changes["type"])
        if "metadata" in changes:
            changes["metadata"] = typed_metadata(old.kind, changes["metadata"])

    def before_delete(self, tx: Tx, row: Document) -> None:
        _refuse_repo_copy(row)


def _refuse_repo_copy(row: Document) -> None:
    if row.origin == "repo":
        raise InvalidState(
            f"document {row.id} is the daemon's copy of {row.path} in its project; change the "
            "file instead (the next scan reads it again)",
            id=row.id,
            path=row.path,
        )


SCOPES = [
    PROJECT,
    Ref("plan", "plan_id", "plans", description="a plan's id"),
    Ref("phase", "phase_id", "phases", description="a phase's id"),
    Ref("task", "task_id", "tasks", description="a task's id"),
    Ref("session", "session_id", "sessions", description="a session's id"),
]


def _plan_archived(tx: Tx, plan_id: int, archived: bool) -> None:
    scope.set_archived(tx, plan_id, archived)


archive.ON_ARCHIVE.append(_plan_archived)  # a plan's documents leave search and come back with it

CRUD = Crud(
    DOCUMENTS,
    refs=SCOPES,
    create=("kind", "type", "title", "content", "agent", "tags", "metadata"),
    change=("type", "title", "content", "agent", "tags", "metadata"),
    filters=("kind", "type", "agent", "origin", "path", "archived"),
    rules=DocumentRules(),
)
CRUD.register(methods, verbs=("add", "list", "update", "delete"))


class GetParams(Params, frozen=True):
    id: Id


_BUMP = (
    "UPDATE documents SET metadata = json_set(metadata, '$.access_count', "
    "coalesce(json_extract(metadata, '$.access_count'), 0) + 1, '$.last_accessed_at', ?) "
    f"WHERE id = ? AND kind = 'episode' {DOCUMENTS.returning}"
)


def _bump_access(tx: Tx, doc_id: int) -> Document | None:
    """An episode read: its access count and time (Nexus' pruning signals). Not a change of
    what it says, so neither its version nor an event: a read must not flood subscribers."""
    row = tx.conn.execute(_BUMP, (tx.now, doc_id)).fetchone()
    return DOCUMENTS.decode(row[0]) if row else None


@methods("documents.get")
async def get(app: App, call: Call, p: GetParams) -> Document:
    """One document by id. Reading an episode counts an access (metadata.access_count,
    last_accessed_at)."""
    doc = await app.db.read(DOCUMENTS.must_get, p.id)
    if doc.kind != "episode":
        return doc
    bumped = await app.db.write(lambda tx: _bump_access(tx, p.id))
    return bumped or doc


class SearchParams(Params, frozen=True):
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    syntax: fts.Syntax = "plain"
    kind: Kind | list[Kind] | None = None
    type: Subtype | None = None
    project: ProjectRef | None = None
    plan: Id | None = None
    phase: Id | None = None
    task: Id | None = None
    session: Id | None = None
    agent: AgentName | None = None
    tags: Tags | None = None
    since: UtcTime | None = None
    until: UtcTime | None = None
    include_repo: bool = True
    marks: Annotated[list[Mark], msgspec.Meta(min_length=2, max_length=2)] = msgspec.field(
        default_factory=lambda: ["**", "**"]
    )
    limit: Limit = 20
    offset: Offset = 0


@methods("documents.search")
async def search_(app: App, call: Call, p: SearchParams) -> Page[fts.Hit]:
    """Full-text search over every document, best first (bm25; a title match counts five
    times a body match), each hit with a snippet whose matches are wrapped in `marks`
    (default `**`).

    `query` is plain words (each searched as typed; `word*` for a prefix) unless `syntax` is
    "fts5" (phrases, AND/OR/NOT, NEAR, `title:`…; a malformed one is -32602 with the reason).
    Filters: kind (one or a list), type, project, scope (plan, phase, task, session), agent,
    tags (all of them), created since / until, include_repo (files read from the projects and
    code chunks). Documents of an archived plan are not searched.
    """
    match = fts.fts_query(p.query, p.syntax)
    kinds = [p.kind] if isinstance(p.kind, str) else list(p.kind or [])
    where = fts.filters(
        kinds=kinds,
        type_=p.type,
        project_id=await project_id(app, p.project) if p.project is not None else None,
        agent=p.agent,
        tags=p.tags or [],
        since=iso(p.since) if p.since else None,
        until=iso(p.until) if p.until else None,
        origin=None if p.include_repo else "stored",
        scope={
            column: value
            for column, value in (
                ("plan_id", p.plan),
                ("phase_id", p.phase),
                ("task_id", p.task),
                ("session_id", p.session),
            )
            if value is not None
        },
    )
    return await app.db.read(fts.search, match, where, p.marks, p.limit, p.offset)
