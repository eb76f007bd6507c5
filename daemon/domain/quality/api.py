"""quality.scan, quality.get, quality.history, quality.list."""

from __future__ import annotations

import msgspec

from daemon.domain.projects.api import ProjectRef
from daemon.domain.projects.service import ProjectService
from daemon.domain.quality.service import HistoryPage, QualityService, QualitySummary, RankedPage
from daemon.domain.quality.sql import QualityRow
from daemon.rpc.dispatcher import Call
from daemon.rpc.registry import Params, ProgressParams, rpc_method
from daemon.store.limits import Limit, Offset


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


class QualityApi:
    def __init__(self, quality: QualityService, projects: ProjectService) -> None:
        self._quality = quality
        self._projects = projects

    @rpc_method("quality.scan")
    async def scan(self, call: Call, params: QualityScanParams) -> QualitySummary:
        """Assess every project (or one) now, with `$/progress`; unchanged projects are skipped.

        Only time moves the maintenance component of an unchanged project: that refreshes its
        score without reading its files.
        """
        ids = None
        if params.project is not None:
            ids = [(await self._projects.resolve(params.project)).id]

        def report(message: str, percentage: int | None) -> None:
            call.progress(message, percentage)

        call.progress("assessing", 0)
        return await self._quality.scan(ids, report)

    @rpc_method("quality.get")
    async def get(self, call: Call, params: QualityProjectParams) -> QualityView:
        """The latest assessment of one project: score, components, what was found, gains."""
        project = await self._projects.resolve(params.project)
        return QualityView(
            project=ProjectBrief(id=project.id, name=project.name, path=project.path),
            latest=await self._quality.latest(project.id),
        )

    @rpc_method("quality.history")
    async def history(self, call: Call, params: QualityHistoryParams) -> HistoryPage:
        """Every assessment of one project, newest first."""
        project = await self._projects.resolve(params.project)
        return await self._quality.history(project.id, params.limit, params.offset)

    @rpc_method("quality.list")
    async def list(self, call: Call, params: QualityListParams) -> RankedPage:
        """Projects ranked by their latest score, with the change since a week ago."""
        return await self._quality.ranked(params.limit, params.offset)
