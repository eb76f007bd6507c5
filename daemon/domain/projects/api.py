"""projects.list, projects.get, projects.update, projects.register, projects.forget,
projects.scan."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from daemon.domain.projects.service import Forgotten, Page, ProjectService
from daemon.domain.projects.sql import Project
from daemon.rpc.dispatcher import Call
from daemon.rpc.registry import Params, ProgressParams, rpc_method
from daemon.runtime.scan_plan import ScanSummary
from daemon.store.limits import Limit, Offset

Status = Literal["active", "on-hold", "archived"]
ProjectRef = Annotated[
    int | str, msgspec.Meta(description="a project's id, its absolute path, or its name")
]
Text = Annotated[str, msgspec.Meta(max_length=10_000)]
Url = Annotated[str, msgspec.Meta(max_length=2048)]
Field = Literal[
    "name", "description", "status", "origin_type", "ownership", "repository_url", "deployed_url"
]


class ProjectsListParams(Params, frozen=True):
    status: Annotated[list[Status], msgspec.Meta(max_length=16)] = msgspec.field(
        default_factory=list
    )  # bounded: see events_api.Topics
    query: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    order: Literal["last_worked_on", "name", "quality"] = "last_worked_on"
    include_missing: bool = False
    limit: Limit = 100
    offset: Offset = 0


class ProjectParams(Params, frozen=True):
    project: ProjectRef


class ProjectsUpdateParams(Params, frozen=True, kw_only=True):
    project: ProjectRef
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | UnsetType = UNSET
    description: Text | UnsetType | None = UNSET
    status: Status | UnsetType = UNSET
    origin_type: Literal["created", "forked", "cloned"] | UnsetType = UNSET
    ownership: Literal["mine", "customized-fork", "exploring"] | UnsetType = UNSET
    repository_url: Url | UnsetType | None = UNSET
    deployed_url: Url | UnsetType | None = UNSET
    reset: Annotated[list[Field], msgspec.Meta(max_length=16)] = msgspec.field(default_factory=list)


class RegisterParams(Params, frozen=True):
    path: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


class ScanParams(ProgressParams, frozen=True, kw_only=True):
    project: ProjectRef | None = None


_SETTABLE = ("name", "description", "status", "origin_type", "ownership", "repository_url",
             "deployed_url")  # fmt: skip


class ProjectsApi:
    def __init__(self, projects: ProjectService) -> None:
        self._projects = projects

    @rpc_method("projects.list")
    async def list(self, call: Call, params: ProjectsListParams) -> Page:
        """Projects, most recently worked on first (or by name), with `{items, total}`.

        `status` filters (any of), `query` matches name, path and description,
        `include_missing` adds projects whose folder has vanished.
        """
        return await self._projects.list(
            status=params.status, query=params.query, order=params.order,
            include_missing=params.include_missing, limit=params.limit, offset=params.offset,
        )  # fmt: skip

    @rpc_method("projects.get")
    async def get(self, call: Call, params: ProjectParams) -> Project:
        """Everything known about one project (by id, path or name)."""
        return await self._projects.resolve(params.project)

    @rpc_method("projects.update")
    async def update(self, call: Call, params: ProjectsUpdateParams) -> Project:
        """Set fields by hand; a value you set always wins over what scans infer.

        `reset` lists fields to hand back to inference (they are read again at once).
        """
        values: dict[str, Any] = {}
        for field in _SETTABLE:
            value = getattr(params, field)
            if value is not UNSET:
                values[field] = value
        return await self._projects.update(params.project, values, params.reset)

    @rpc_method("projects.register")
    async def register(self, call: Call, params: RegisterParams) -> Project:
        """Track a folder (usually outside the Dev roots) as a project; it is read at once."""
        return await self._projects.register(params.path)

    @rpc_method("projects.forget")
    async def forget(self, call: Call, params: ProjectParams) -> Forgotten:
        """Remove a project from pm-agent (not from disk). One still under a Dev root is
        remembered as ignored, so the next scan does not bring it back."""
        return await self._projects.forget(params.project)

    @rpc_method("projects.scan")
    async def scan(self, call: Call, params: ScanParams) -> ScanSummary:
        """Scan every root (or one project, or one folder under a root) now, with `$/progress`.

        Unchanged projects are skipped; the summary counts found, new, updated, unchanged,
        missing, moved and returned projects, and the errors met.
        """

        def report(message: str, percentage: int | None) -> None:
            call.progress(message, percentage)

        call.progress("scanning", 0)
        return await self._projects.scan(params.project, report)
