"""Jobs: the daemon's own runs and the jobs clients record, with the background_jobs lifecycle.

    queued → running → completed | failed | canceled
    running → queued          (a retry: the next → running counts another attempt)
    queued → completed | failed | canceled

A finished job (completed, failed, canceled) never changes status again; its other fields
(response, error, metadata, …) may still be set. `started_at` is set by each → running (so it
is the start of the latest attempt), `finished_at` by the move to a finished status, and
`updated_at` by every change. Every change is one write operation that emits its events in
the same transaction: `job.created`, `job.updated` (`changed`: the new values, except prompt
and response, which are only named in `changed_text`), and `job.finished` once a job reaches a
finished status.

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
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import msgspec
import structlog

from daemon.domain.jobs import sql as jobs_db
from daemon.domain.jobs.sql import FINISHED, METADATA_DEPTH_MAX, STATUSES, Interrupted, Job
from daemon.platform import private_folders
from daemon.rpc.errors import InvalidParams, InvalidState, NotFound, StorageError, TooLarge
from daemon.store import jsontext
from daemon.store.database import Database
from daemon.store.writer import Tx

JOBS_DIR = "jobs"  # below the data folder
JOBS_FOLDER = "job outputs folder"  # what it is called in messages
RESPONSE_INLINE_MAX = 64 * 1024  # bytes of UTF-8; larger responses go to a file
METADATA_MAX = 256 * 1024  # bytes of JSON
SHORT_MAX = 500  # characters of api_type, model_used, session_id
ERROR_MAX = 100_000  # characters of error
FIELDS: frozenset[str] = frozenset(
    {"status", "prompt", "response", "error", "api_type", "model_used", "session_id",
     "project_id", "metadata"}
)  # fmt: skip
_TEXT = ("prompt", "response")  # named, not copied, in events: they can be large

log = structlog.get_logger("pm.jobs")


class Page(msgspec.Struct, kw_only=True):
    items: list[Job]
    total: int


class Canceller(Protocol):
    """What can stop a running daemon job (the scheduler)."""

    async def cancel(self, job_id: int) -> bool:
        """True when it knew the job and stopped it (and recorded that)."""
        ...


def _summary(job: Job) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "source": job.source, "status": job.status}


def _finished_event(job: Job) -> dict[str, Any]:
    return {
        **_summary(job),
        "error": job.error,
        "attempts": job.attempts,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "project_id": job.project_id,
        "session_id": job.session_id,
    }


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
            changes["metadata"] = merged
    return changes


def _check_fields(fields: Mapping[str, Any]) -> None:
    unknown = set(fields) - FIELDS
    if unknown:
        raise InvalidParams(f"Invalid params: not a job field: {sorted(unknown)}")
    status = fields.get("status")
    if status is not None and status not in STATUSES:
        raise InvalidParams(
            f"Invalid params: status must be one of {', '.join(STATUSES)}", field="status"
        )
    metadata = fields.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise InvalidParams("Invalid params: metadata must be an object", field="metadata")
        check_metadata(jobs_db.encode_metadata(metadata))


def check_metadata(text: str) -> None:
    """A job's metadata (JSON text) within the limits: the API's, and an import's."""
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
    def __init__(self, db: Database, data_dir: str) -> None:
        self._db = db
        self._dir = os.path.join(data_dir, JOBS_DIR)
        self._canceller: Canceller | None = None

    def attach_scheduler(self, canceller: Canceller) -> None:
        self._canceller = canceller

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

    async def list(
        self,
        *,
        status: Sequence[str] = (),
        kind: str | None = None,
        source: str | None = None,
        project_id: int | None = None,
        session_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page:
        """Newest first, with the total that matches the filters."""

        def page(conn: Any) -> Page:
            items = jobs_db.list_jobs(
                conn, status=status, kind=kind, source=source, project_id=project_id,
                session_id=session_id, limit=limit, offset=offset,
            )  # fmt: skip
            # (always counted: a page may stop short of `limit` at its byte budget)
            total = jobs_db.count_jobs(
                conn, status=status, kind=kind, source=source, project_id=project_id,
                session_id=session_id,
            )  # fmt: skip
            return Page(items=[self._shown(job) for job in items], total=total)

        return await self._db.read(page)

    async def last_scheduled_start(self, kind: str) -> str | None:
        return await self._db.read(jobs_db.last_scheduled_start, kind)

    # --- writing ----------------------------------------------------------------------
    async def record(self, kind: str, fields: Mapping[str, Any]) -> Job:
        """A job a client keeps for itself (source client): status as given, or queued."""
        return await self._create("client", kind, fields)

    async def create_daemon_job(self, kind: str, fields: Mapping[str, Any]) -> Job:
        """A run of the daemon's own (source daemon); the scheduler's bookkeeping."""
        return await self._create("daemon", kind, fields)

    async def _create(self, source: str, kind: str, fields: Mapping[str, Any]) -> Job:
        _check_fields(fields)
        if not 1 <= len(kind) <= 100:
            raise InvalidParams("Invalid params: kind must be 1 to 100 characters", field="kind")
        values = {k: v for k, v in fields.items() if v is not None}
        status = values.get("status", "queued")
        values["status"] = status
        response = values.get("response")
        staged = await self._stage(response) if isinstance(response, str) else None
        if staged is not None:
            del values["response"]

        def op(tx: Tx) -> Job:
            self._check_project(tx, values.get("project_id"))
            row: dict[str, Any] = {"kind": kind, "source": source, **values}
            if status in ("running", "completed", "failed"):
                row["started_at"] = tx.now
                row["attempts"] = 1
            if status in FINISHED:
                row["finished_at"] = tx.now
            job_id = jobs_db.insert(tx.conn, row, tx.now)
            if staged is not None:
                self._place(staged, job_id)
                jobs_db.update(tx.conn, job_id, {"output_path": self.output_path(job_id)}, tx.now)
            job = jobs_db.get(tx.conn, job_id)
            assert job is not None
            job = self._shown(job)
            tx.emit(
                "job.created",
                {**_summary(job), "project_id": job.project_id, "session_id": job.session_id},
            )
            if status in FINISHED:
                tx.emit("job.finished", _finished_event(job))
            return job

        return await self._write(op, staged)

    async def update(self, job_id: int, fields: Mapping[str, Any]) -> Job:
        """Change a job under the lifecycle rules (see the module's docstring).

        `metadata` is merged into what is stored (a null value removes a key); `response`
        replaces the stored output (inline or file). Raises NotFound, InvalidState.
        """
        _check_fields(fields)
        response = fields.get("response")
        staged = await self._stage(response) if isinstance(response, str) else None
        replaced_file: list[int] = []

        def op(tx: Tx) -> Job:
            job = jobs_db.get(tx.conn, job_id)
            if job is None:
                raise NotFound(f"no job with id {job_id}", id=job_id)
            changes = _changes(job, fields, tx.now)
            if "project_id" in changes:
                self._check_project(tx, changes["project_id"])
            if "response" in fields:
                if staged is not None:
                    self._place(staged, job_id)
                    changes |= {"response": None, "output_path": self.output_path(job_id)}
                elif response != job.response or job.output_path is not None:
                    changes |= {"response": response, "output_path": None}
                    if job.output_path is not None:  # its file, wherever the row says it is
                        replaced_file.append(job_id)
            if not changes:
                return self._shown(job)
            jobs_db.update(tx.conn, job_id, changes, tx.now)
            updated = jobs_db.get(tx.conn, job_id)
            assert updated is not None
            updated = self._shown(updated)
            tx.emit(
                "job.updated",
                {
                    **_summary(updated),
                    "changed": {k: v for k, v in changes.items() if k not in _TEXT},
                    "changed_text": [k for k in _TEXT if k in changes],
                },
            )
            if "status" in changes and updated.status in FINISHED:
                tx.emit("job.finished", _finished_event(updated))
            return updated

        job = await self._write(op, staged)
        for old in replaced_file:
            await asyncio.to_thread(self._remove_output, old)
        return job

    async def cancel(self, job_id: int) -> Job:
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
        if (
            job.source == "daemon"
            and self._canceller is not None
            and await self._canceller.cancel(job_id)
        ):
            return await self.get(job_id)
        return await self.update(job_id, {"status": "canceled"})

    async def recover(self) -> builtins.list[Interrupted]:
        """At start-up, before the scheduler runs anything: close the daemon jobs a previous
        process left running (failed) or queued (canceled)."""

        def op(tx: Tx) -> list[Interrupted]:
            done = jobs_db.interrupt_daemon_jobs(tx.conn, tx.now)
            for item in done:
                job = jobs_db.get(tx.conn, item.id)
                assert job is not None
                tx.emit(
                    "job.updated",
                    {
                        **_summary(job),
                        "changed": {"status": job.status, "error": job.error,
                                    "finished_at": job.finished_at},
                        "changed_text": [],
                    },
                )  # fmt: skip
                tx.emit("job.finished", _finished_event(job))
            return done

        return await self._db.write(op)

    # --- helpers ----------------------------------------------------------------------
    @staticmethod
    def _check_project(tx: Tx, project_id: int | None) -> None:
        if project_id is not None and not jobs_db.project_exists(tx.conn, project_id):
            raise NotFound(f"no project with id {project_id}", project=project_id)

    async def _write(self, op: Any, staged: str | None) -> Job:
        try:
            job: Job = await self._db.write(op)
        except BaseException:
            if staged is not None:
                await asyncio.to_thread(self._remove_own, staged)
            raise
        return job

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
