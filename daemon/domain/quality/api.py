"""quality.scan, quality.get, quality.history, quality.list.

Reads go straight to the table; a scan needs the assessment pool (`App.quality`, the
QualityService the runtime builds with the configured weights).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from daemon.domain.app import App
from daemon.domain.projects.ref import ProjectRef, resolve
from daemon.domain.quality import sql as quality_db
from daemon.domain.quality.service import QualitySummary
from daemon.domain.quality.sql import QualityRow, Ranked
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidState
from daemon.rpc.registry import Methods, Params, ProgressParams
from daemon.store.clock import iso
from daemon.store.limits import Limit, Offset
from daemon.store.table import Page


class QualityScanParams(ProgressParams, frozen=True, kw_only=True):
    project: ProjectRef | None = None


class QualityProjectParams(Params, frozen=True):
    project: ProjectRef


class QualityHistoryParams(Params, frozen=True):
    project: ProjectRef
    limit: Limit = 50
    offset: Offset = 0


class QualityListParams(Params, frozen=True):
    limit: Limit = 100
    offset: Offset = 0


class ProjectBrief(msgspec.Struct, kw_only=True):
    id: int
    name: str
    path: str


class QualityView(msgspec.Struct, kw_only=True):
    project: ProjectBrief
    latest: QualityRow | None  # None until the project's first assessment


methods = Methods()


@methods("quality.scan")
async def scan(app: App, call: Call, p: QualityScanParams) -> QualitySummary:
    """Assess every project (or one) now, with `$/progress`; unchanged projects are skipped.

    Only time moves the maintenance component of an unchanged project: that refreshes its
    score without reading its files.
    """
    if app.quality is None:
        raise InvalidState("no assessment pool runs in this process: quality cannot be scanned")
    ids = None if p.project is None else [(await resolve(app.db, p.project)).id]
    call.progress("assessing", 0)
    return await app.quality.scan(ids, call.progress)


@methods("quality.get")
async def get(app: App, call: Call, p: QualityProjectParams) -> QualityView:
    """The latest assessment of one project: score, components, what was found, gains."""
    project = await resolve(app.db, p.project)
    return QualityView(
        project=ProjectBrief(id=project.id, name=project.name, path=project.path),
        latest=await app.db.read(quality_db.latest, project.id),
    )


@methods("quality.history")
async def history(app: App, call: Call, p: QualityHistoryParams) -> Page[QualityRow]:
    """Every assessment of one project, newest first."""
    project = await resolve(app.db, p.project)
    items, total = await app.db.read(quality_db.history, project.id, p.limit, p.offset)
    return Page(items=items, total=total)


@methods("quality.list")
async def list_(app: App, call: Call, p: QualityListParams) -> Page[Ranked]:
    """Projects ranked by their latest score, with the change since a week ago."""
    week_ago = iso(datetime.now(UTC) - timedelta(days=7))
    return await app.db.read(quality_db.ranked, week_ago, p.limit, p.offset)
