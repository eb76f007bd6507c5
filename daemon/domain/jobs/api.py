"""jobs.list, jobs.get, jobs.run, jobs.cancel, jobs.record, jobs.update."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from daemon.domain.jobs.service import ERROR_MAX, SHORT_MAX, JobService, Page
from daemon.domain.jobs.sql import Job
from daemon.domain.projects.service import ProjectService
from daemon.rpc.dispatcher import Call
from daemon.rpc.registry import Params, rpc_method
from daemon.runtime.scheduler import Scheduler
from daemon.runtime.schedules import Progress
from daemon.store.limits import Limit, Offset

Status = Literal["queued", "running", "completed", "failed", "canceled"]
Source = Literal["daemon", "client"]
JobId = Annotated[int, msgspec.Meta(ge=1, description="a job's id")]
Kind = Annotated[
    str, msgspec.Meta(min_length=1, max_length=100, description="the job's type (task_type)")
]
Project = Annotated[
    int | str, msgspec.Meta(description="a project's id, its absolute path, or its name")
]
Short = Annotated[str, msgspec.Meta(max_length=SHORT_MAX)]
Text = Annotated[str, msgspec.Meta(description="any length; over 64 KiB it is kept in a file")]
Error = Annotated[str, msgspec.Meta(max_length=ERROR_MAX)]


class JobsListParams(Params, frozen=True):
    status: Annotated[list[Status], msgspec.Meta(max_length=16)] = msgspec.field(
        default_factory=list
    )  # bounded: see events_api.Topics
    kind: Kind | None = None
    source: Source | None = None
    project: Project | None = None
    session_id: Short | None = None
    limit: Limit = 100
    offset: Offset = 0


class JobParams(Params, frozen=True):
    id: JobId


class JobsRunParams(Params, frozen=True):
    kind: Kind
    args: dict[str, Any] = msgspec.field(default_factory=dict)


class JobsRecordParams(Params, frozen=True, kw_only=True):
    kind: Kind
    status: Status = "queued"
    prompt: Text | None = None
    response: Text | None = None
    error: Error | None = None
    api_type: Short | None = None
    model_used: Short | None = None
    session_id: Short | None = None
    project: Project | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class JobsUpdateParams(Params, frozen=True, kw_only=True):
    id: JobId
    status: Status | UnsetType = UNSET
    prompt: Text | UnsetType | None = UNSET
    response: Text | UnsetType | None = UNSET
    error: Error | UnsetType | None = UNSET
    api_type: Short | UnsetType | None = UNSET
    model_used: Short | UnsetType | None = UNSET
    session_id: Short | UnsetType | None = UNSET
    project: Project | UnsetType | None = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET


class JobDetail(Job, kw_only=True):
    """A job, with the progress its run last reported while it runs."""

    progress: Progress | None = None


_UPDATABLE = ("status", "prompt", "response", "error", "api_type", "model_used", "session_id",
              "metadata")  # fmt: skip


class JobsApi:
    def __init__(self, jobs: JobService, scheduler: Scheduler, projects: ProjectService) -> None:
        self._jobs = jobs
        self._scheduler = scheduler
        self._projects = projects

    async def _project_id(self, ref: int | str | None) -> int | None:
        """Like every method that names a project: an id, a path or a name."""
        return None if ref is None else (await self._projects.resolve(ref)).id

    def _detail(self, job: Job) -> JobDetail:
        progress = self._scheduler.progress(job.id) if job.source == "daemon" else None
        return JobDetail(**msgspec.structs.asdict(job), progress=progress)

    @rpc_method("jobs.list")
    async def list(self, call: Call, params: JobsListParams) -> Page:
        """Jobs, newest first, with `{items, total}`.

        `status` filters (any of); `kind`, `source` (daemon: the daemon's own runs; client:
        jobs clients recorded), `project` and `session_id` narrow further.
        """
        return await self._jobs.list(
            status=params.status, kind=params.kind, source=params.source,
            project_id=await self._project_id(params.project), session_id=params.session_id,
            limit=params.limit, offset=params.offset,
        )  # fmt: skip

    @rpc_method("jobs.get")
    async def get(self, call: Call, params: JobParams) -> JobDetail:
        """One job; a running daemon job also carries the `progress` it last reported.

        A response over 64 KiB is not inline: `output_path` names the file that holds it
        (always `<data>/jobs/<id>.out`).
        """
        return self._detail(await self._jobs.get(params.id))

    @rpc_method("jobs.run")
    async def run(self, call: Call, params: JobsRunParams) -> JobDetail:
        """Start one of the daemon's own kinds of work now (`args` go to it); returns the
        queued job at once. Follow it with `jobs.get` or the `job.finished` event.
        """
        job_id = await self._scheduler.run_now(params.kind, **params.args)
        return self._detail(await self._jobs.get(job_id))

    @rpc_method("jobs.cancel")
    async def cancel(self, call: Call, params: JobParams) -> JobDetail:
        """Cancel a queued or running job; a finished one is an invalid_state error.

        A daemon job is stopped (its task cancelled) before this answers, as far as it lets
        itself be stopped within 10 s.
        """
        return self._detail(await self._jobs.cancel(params.id))

    @rpc_method("jobs.record")
    async def record(self, call: Call, params: JobsRecordParams) -> Job:
        """Record a job of a client's own (an agent's API call: prompt, response, api_type,
        model_used, metadata), `queued` unless `status` says otherwise."""
        fields: dict[str, Any] = {
            "status": params.status, "prompt": params.prompt, "response": params.response,
            "error": params.error, "api_type": params.api_type, "model_used": params.model_used,
            "session_id": params.session_id,
            "project_id": await self._project_id(params.project),
            "metadata": params.metadata,
        }  # fmt: skip
        return await self._jobs.record(params.kind, fields)

    @rpc_method("jobs.update")
    async def update(self, call: Call, params: JobsUpdateParams) -> Job:
        """Change a job: queued → running → completed | failed | canceled; running may go
        back to queued (a retry, counted in `attempts`). A finished job cannot change status
        (invalid_state). `metadata` is merged into the stored object (null removes a key).
        """
        fields: dict[str, Any] = {}
        for name in _UPDATABLE:
            value = getattr(params, name)
            if value is not UNSET:
                fields[name] = value
        if params.project is not UNSET:
            fields["project_id"] = await self._project_id(params.project)
        return await self._jobs.update(params.id, fields)
