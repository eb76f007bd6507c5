"""The scheduler: the daemon's own work on schedules, on demand, and debounced.

A kind of work is registered once: `register("maintenance", fn, "8h")`. `fn` is an async
callable `fn(report, **args)`; `report(message, percentage=None)` records its progress, and it
must be cancellable (it is cancelled like any asyncio task). Whatever it returns is stored as
the job's response (a string as is, anything else as JSON).

Every run is a row in `jobs` (source daemon): created `running` when the run gets a slot (or
`queued` at once for `run_now`, which must hand back an id), then `completed`, or `failed` with
the error. A failing run goes back to `queued` and is retried after a backoff (1 min, then
5 min by default) until `retries` is spent; a failure never stops the scheduler. At most
`concurrency` runs at a time; ready runs take free slots by priority. `defer(key, …)` is the
low-priority, debounced queue ("rescan this project 60 s after it settles"): each call with the
same key pushes its run back, and deferred runs take a slot only when nothing of higher
priority is waiting, and never the last free one (with concurrency > 1), so a storm of
rescans cannot hold up a scheduled or requested run for long.

Schedules: "90s", "30m", "6h", "1d" (intervals), "daily 03:00" (local time), "off".

Clocks. Intervals run on the monotonic clock (`now`, injectable), which no clock change can
move. But the monotonic clock stops while the machine is suspended (Linux CLOCK_MONOTONIC,
macOS mach_absolute_time), so on its own it would push every interval back by the time the
machine slept. The wall clock (`wall`) keeps going, so each reading compares both: when the
wall clock moved more than `sleep_threshold_s` further than the monotonic one, the machine
slept (or the clock was set forward, which is handled the same harmless way), and that time is
added to the scheduler's own clock. A run whose slots passed meanwhile is then due: it runs
ONCE, and its next slot counts from that run, never once per missed slot. Daily slots are wall
clock times, so they see the jump directly; they too run once and move to the next slot after
the current time. The production loop never sleeps longer than `heartbeat_s`, so a wake-up is
noticed within that time. At start, the last scheduled run of each kind (from `jobs`) says
when the next is due, so a slot missed while the daemon was not running also runs once (after
`startup_delay_s`).

Tests drive it without sleeping: inject `now` and `wall`, call `await tick()` (runs what is due
at that moment) and `await drain()` (waits for started runs to finish).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

import msgspec
import structlog

from daemon.domain.jobs.service import JobService, Progress
from daemon.domain.jobs.sql import STOPPED_BEFORE_RUNNING, Kind
from daemon.rpc.errors import InvalidParams, ShuttingDown
from daemon.runtime.scheduler_runs import JobFn, Recorder, Report, Run, Trigger, parse_iso
from daemon.runtime.schedules import (
    Daily,
    Interval,
    KindStatus,
    RunStatus,
    Schedule,
    SchedulerStatus,
    local_now,
    next_daily,
    parse_schedule,
)
from daemon.store.cancellation import wait_set
from daemon.store.clock import iso

__all__ = ["DEFAULT_BACKOFF", "JobFn", "Report", "Scheduler", "Trigger"]

log = structlog.get_logger("pm.scheduler")

DEFAULT_BACKOFF: tuple[float, ...] = (60.0, 300.0)
_MAX_ERROR = 2000
# The project a run of a kind is for, from its args (None: not one project's).
ProjectOf = Callable[..., Awaitable[int | None]]


# --- state ----------------------------------------------------------------------------------
@dataclass(eq=False)
class _Kind:
    name: str
    fn: JobFn
    schedule: Schedule
    text: str
    priority: int
    due: float | None = None  # Interval: on the scheduler's clock
    next_wall: datetime | None = None  # Daily: the next slot
    seeded: bool = False
    project_of: ProjectOf | None = None


class Scheduler:
    def __init__(
        self,
        jobs: JobService,
        *,
        concurrency: int,
        retries: int,
        now: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = local_now,
        tz: tzinfo | None = None,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        startup_delay_s: float = 30.0,
        heartbeat_s: float = 60.0,
        sleep_threshold_s: float = 30.0,
        cancel_wait_s: float = 10.0,
    ) -> None:
        """`tz`: the zone of daily slots (None: the system's local time, DST included).
        `backoff[i]`: seconds before retry i+1 (the last value repeats)."""
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._jobs = jobs
        self._concurrency = concurrency
        self._deferred_limit = max(1, concurrency - 1)
        self._retries = retries
        self._now = now
        self._wall = wall
        self._tz = tz
        self._backoff = tuple(backoff) or (0.0,)
        self._startup_delay_s = startup_delay_s
        self._heartbeat_s = heartbeat_s
        self._sleep_threshold_s = sleep_threshold_s
        self._cancel_wait_s = cancel_wait_s
        self._kinds: dict[str, _Kind] = {}
        self._pending: list[Run] = []
        self._running: set[Run] = set()
        self._seq = itertools.count()
        self._slept = 0.0
        self._last_clock: tuple[float, datetime] | None = None
        self._kicked = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False
        self._recorder = Recorder(jobs, retries=retries, backoff=self._backoff, wall=wall)

    # --- registration -------------------------------------------------------------------
    def register(
        self,
        kind: str,
        fn: JobFn,
        schedule: str = "off",
        *,
        priority: int = 0,
        project_of: ProjectOf | None = None,
    ) -> None:
        """Add a kind of work. Register before `start` so its history sets the first slot.
        `project_of(**args)`: the id of the project a run is for, recorded in its job row
        (`pm jobs` shows it), or None."""
        if kind in self._kinds:
            raise ValueError(f"job kind {kind!r} is registered twice")
        try:
            msgspec.convert(kind, Kind)  # what a job row holds
        except msgspec.ValidationError as e:
            raise ValueError(f"not a job kind: {kind!r}: {e}") from None
        parsed = parse_schedule(schedule)
        self._kinds[kind] = _Kind(kind, fn, parsed, schedule, priority, project_of=project_of)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._kinds)

    # --- clocks -------------------------------------------------------------------------
    def _clock(self) -> float:
        """The scheduler's time: monotonic, plus the time the machine was seen asleep."""
        mono, wall = self._now(), self._wall()
        if self._last_clock is not None:
            last_mono, last_wall = self._last_clock
            jump = (wall - last_wall).total_seconds() - (mono - last_mono)
            if jump > self._sleep_threshold_s:
                self._slept += jump
                log.info("the machine slept (or the clock jumped); missed runs are due once",
                         slept_s=round(jump, 1))  # fmt: skip
        self._last_clock = (mono, wall)
        return mono + self._slept

    def _current_wall(self) -> datetime:
        assert self._last_clock is not None
        return self._last_clock[1]

    def _next_daily(self, daily: Daily, after: datetime) -> datetime:
        return next_daily(daily, after, self._tz)

    def _seed(
        self, k: _Kind, t: float, wall: datetime, last: datetime | None, delay: float
    ) -> None:
        """The first slot of a kind: from its last scheduled run when there is one."""
        k.seeded = True
        if last is not None and last > wall:
            last = None  # the clock was set back: the record says nothing useful
        if isinstance(k.schedule, Interval):
            every = k.schedule.seconds
            if last is None:
                k.due = t + every
            else:
                wait = (last + timedelta(seconds=every) - wall).total_seconds()
                k.due = t + min(max(wait, delay), every)
        elif isinstance(k.schedule, Daily):
            slot = self._next_daily(k.schedule, last if last is not None else wall)
            if slot <= wall:  # a slot passed while the daemon was not running: once, soon
                slot = wall + timedelta(seconds=delay)
            k.next_wall = slot

    # --- running ------------------------------------------------------------------------
    async def start(self, *, loop: bool = True) -> None:
        """Close what a previous process left unfinished, set each kind's first slot from
        its history, and (with `loop`) start the loop that runs what falls due."""
        try:
            await self._jobs.recover()
        except Exception:  # the daemon serves on; the next start-up tries again
            log.exception("could not close the jobs a previous run left unfinished")
        t = self._clock()
        wall = self._current_wall()
        for k in self._kinds.values():
            if k.schedule is None:
                k.seeded = True
                continue
            try:
                last = parse_iso(await self._jobs.last_scheduled_start(k.name))
            except Exception:
                log.exception("could not read when a job last ran", kind=k.name)
                last = None
            self._seed(k, t, wall, last, self._startup_delay_s)
        if loop and self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(
                self._run_loop(), name="pm-scheduler"
            )

    async def _run_loop(self) -> None:
        while not self._closing:
            self._kicked.clear()
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler tick failed; it goes on")
            delay = max(0.01, self.next_wake())
            await wait_set(self._kicked, delay)

    async def tick(self) -> list[int | None]:
        """Queue whatever fell due by now and start what the free slots allow.

        Returns the job ids of the runs started (None for a run whose row is still being
        written; the row exists once the run's task has begun)."""
        if self._closing:
            return []
        t = self._clock()
        wall = self._current_wall()
        for k in self._kinds.values():
            if not k.seeded:
                self._seed(k, t, wall, None, 0.0)
            self._fire_if_due(k, t, wall)
        return [run.job_id for run in self._dispatch(t)]

    def _fire_if_due(self, k: _Kind, t: float, wall: datetime) -> None:
        if isinstance(k.schedule, Interval) and k.due is not None and k.due <= t:
            nxt = k.due + k.schedule.seconds
            k.due = nxt if nxt > t else t + k.schedule.seconds  # missed slots: once, not each
            self._fire(k, t)
        elif isinstance(k.schedule, Daily) and k.next_wall is not None:
            if wall >= k.next_wall:
                k.next_wall = self._next_daily(k.schedule, wall)
                self._fire(k, t)
            elif k.next_wall - wall > timedelta(days=1, hours=2):  # the clock went back
                k.next_wall = self._next_daily(k.schedule, wall)

    def _fire(self, k: _Kind, t: float) -> None:
        busy = any(
            r.kind == k.name and r.trigger == "schedule"
            for r in itertools.chain(self._pending, self._running)
        )
        if busy:
            log.info("a scheduled run is still waiting or running; this slot is skipped",
                     kind=k.name)  # fmt: skip
            return
        self._pending.append(
            Run(k.name, {}, "schedule", due=t, priority=k.priority, seq=next(self._seq))
        )

    def _dispatch(self, t: float) -> list[Run]:
        ready = sorted(
            (r for r in self._pending if r.due <= t),
            key=lambda r: (r.deferred, -r.priority, r.due, r.seq),
        )
        started: list[Run] = []
        for run in ready:
            if len(self._running) >= self._concurrency:
                break
            deferred_running = sum(1 for r in self._running if r.deferred)
            if run.deferred and deferred_running >= self._deferred_limit:
                continue
            self._pending.remove(run)
            self._running.add(run)
            run.task = asyncio.get_running_loop().create_task(
                self._execute(run), name=f"pm-job-{run.kind}"
            )
            started.append(run)
        return started

    def next_wake(self) -> float:
        """Seconds until something falls due (at most `heartbeat_s`). Ready runs that wait
        for a slot are not counted: a finishing run wakes the loop."""
        t = self._now() + self._slept
        wall = self._wall()
        waits = [self._heartbeat_s]
        for k in self._kinds.values():
            if k.due is not None:
                waits.append(k.due - t)
            if k.next_wall is not None:
                waits.append((k.next_wall - wall).total_seconds())
        waits += [r.due - t for r in self._pending if r.due > t]
        return max(0.0, min(waits))

    async def drain(self) -> None:
        """Wait until no run is in progress (runs waiting for a slot or a retry stay put)."""
        while self._running:
            tasks = [r.task for r in self._running if r.task is not None]
            await asyncio.wait(tasks)

    # --- asking for runs -----------------------------------------------------------------
    def _kind(self, kind: str, args: dict[str, Any]) -> _Kind:
        k = self._kinds.get(kind)
        if k is None:
            known = ", ".join(self.kinds) or "none"
            raise InvalidParams(
                f"Invalid params: unknown job kind {kind!r} (known: {known})",
                field="kind",
                known=self.kinds,
            )
        try:
            inspect.signature(k.fn).bind(None, **args)
        except TypeError as e:
            raise InvalidParams(
                f"Invalid params: {kind} does not take these args: {e}", field="args"
            ) from None
        except ValueError:  # no signature to check (a builtin): let the run say
            pass
        return k

    async def run_now(self, kind: str, **args: Any) -> int:
        """Queue a run of `kind` now (ahead of deferred work); returns its job id at once."""
        if self._closing:
            raise ShuttingDown("the daemon is shutting down; the job was not started")
        k = self._kind(kind, args)
        run = Run(kind, dict(args), "manual", due=self._clock(), priority=k.priority,
                  seq=next(self._seq), project_id=await self._project_of(k, args))  # fmt: skip
        job = await self._jobs.create_daemon_job(
            kind, {"status": "queued", "metadata": run.metadata, "project_id": run.project_id}
        )
        run.job_id = job.id
        self._pending.append(run)
        self._kicked.set()
        return job.id

    def defer(self, key: str, kind: str, delay_s: float, **args: Any) -> None:
        """Run `kind(**args)` `delay_s` after the LAST call with this `key` (debounce), as
        low-priority work. A run of that key already started is not affected: a new one is
        queued behind it. Call it on the event loop's thread (it is not thread-safe)."""
        if self._closing:
            return
        k = self._kind(kind, args)
        t = self._clock()
        for run in self._pending:
            if run.key == key:
                run.due = t + delay_s
                run.args = dict(args)
                break
        else:
            self._pending.append(
                Run(kind, dict(args), "deferred", due=t + delay_s, priority=k.priority,
                     seq=next(self._seq), key=key)
            )  # fmt: skip
        self._kicked.set()

    async def cancel(self, job_id: int) -> bool:
        """Stop a run by its job id: a waiting one is dropped, a running one cancelled.
        Either is recorded canceled. False when no live run has that id."""
        for run in self._pending:
            if run.job_id == job_id:
                self._pending.remove(run)
                await self._jobs.update(job_id, {"status": "canceled"})
                return True
        for run in self._running:
            if run.job_id == job_id and run.task is not None:
                run.cancel_requested = True
                run.task.cancel()
                await asyncio.wait({run.task}, timeout=self._cancel_wait_s)
                return True
        return False

    def progress(self, job_id: int) -> Progress | None:
        for run in self._running:
            if run.job_id == job_id:
                return run.progress
        return None

    def status(self) -> SchedulerStatus:
        t = self._now() + self._slept
        wall = self._wall()
        kinds = []
        for k in sorted(self._kinds.values(), key=lambda k: k.name):
            next_run: str | None = None
            if k.due is not None:
                next_run = iso(wall + timedelta(seconds=max(0.0, k.due - t)))
            elif k.next_wall is not None:
                next_run = iso(k.next_wall)
            kinds.append(
                KindStatus(kind=k.name, schedule=k.text, priority=k.priority,
                           next_run_at=next_run)
            )  # fmt: skip
        running = [
            RunStatus(kind=r.kind, job_id=r.job_id, trigger=r.trigger, attempt=r.attempt,
                      progress=r.progress)
            for r in sorted(self._running, key=lambda r: r.seq)
        ]  # fmt: skip
        return SchedulerStatus(
            concurrency=self._concurrency,
            running=running,
            waiting=len(self._pending),
            slept_s=round(self._slept, 3),
            kinds=kinds,
        )

    async def close(self, timeout: float = 5.0) -> None:
        """Stop: no new runs; running ones are cancelled and recorded failed ("the daemon
        stopped while it ran"); queued ones canceled. Call before the database closes."""
        self._closing = True
        self._recorder.closing = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        tasks = [r.task for r in self._running if r.task is not None]
        for run in self._running:
            run.cancel_requested = True
            if run.task is not None:
                run.task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        waiting, self._pending = self._pending, []
        for run in waiting:
            if run.job_id is None:
                continue
            try:
                await self._jobs.update(
                    run.job_id, {"status": "canceled", "error": STOPPED_BEFORE_RUNNING}
                )
            except Exception:  # the next start-up closes it instead
                log.warning("could not record a queued job as canceled", job=run.job_id)
        await self._recorder.close()

    # --- the project a run is for ---------------------------------------------------------
    async def _project_of(self, k: _Kind, args: dict[str, Any]) -> int | None:
        if k.project_of is None:
            return None
        try:
            return await k.project_of(**args)
        except Exception:  # the run goes on, recorded without its project
            log.exception("could not tell which project a run is for", kind=k.name)
            return None

    # --- one run --------------------------------------------------------------------------
    async def _execute(self, run: Run) -> None:
        retry_in: float | None = None
        try:
            if run.attempt == 0 and run.job_id is None:  # its row is made as it starts
                run.project_id = await self._project_of(self._kinds[run.kind], run.args)
            retry_in = await self._recorder.attempt(run, self._kinds[run.kind].fn)
        except Exception:
            log.exception("job bookkeeping failed", kind=run.kind, job=run.job_id)
        finally:
            self._running.discard(run)
            if retry_in is not None and not self._closing:
                run.task = None
                run.due = self._clock() + retry_in
                self._pending.append(run)
            self._kicked.set()
