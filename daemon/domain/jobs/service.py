"""Jobs: the daemon's own runs and the jobs clients record, with the background_jobs lifecycle.

    queued → running → completed | failed | canceled
    running → queued          (a retry: the next → running counts another attempt)
    queued → completed | failed | canceled

A finished job (completed, failed, canceled) never changes status again; its other fields
(response, error, metadata, …) may still be set. `started_at` is set by each → running (so it
is the start of the latest attempt), `finished_at` by the move to a finished status, and
`updated_at` (and `version`) by every change. Every change is one write operation that emits
its events in the same transaction: `jobs.created` (the row), `jobs.updated` (`changed`: the
new values, except prompt and response, which are only named in `changed_text`), and
`jobs.finished` once a job reaches a finished status.

A response larger than 64 KiB is not stored inline: it goes to `<data>/jobs/<id>.out` (0600,
in a 0700 folder) and `output_path` names the file. The file is written and fsynced before
the transaction and renamed into place inside it, so a committed `output_path` names a
complete file.

`output_path` is derived, never trusted: the stored column only says that the output is in a
file (an imported row may hold any path there). The path shown is always `<data>/jobs/<id>.out`,
and only that file is ever removed, if at the moment of removal it is a regular file of ours in
the jobs folder, itself checked (not a link, ours, 0700) each time it is used.
"""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import msgspec
import structlog

from daemon.domain.jobs import sql as jobs_db
from daemon.domain.jobs.sql import (
    FINISHED,
    FINISHED_EVENT,
    JOBS,
    METADATA_DEPTH_MAX,
    STOPPED_BEFORE_RUNNING,
    STOPPED_WHILE_RUNNING,
    Job,
    finished_event,
    updated_event,
)
from daemon.platform import private_folders
from daemon.rpc.errors import InvalidParams, InvalidState, NotFound, StorageError, TooLarge
from daemon.store import jsontext
from daemon.store.batch import Tx
from daemon.store.database import Database
from daemon.store.table import Page, Where

JOBS_DIR = "jobs"  # below the data folder
JOBS_FOLDER = "job outputs folder"  # what it is called in messages
RESPONSE_INLINE_MAX = 64 * 1024  # bytes of UTF-8; larger responses go to a file
METADATA_MAX = 256 * 1024  # bytes of JSON

log = structlog.get_logger("pm.jobs")


class Progress(msgspec.Struct, kw_only=True):
    """What a running daemon job last reported."""

    message: str
    percentage: int | None
    at: str


class Scheduling(Protocol):
    """What the jobs domain needs of the runtime's scheduler (App.scheduling)."""

    async def run_now(self, kind: str, **args: Any) -> int:
        """Queue a run of one of the daemon's kinds now; its job id."""
        ...

    async def cancel(self, job_id: int) -> bool:
        """Stop a daemon job it runs or holds (and record that); False: not one of its own."""
        ...

    def progress(self, job_id: int) -> Progress | None: ...


def _transition(job: Job, new: str, now: str) -> dict[str, Any]:
    """The columns a status change sets; raises InvalidState for a change the rules forbid."""
    old = job.status
    if new == old:
        return {}  # saying it again is not a change (a retried request stays harmless)
    if old in FINISHED:
        raise InvalidState(
            f"job {job.id} is already {old} (finished at {job.finished_at}); a finished job "
            f"cannot become {new}",
            id=job.id,
            status=old,
        )
    changes: dict[str, Any] = {"status": new}
    if new == "running":
        changes["attempts"] = job.attempts + 1
        changes["started_at"] = now
    elif new in FINISHED:
        changes["finished_at"] = now
        if new == "completed" and job.started_at is None:  # it ran, though nobody said so
            changes["started_at"] = now
            changes["attempts"] = job.attempts + 1
    return changes


