"""jobs.list, jobs.get, jobs.run, jobs.cancel, jobs.record, jobs.update.

The params name a job's fields with the types `Job` declares (one constraint, one place); a
project is named like everywhere else (its id, path or name). The daemon's own kinds of work
run on the runtime's scheduler, reached through `App.scheduling`.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

import msgspec
from msgspec import UNSET, UnsetType

from daemon.domain.app import App
from daemon.domain.jobs.service import JobService, Progress, Scheduling
from daemon.domain.jobs.sql import Job, Kind, Short, Source, Status
from daemon.domain.projects.ref import ProjectRef, project_id
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidState
from daemon.rpc.registry import Methods, Params
from daemon.store.limits import Limit, Offset
from daemon.store.table import Page, given

JobId = Annotated[int, msgspec.Meta(ge=1, description="a job's id")]


class JobsListParams(Params, frozen=True):
    status: Annotated[list[Status], msgspec.Meta(max_length=16)] = msgspec.field(
        default_factory=list
    )  # bounded: see events_api.Topics
    kind: Kind | None = None
    source: Source | None = None
    project: ProjectRef | None = None
    session_id: Short | None = None
    limit: Limit = 100
    offset: Offset = 0


class JobParams(Params, frozen=True):
    id: JobId


class JobsRunParams(Params, frozen=True):
    kind: Kind
    args: dict[str, Any] = msgspec.field(default_factory=dict)


# What a client sets on a job of its own, with the types and defaults `Job` declares:
# jobs.record takes them (and the kind), jobs.update changes any of them. The project is named
# by reference (`project`: its id, path or name) and stored as project_id.
_COLUMNS = ("status", "prompt", "response", "error", "api_type", "model_used", "session_id",
            "metadata")  # fmt: skip
_JOB = {f.name: f for f in msgspec.structs.fields(Job)}


def _default(name: str) -> Any:
    info = _JOB[name]
    if info.default_factory is not msgspec.NODEFAULT:
        return msgspec.field(default_factory=info.default_factory)
    return info.default


def _params(name: str, fields: list[tuple[str, Any, Any]]) -> type[Params]:
    made = msgspec.defstruct(
        name, fields, bases=(Params,), frozen=True, kw_only=True, forbid_unknown_fields=True
    )
    return cast("type[Params]", made)


JobsRecordParams = _params(
    "JobsRecordParams",
    [
        ("kind", Kind, msgspec.NODEFAULT),
        *((n, _JOB[n].type, _default(n)) for n in _COLUMNS),
        ("project", ProjectRef | None, None),
    ],
)
JobsUpdateParams = _params(  # absent: unchanged; null: cleared
    "JobsUpdateParams",
    [
        ("id", JobId, msgspec.NODEFAULT),
        *((n, _JOB[n].type | UnsetType, UNSET) for n in _COLUMNS),
        ("project", ProjectRef | None | UnsetType, UNSET),
    ],
)


class JobDetail(Job, kw_only=True):
    """A job, with the progress its run last reported while it runs."""

    progress: Progress | None = None


def _jobs(app: App) -> JobService:
    return JobService(app.db, app.data_dir)  # two paths: nothing to keep between calls


def _scheduling(app: App) -> Scheduling:
    if app.scheduling is None:
        raise InvalidState("no scheduler runs in this process: the daemon's jobs cannot run")
    return app.scheduling


async def _project_id(app: App, ref: int | str | None) -> int | None:
    return None if ref is None else await project_id(app, ref)


def _detail(app: App, job: Job) -> JobDetail:
    scheduling = app.scheduling if job.source == "daemon" else None
    progress = scheduling.progress(job.id) if scheduling is not None else None
    return JobDetail(**msgspec.structs.asdict(job), progress=progress)


methods = Methods()


@methods("jobs.list")
async def list_(app: App, call: Call, p: JobsListParams) -> Page[Job]:
    """Jobs, newest first, with `{items, total}`.

    `status` filters (any of); `kind`, `source` (daemon: the daemon's own runs; client:
    jobs clients recorded), `project` and `session_id` narrow further.
    """
    return await _jobs(app).list(
        status=p.status, kind=p.kind, source=p.source, session_id=p.session_id,
        project_id=await _project_id(app, p.project), limit=p.limit, offset=p.offset,
    )  # fmt: skip


@methods("jobs.get")
async def get(app: App, call: Call, p: JobParams) -> JobDetail:
    """One job; a running daemon job also carries the `progress` it last reported.

    A response over 64 KiB is not inline: `output_path` names the file that holds it
    (always `<data>/jobs/<id>.out`).
    """
    return _detail(app, await _jobs(app).get(p.id))


@methods("jobs.run")
async def run(app: App, call: Call, p: JobsRunParams) -> JobDetail:
    """Start one of the daemon's own kinds of work now (`args` go to it); returns the
    queued job at once. Follow it with `jobs.get` or the `jobs.finished` event.
    """
    job_id = await _scheduling(app).run_now(p.kind, **p.args)
    return _detail(app, await _jobs(app).get(job_id))


@methods("jobs.cancel")
async def cancel(app: App, call: Call, p: JobParams) -> JobDetail:
    """Cancel a queued or running job; a finished one is an invalid_state error.

    A daemon job is stopped (its task cancelled) before this answers, as far as it lets
    itself be stopped within 10 s.
    """
    return _detail(app, await _jobs(app).cancel(p.id, app.scheduling))


async def record(app: App, call: Call, p: Any) -> Job:
    """Record a job of a client's own (an agent's API call: prompt, response, api_type,
    model_used, metadata), `queued` unless `status` says otherwise."""
    fields = given(p, _COLUMNS)
    fields["project_id"] = await _project_id(app, p.project)
    return await _jobs(app).record(p.kind, fields)


async def update(app: App, call: Call, p: Any) -> Job:
    """Change a job: queued → running → completed | failed | canceled; running may go
    back to queued (a retry, counted in `attempts`). A finished job cannot change status
    (invalid_state). `metadata` is merged into the stored object (null removes a key).
    """
    fields = given(p, _COLUMNS)
    if p.project is not UNSET:
        fields["project_id"] = await _project_id(app, p.project)
    return await _jobs(app).update(p.id, fields)


methods.add("jobs.record", record, params_type=JobsRecordParams, result_type=Job,
            doc=str(record.__doc__))  # fmt: skip
methods.add("jobs.update", update, params_type=JobsUpdateParams, result_type=Job,
            doc=str(update.__doc__))  # fmt: skip
