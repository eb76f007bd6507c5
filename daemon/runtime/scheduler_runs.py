"""One run of a scheduled job, as the `jobs` table records it.

A run is created `running` (or `queued` first, for `run_now`), then ends `completed`,
`canceled`, or `failed` with the error; a failure with retries left goes back to `queued`
with the time of the retry. Writing the outcome can itself fail (a full disk): it is then
written again later, in the background, so a run never stays `running` after it ended and
its concurrency slot is freed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import msgspec
import structlog

from daemon.domain.jobs.service import JobService, Progress
from daemon.domain.jobs.sql import STOPPED_WHILE_RUNNING
from daemon.rpc.errors import Busy, DiskFull, NotFound, RpcError, StorageError
from daemon.store.clock import iso

log = structlog.get_logger("pm.scheduler")


class Report(Protocol):
    def __call__(self, message: str, percentage: int | None = None) -> None: ...


JobFn = Callable[..., Awaitable[Any]]  # fn(report, **args)
Trigger = Literal["schedule", "manual", "deferred"]

_MAX_ERROR = 2000
RECORD_RETRY_S: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0)  # the last one repeats
_TRANSIENT = (DiskFull, StorageError, Busy)  # what may go away: a full disk, a busy queue


# --- state ----------------------------------------------------------------------------------
@dataclass(eq=False)
class Run:
    kind: str
    args: dict[str, Any]
    trigger: Trigger
    due: float
    priority: int
    seq: int
    key: str | None = None
    job_id: int | None = None
    project_id: int | None = None  # the project it is for (recorded in its job row)
    attempt: int = 0
    task: asyncio.Task[None] | None = None
    cancel_requested: bool = False
    progress: Progress | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def deferred(self) -> bool:
        return self.trigger == "deferred"

    @property
    def metadata(self) -> dict[str, Any]:
        """What its job row says about how it came to run."""
        meta: dict[str, Any] = {"trigger": self.trigger}
        if self.args:
            meta["args"] = self.args
        if self.key is not None:
            meta["key"] = self.key
        return meta


def _describe(error: BaseException) -> str:
    text = error.message if isinstance(error, RpcError) else f"{type(error).__name__}: {error}"
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


def _encode_result(result: Any) -> str | None:
    if result is None or isinstance(result, str):
        return result
    try:
        return msgspec.json.encode(result).decode()
    except (TypeError, msgspec.EncodeError):
        return repr(result)


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class Recorder:
    """Runs one attempt of a run and records it in `jobs`."""

    def __init__(
        self,
        jobs: JobService,
        *,
        retries: int,
        backoff: Sequence[float],
        wall: Callable[[], datetime],
    ) -> None:
        self._jobs = jobs
        self._retries = retries
        self._backoff = backoff
        self._wall = wall
        self.closing = False
        self._later: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Stop retrying to record outcomes (the next start closes what is left open)."""
        self.closing = True
        for task in list(self._later):
            task.cancel()
        for task in list(self._later):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _record(self, job_id: int, fields: dict[str, Any]) -> None:
        """A run's outcome; if it cannot be written now, it is written again later."""
        try:
            await self._jobs.update(job_id, fields)
        except NotFound:
            # The row went with the database file it was in (a restore, reset or import).
            log.info("a job's record is gone with the database it was in", job=job_id)
        except _TRANSIENT as e:
            if self.closing:
                raise
            log.warning("could not record a job's outcome; trying again later",
                        job=job_id, error=e.message)  # fmt: skip
            task = asyncio.get_running_loop().create_task(self._record_later(job_id, fields))
            self._later.add(task)
            task.add_done_callback(self._later.discard)

    async def _record_later(self, job_id: int, fields: dict[str, Any]) -> None:
        delays = itertools.chain(RECORD_RETRY_S, itertools.repeat(RECORD_RETRY_S[-1]))
        for delay in delays:
            await asyncio.sleep(delay)
            try:
                await self._jobs.update(job_id, fields)
            except _TRANSIENT:
                continue
            except NotFound:
                log.info("a job's record is gone with the database it was in", job=job_id)
                return
            log.info("recorded a job's outcome at last", job=job_id)
            return

    def _reporter(self, run: Run) -> Report:
        def report(message: str, percentage: int | None = None) -> None:
            pct = None if percentage is None else max(0, min(100, int(percentage)))
            run.progress = Progress(message=message, percentage=pct, at=iso(self._wall()))

        return report

    async def attempt(self, run: Run, fn: JobFn) -> float | None:
        """One attempt, recorded; returns the delay before a retry, or None."""
        run.attempt += 1
        run.progress = None
        try:
            if run.job_id is not None:
                try:
                    await self._jobs.update(run.job_id, {"status": "running"})
                except NotFound:  # another database file became live since the last attempt
                    run.job_id = None
            if run.job_id is None:
                job = await self._jobs.create_daemon_job(
                    run.kind,
                    {"status": "running", "metadata": run.metadata, "project_id": run.project_id},
                )
                run.job_id = job.id
        except asyncio.CancelledError:
            _uncancel()
            if run.job_id is not None:
                await self._record_stop(run)
            return None
        except Exception:
            log.exception("could not record the start of a run; it was skipped", kind=run.kind)
            return None
        assert run.job_id is not None
        try:
            if run.cancel_requested:
                raise asyncio.CancelledError
            result = await fn(self._reporter(run), **run.args)
        except asyncio.CancelledError:
            _uncancel()
            await self._record_stop(run)
            return None
        except Exception as e:
            return await self._record_failure(run, e)
        await self._record(
            run.job_id,
            {"status": "completed", "error": None, "response": _encode_result(result),
             "metadata": {"retry_at": None}},
        )  # fmt: skip
        return None

    async def _record_stop(self, run: Run) -> None:
        assert run.job_id is not None
        if self.closing:
            await self._jobs.update(
                run.job_id, {"status": "failed", "error": STOPPED_WHILE_RUNNING}
            )
        else:
            await self._record(run.job_id, {"status": "canceled"})

    async def _record_failure(self, run: Run, error: Exception) -> float | None:
        assert run.job_id is not None
        text = _describe(error)
        retry = run.attempt <= self._retries and not self.closing
        log.warning("job failed", kind=run.kind, job=run.job_id, attempt=run.attempt,
                    error=text, retry=retry)  # fmt: skip
        if not retry:
            await self._record(
                run.job_id, {"status": "failed", "error": text, "metadata": {"retry_at": None}}
            )
            return None
        delay = self._backoff[min(run.attempt - 1, len(self._backoff) - 1)]
        await self._record(
            run.job_id,
            {"status": "queued", "error": text,
             "metadata": {"retry_at": iso(self._wall() + timedelta(seconds=delay))}},
        )  # fmt: skip
        return delay


def _uncancel() -> None:
    """We handled the cancellation of the current task ourselves (recorded it)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        task.uncancel()