def _merge(old: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Shallow merge: given keys replace stored ones; a null value removes the key."""
    merged = dict(old)
    for key, value in given.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _changes(job: Job, fields: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The columns an update changes, response aside (it may go to a file)."""
    changes: dict[str, Any] = {}
    if fields.get("status") is not None:
        changes |= _transition(job, fields["status"], now)
    for name, value in fields.items():
        if name not in ("status", "metadata", "response") and getattr(job, name) != value:
            changes[name] = value
    if fields.get("metadata") is not None:
        merged = _merge(job.metadata, fields["metadata"])
        if merged != job.metadata:
            check_metadata(merged)  # what is stored is held to the limits, merges included
            changes["metadata"] = merged
    return changes


_encode = msgspec.json.Encoder().encode


def check_metadata(metadata: Mapping[str, Any]) -> None:
    """A job's metadata within the limits an import also holds it to (its size as JSON, how
    deeply it nests)."""
    text = _encode(metadata).decode()
    size = len(text.encode("utf-8"))
    if size > METADATA_MAX:
        raise TooLarge(
            f"metadata of {size} bytes exceeds the limit of {METADATA_MAX} bytes",
            limit=METADATA_MAX,
        )
    deep = jsontext.depth(text)
    if deep > METADATA_DEPTH_MAX:
        raise InvalidParams(
            f"Invalid params: metadata nests {deep} levels deep, over the limit of "
            f"{METADATA_DEPTH_MAX}",
            field="metadata",
        )


class JobService:
    """The lifecycle and the output files; `fields` are Job columns (the params decoded them:
    every value is of its field's type)."""

    def __init__(self, db: Database, data_dir: str) -> None:
        self._db = db
        self._dir = os.path.join(data_dir, JOBS_DIR)

    def output_path(self, job_id: int) -> str:
        return os.path.join(self._dir, _output_name(job_id))

    def _shown(self, job: Job) -> Job:
        """The job with its output path derived from its id (the stored one is not trusted)."""
        derived = None if job.output_path is None else self.output_path(job.id)
        if derived == job.output_path:
            return job
        return msgspec.structs.replace(job, output_path=derived)

    # --- reading ----------------------------------------------------------------------
    async def get(self, job_id: int) -> Job:
        job = await self._db.read(jobs_db.get, job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id}", id=job_id)
        return self._shown(job)

    async def list(self, *, limit: int = 100, offset: int = 0, **filters: Any) -> Page[Job]:
        """Newest first, with the total that matches the filters (column: value, or a list
        of values any of which matches; None or an empty list: no filter)."""
        where = Where(JOBS)
        for column, value in filters.items():
            if value is not None and value != []:
                where.eq(column, value)
        page = await self._db.read(jobs_db.page, where, limit, offset)
        return Page(items=[self._shown(job) for job in page.items], total=page.total)

    async def last_scheduled_start(self, kind: str) -> str | None:
        return await self._db.read(jobs_db.last_scheduled_start, kind)

    # --- writing ----------------------------------------------------------------------
    async def record(self, kind: str, fields: Mapping[str, Any]) -> Job:
        """A job a client keeps for itself (source client): status as given, or queued."""
        return await self._create("client", kind, fields)

    async def create_daemon_job(self, kind: str, fields: Mapping[str, Any]) -> Job:
        """A run of the daemon's own (source daemon), the scheduler's bookkeeping. A project
        forgotten meanwhile is left out (the run goes on) rather than refused."""
        return await self._create("daemon", kind, fields)

    async def _create(self, source: str, kind: str, fields: Mapping[str, Any]) -> Job:
        given = {k: v for k, v in fields.items() if v is not None}
        values = JOBS.with_defaults({**given, "kind": kind, "source": source})
        check_metadata(values["metadata"])
        status = values["status"]
        response = values["response"]
        staged = await self._stage(response) if isinstance(response, str) else None
        if staged is not None:
            values["response"] = None

        def op(tx: Tx) -> Job:
            row = dict(values)
            project_id = row["project_id"]
            if project_id is not None and not jobs_db.project_exists(tx.conn, project_id):
                if source != "daemon":
                    raise NotFound(f"no project with id {project_id}", project=project_id)
                log.info("a run's project was forgotten meanwhile", kind=kind, project=project_id)
                row["project_id"] = None
            if status in ("running", "completed", "failed"):
                row["started_at"] = tx.now
                row["attempts"] = 1
            if status in FINISHED:
                row["finished_at"] = tx.now
            job = JOBS.insert(tx, row, emit=False)
            if staged is not None:
                self._place(staged, job.id)
                jobs_db.set_output_path(tx.conn, job.id, self.output_path(job.id))
                job = JOBS.must_get(tx.conn, job.id)
            job = self._shown(job)
            tx.emit(JOBS.created, job)
            if status in FINISHED:
                tx.emit(FINISHED_EVENT, finished_event(job))
            return job

        return await self._write(op, staged)

    async def update(self, job_id: int, fields: Mapping[str, Any]) -> Job:
        """Change a job under the lifecycle rules (see the module's docstring).

        `metadata` is merged into what is stored (a null value removes a key); `response`
        replaces the stored output (inline or file). Raises NotFound, InvalidState.
        """
        response = fields.get("response")
        staged = await self._stage(response) if isinstance(response, str) else None
        replaced_file: list[int] = []

        def op(tx: Tx) -> Job:
            return self._change(tx, job_id, fields, staged, replaced_file)

        job = await self._write(op, staged)
        for old in replaced_file:
            await asyncio.to_thread(self._remove_output, old)
        return job

    def _change(
        self,
        tx: Tx,
        job_id: int,
        fields: Mapping[str, Any],
        staged: str | None = None,
        replaced_file: builtins.list[int] | None = None,
    ) -> Job:
        """One job's change inside a write, with its events."""
        job = jobs_db.get(tx.conn, job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id}", id=job_id)
        changes = _changes(job, fields, tx.now)
        project_id = changes.get("project_id")
        if project_id is not None and not jobs_db.project_exists(tx.conn, project_id):
            raise NotFound(f"no project with id {project_id}", project=project_id)
        if "response" in fields:
            if staged is not None:
                self._place(staged, job_id)
                changes |= {"response": None, "output_path": self.output_path(job_id)}
            elif fields["response"] != job.response or job.output_path is not None:
                changes |= {"response": fields["response"], "output_path": None}
                if job.output_path is not None and replaced_file is not None:
                    replaced_file.append(job_id)  # its file, wherever the row says it is
        changes = {k: v for k, v in changes.items() if getattr(job, k) != v}
        if staged is not None:
            changes["response"] = None  # a new output file: a change, whatever the row held
        if not changes:
            return self._shown(job)
        try:
            new = JOBS.update(tx, job_id, changes, emit=False)
        except jobs_db.UNREADABLE as e:  # read before anything is written
            raise InvalidState(
                f"job {job_id} holds what no method can read back as a job ({e}): it can be "
                "shown, not changed; correct or remove the row",
                id=job_id,
            ) from e
        if new.version == job.version:  # only the output file's content changed
            new = jobs_db.touched(tx.conn, job_id, tx.now)
        tx.emit(JOBS.updated, updated_event(new, changes))
        if "status" in changes and new.status in FINISHED:
            tx.emit(FINISHED_EVENT, finished_event(new))
        return self._shown(new)

    async def cancel(self, job_id: int, scheduling: Scheduling | None = None) -> Job:
        """Stop a job. A daemon job that is running or waiting is stopped by the scheduler
        (which records it canceled); a client job is marked canceled."""
        job = await self.get(job_id)
        if job.status in FINISHED:
            raise InvalidState(
                f"job {job_id} is already {job.status} (finished at {job.finished_at}); "
                "there is nothing to cancel",
                id=job_id,
                status=job.status,
            )
        if job.source == "daemon" and scheduling is not None and await scheduling.cancel(job_id):
            return await self.get(job_id)
        return await self.update(job_id, {"status": "canceled"})

    async def recover(self) -> builtins.list[Job]:
        """At start-up, before the scheduler runs anything: close the daemon jobs a previous
        process left running (failed) or queued (canceled). Client jobs are left alone: their
        clients may still be working on them."""

        def op(tx: Tx) -> builtins.list[Job]:
            closed = []
            for job_id, status in jobs_db.unfinished_daemon_jobs(tx.conn):
                if status == "running":
                    outcome = {"status": "failed", "error": STOPPED_WHILE_RUNNING}
                else:
                    outcome = {"status": "canceled", "error": STOPPED_BEFORE_RUNNING}
                try:
                    closed.append(self._change(tx, job_id, outcome))
                except InvalidState as e:  # the others are closed all the same
                    log.warning("could not close a leftover job", job=job_id, error=e.message)
            return closed

        return await self._db.write(op)

    # --- output files -----------------------------------------------------------------
    async def _write(self, op: Callable[[Tx], Job], staged: str | None) -> Job:
        try:
            return await self._db.write(op)
        except BaseException:
            if staged is not None:
                await asyncio.to_thread(self._remove_own, staged)
            raise

    async def _stage(self, text: str) -> str | None:
        """A response too large to keep inline, written (and fsynced) to a temporary file in
        the jobs folder; its name there, or None when it stays inline."""
        data = text.encode("utf-8")
        if len(data) <= RESPONSE_INLINE_MAX:
            return None
        try:
            return await asyncio.to_thread(self._write_temp, data)
        except OSError as e:
            raise StorageError(f"could not keep the response in a file: {e}") from e

    def _write_temp(self, data: bytes) -> str:
        with private_folders.opened(self._dir, what=JOBS_FOLDER, parents=True) as folder:
            name = f".{os.urandom(8).hex()}.tmp"
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                         dir_fd=folder)  # fmt: skip
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
            except BaseException:
                private_folders.remove_own_file(folder, name)
                raise
        return name

    def _place(self, staged: str, job_id: int) -> None:
        """Inside the write: the staged file becomes the job's output file."""
        try:
            with private_folders.opened(self._dir, what=JOBS_FOLDER, create=False) as folder:
                os.replace(staged, _output_name(job_id), src_dir_fd=folder, dst_dir_fd=folder)
        except OSError as e:
            raise StorageError(f"could not keep the response in a file: {e}") from e

    def _remove_output(self, job_id: int) -> None:
        self._remove_own(_output_name(job_id))

    def _remove_own(self, name: str) -> None:
        """Remove `name` from the jobs folder if it is a file of ours there, now."""
        try:
            with private_folders.opened(self._dir, what=JOBS_FOLDER, create=False) as folder:
                private_folders.remove_own_file(folder, name)
        except FileNotFoundError:
            pass
        except OSError as e:  # the output stays; the job itself was changed
            log.warning("could not remove a job's output file", file=name, error=str(e))


def _output_name(job_id: int) -> str:
    return f"{job_id}.out"
