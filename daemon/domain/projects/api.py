"""projects.list, get, update, register, forget, scan.

The rules that are projects' own: a project is named by id, absolute path or name (ref.py); a
field set by hand wins over what scans infer until it is reset (then it is read again at
once); a folder anywhere may be registered, and one forgotten while it is still under a Dev
root is remembered as ignored, so the next scan does not bring it back. Scans themselves are
the runtime's (reached through `app.scanner`, scanning.Scanning).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Annotated, Any, cast

import msgspec
from msgspec import UNSET, UnsetType

from daemon.domain.app import App
from daemon.domain.crud import Version
from daemon.domain.projects import sql
from daemon.domain.projects.model import Status
from daemon.domain.projects.ref import ProjectRef, resolve
from daemon.domain.projects.row import (
    BY_HAND,
    FACTS,
    PROJECTS,
    ByHand,
    Order,
    Project,
    folder_name,
)
from daemon.domain.projects.scanning import ScanSummary, scanner_of
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidParams, NotFound
from daemon.rpc.registry import Methods, Params, ProgressParams
from daemon.store.batch import Tx
from daemon.store.limits import Limit, Offset
from daemon.store.table import Page, Where, given

methods = Methods()
_FIELDS = {f.name: f for f in msgspec.structs.fields(Project)}


# --- params and results -------------------------------------------------------------------------
class ProjectsListParams(Params, frozen=True):
    status: Annotated[list[Status], msgspec.Meta(max_length=16)] = msgspec.field(
        default_factory=list
    )  # bounded: see events_api.Topics
    query: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    order: Order = "last_worked_on"
    include_missing: bool = False
    limit: Limit = 100
    offset: Offset = 0


class ProjectParams(Params, frozen=True):
    project: ProjectRef


def _update_params() -> type[Params]:
    """`project`, each field a user may set (typed as the row types it: its limits, its
    Literals), `reset`, `expected_version`."""
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [
        ("project", ProjectRef),
        *((name, _FIELDS[name].type | UnsetType, UNSET) for name in BY_HAND),
        ("reset", Annotated[list[ByHand], msgspec.Meta(max_length=16)], msgspec.field(
            default_factory=list)),
        ("expected_version", Version | None, None),
    ]  # fmt: skip
    made = msgspec.defstruct(
        "ProjectsUpdateParams", fields, bases=(Params,), kw_only=True, frozen=True,
        forbid_unknown_fields=True,
    )  # fmt: skip
    return cast("type[Params]", made)


ProjectsUpdateParams = _update_params()


class RegisterParams(Params, frozen=True):
    path: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


class ScanParams(ProgressParams, frozen=True, kw_only=True):
    project: ProjectRef | None = None


class Forgotten(msgspec.Struct, kw_only=True):
    id: int
    path: str
    ignored: bool  # the folder is still under a Dev root: discovery will skip it from now on


# --- rules --------------------------------------------------------------------------------------
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


def _default(field: str) -> Any:
    """The row's default for `field` (what a reset field nothing infers goes back to)."""
    info = _FIELDS[field]
    return info.default_factory() if info.default is msgspec.NODEFAULT else info.default


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --- methods ------------------------------------------------------------------------------------
@methods("projects.list")
async def list_(app: App, call: Call, p: ProjectsListParams) -> Page[Project]:
    """Projects, most recently worked on first (or by name), with `{items, total}`.

    `status` filters (any of), `query` matches name, path and description,
    `include_missing` adds projects whose folder has vanished.
    """
    where = Where(PROJECTS)
    if p.status:
        where.eq("status", p.status)
    if p.query:
        like = _like(p.query)
        where.sql(
            "t.name LIKE ? ESCAPE '\\' OR t.path LIKE ? ESCAPE '\\' "
            "OR t.description LIKE ? ESCAPE '\\'",
            like, like, like,
        )  # fmt: skip
    if not p.include_missing:
        where.eq("present", True)
    return await app.db.read(PROJECTS.page, where, p.order, p.limit, p.offset)


@methods("projects.get")
async def get(app: App, call: Call, p: ProjectParams) -> Project:
    """Everything known about one project (by id, path or name)."""
    return await resolve(app.db, p.project)


async def update(app: App, call: Call, p: Any) -> Project:
    """Set fields by hand; a value you set always wins over what scans infer.

    `reset` lists fields to hand back to inference (they are read again at once).
    `expected_version` refuses the change (conflict) if someone changed the project meanwhile.
    """
    values = given(p, BY_HAND)
    reset: list[str] = p.reset
    both = set(values) & set(reset)
    if both:
        raise InvalidParams(f"Invalid params: both set and reset: {sorted(both)}", field="reset")
    project = await resolve(app.db, p.project)

    def op(tx: Tx) -> None:
        stored = PROJECTS.get(tx.conn, project.id)
        if stored is None:
            raise NotFound(f"project {project.id} was forgotten (or merged) meanwhile")
        changes: dict[str, Any] = dict(values)
        changes["user_set"] = sorted((set(stored.user_set) | set(values)) - set(reset))
        if reset:
            changes["fingerprint"] = None  # so the rescan below reads the project again
            # What no scan infers (deployed_url, Nexus' fields…) goes back to the row's default.
            changes |= {f: _default(f) for f in reset if f not in FACTS}
        sql.write(tx, stored, changes, expected_version=p.expected_version)

    await app.db.write(op)
    if reset and project.present:
        await scanner_of(app).scan_projects([project.path])
    return await resolve(app.db, project.id)


methods.add(
    "projects.update",
    update,
    params_type=ProjectsUpdateParams,
    result_type=Project,
    doc=update.__doc__ or "",
)


@methods("projects.register")
async def register(app: App, call: Call, p: RegisterParams) -> Project:
    """Track a folder (usually outside the Dev roots) as a project; it is read at once."""
    if not os.path.isabs(p.path):
        raise InvalidParams("Invalid params: path must be absolute", field="path")
    path = _clean(p.path)
    if not await _is_dir(path):
        raise NotFound(f"{path} is not a folder", path=path)

    def op(tx: Tx) -> None:
        sql.unignore_path(tx.conn, path)
        # Looked up in the same transaction: the watcher may have just found it.
        if sql.get_by_path(tx.conn, path) is None:
            PROJECTS.insert(tx, {"name": folder_name(path), "path": path, "source": "registered"})

    await app.db.write(op)
    scanner = scanner_of(app)
    await scanner.scan_projects([path])
    scanner.announce(ScanSummary(scope=[path], new=1))  # watch it from now on
    return await resolve(app.db, path)


@methods("projects.forget")
async def forget(app: App, call: Call, p: ProjectParams) -> Forgotten:
    """Remove a project from pm-agent (not from disk). One still under a Dev root is
    remembered as ignored, so the next scan does not bring it back."""
    scanner = scanner_of(app)
    project = await resolve(app.db, p.project)
    ignore = await _is_dir(project.path) and _is_under(project.path, scanner.roots)

    def op(tx: Tx) -> None:
        PROJECTS.delete(tx, project.id)
        if ignore:
            sql.ignore_path(tx.conn, project.path, tx.now)

    await app.db.write(op)
    scanner.announce(ScanSummary(scope=[project.path], missing=1))  # stop watching it
    return Forgotten(id=project.id, path=project.path, ignored=ignore)


@methods("projects.scan")
async def scan(app: App, call: Call, p: ScanParams) -> ScanSummary:
    """Scan every root (or one project, or one folder under a root) now, with `$/progress`.

    Unchanged projects are skipped; the summary counts found, new, updated, unchanged,
    missing, moved and returned projects, and the errors met.
    """
    scanner = scanner_of(app)
    call.progress("scanning", 0)
    ref = p.project
    if ref is None:
        return await scanner.scan_all(call.progress)
    if isinstance(ref, str) and ref.startswith(os.sep):
        path = _clean(ref)
        if await app.db.read(sql.get_by_path, path) is not None:
            return await scanner.scan_projects([path], call.progress)
        roots = scanner.roots
        if (
            await _is_dir(path)
            and _is_under(path, roots)
            and (
                scanner.follow_symlinks
                or not await asyncio.to_thread(_linked_below_root, path, roots)
            )
        ):
            return await scanner.scan_folders([path], call.progress)
        raise NotFound(f"no project at {path}; register it first", project=ref)
    project = await resolve(app.db, ref)
    return await scanner.scan_projects([project.path], call.progress)
