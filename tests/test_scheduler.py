"""The scheduler, driven by an injected clock against a real database file: nothing sleeps
for real but the tiny awaits that let the writer thread commit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from daemon.domain.jobs.service import JobService
from daemon.domain.jobs.sql import STOPPED_BEFORE_RUNNING, STOPPED_WHILE_RUNNING, Job
from daemon.rpc.errors import InvalidParams, InvalidState
from daemon.runtime.scheduler import Report, Scheduler
from daemon.runtime.schedules import Daily, Interval, parse_schedule
from daemon.store import migrations
from daemon.store.batch import Tx
from daemon.store.clock import iso
from daemon.store.database import Database
from daemon.store.events import Event

T = TypeVar("T")


class FakeClock:
    """A monotonic and a wall clock that move only when told to."""

    def __init__(self, wall: datetime | None = None) -> None:
        self.mono = 1000.0
        self.wall_time = wall or datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def now(self) -> float:
        return self.mono

    def wall(self) -> datetime:
        return self.wall_time

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall_time += timedelta(seconds=seconds)

    def suspend(self, seconds: float) -> None:
        """The machine sleeps: the wall clock moves on, the monotonic one barely does."""
        self.mono += 0.5
        self.wall_time += timedelta(seconds=seconds)


class World:
    def __init__(self, db: Database, jobs: JobService, sched: Scheduler, clock: FakeClock):
        self.db = db
        self.jobs = jobs
        self.sched = sched
        self.clock = clock

    async def job(self, job_id: int) -> Job:
        return await self.jobs.get(job_id)

    async def all_jobs(self, kind: str | None = None) -> list[Job]:
        return (await self.jobs.list(kind=kind, limit=1000)).items[::-1]  # oldest first

    async def step(self, seconds: float = 0.0) -> list[int | None]:
        """Move the clock, run what is due, wait for it to finish."""
        self.clock.advance(seconds)
        started = await self.sched.tick()
        await self.sched.drain()
        return started


@contextlib.asynccontextmanager
async def world(
    tmp_path: Path,
    *,
    clock: FakeClock | None = None,
    published: list[Event] | None = None,
    **options: Any,
) -> AsyncIterator[World]:
    path = tmp_path / "pm.db"
    db = Database(str(path), publish=published.extend if published is not None else None)
    db.migrate(migrations.load())
    await db.start()
    jobs = JobService(db, str(tmp_path / "data"))
    clock = clock or FakeClock()
    settings: dict[str, Any] = {
        "concurrency": 2,
        "retries": 2,
        "backoff": (60.0, 300.0),
        "startup_delay_s": 0.0,
        "tz": UTC,
    }
    settings.update(options)
    sched = Scheduler(jobs, now=clock.now, wall=clock.wall, **settings)
    try:
        yield World(db, jobs, sched, clock)
    finally:
        await sched.close()
        await db.close()


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(fn())  # type: ignore[arg-type]


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let other tasks (and the writer thread) get on until `predicate` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.002)


class Recorder:
    """A job function that remembers its calls."""

    def __init__(self, result: Any = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.result = result if result is not None else {"ok": True}

    async def __call__(self, report: Report, **args: Any) -> Any:
        self.calls.append(args)
        report("working", 50)
        return self.result


class FailsOnce:
    """A job function whose first run fails (a disk hiccup) and every later one succeeds."""

    def __init__(self) -> None:
        self.tries = 0

    async def __call__(self, report: Report) -> str:
        self.tries += 1
        if self.tries == 1:
            raise OSError("disk hiccup")
        return "fine"


class Gate:
    """A job function that holds until released, counting how many hold at once."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.started = 0
        self.cancelled = 0
        self.release = asyncio.Event()

    async def __call__(self, report: Report, **args: Any) -> str:
        self.active += 1
        self.started += 1
        self.peak = max(self.peak, self.active)
        try:
            report("waiting at the gate")
            await self.release.wait()
            return "through"
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1


# --- schedules ------------------------------------------------------------------------------
def test_parse_schedule() -> None:
    assert parse_schedule("6h") == Interval(6 * 3600)
    assert parse_schedule("30m") == Interval(1800)
    assert parse_schedule("90s") == Interval(90)
    assert parse_schedule("1d") == Interval(86400)
    assert parse_schedule("1.5 h") == Interval(5400)
    assert parse_schedule("daily 03:00") == Daily(3, 0)
    assert parse_schedule("daily 7:05") == Daily(7, 5)
    assert parse_schedule("off") is None
    assert parse_schedule("0h") is None
    for bad in ("", "6", "daily 24:00", "daily 3", "weekly", "-1h", "6 hours"):
        with pytest.raises(ValueError, match="not a schedule"):
            parse_schedule(bad)


def test_an_interval_runs_on_time_and_is_recorded(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            fn = Recorder()
            w.sched.register("sweep", fn, "1h")
            assert await w.step() == []  # the first slot is one interval after the start
            assert await w.step(3599) == []
            assert len(await w.step(1)) == 1
            assert len(fn.calls) == 1
            (job,) = await w.all_jobs()
            assert (job.kind, job.source, job.status, job.attempts) == (
                "sweep", "daemon", "completed", 1,
            )  # fmt: skip
            assert job.response == '{"ok":true}' and job.error is None
            assert job.metadata["trigger"] == "schedule"
            assert job.started_at is not None and job.finished_at is not None
            assert await w.step(3599) == []
            assert len(await w.step(1)) == 1  # every hour, on the hour
            assert len(fn.calls) == 2

    run(scenario)


def test_daily_runs_at_its_local_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock(datetime(2024, 5, 1, 1, 0, tzinfo=UTC))
        async with world(tmp_path, clock=clock) as w:
            fn = Recorder()
            w.sched.register("backup", fn, "daily 03:00")
            await w.step()
            assert await w.step(2 * 3600 - 1) == []
            assert len(await w.step(1)) == 1  # 03:00
            assert await w.step(3600) == []
            assert await w.step(23 * 3600 - 1) == []
            assert len(await w.step(1)) == 1  # 03:00 the next day
            assert len(fn.calls) == 2
            (slot,) = [k for k in w.sched.status().kinds if k.kind == "backup"]
            assert slot.next_run_at == iso(datetime(2024, 5, 3, 3, 0, tzinfo=UTC))

    run(scenario)


def test_a_slot_missed_while_asleep_runs_once_on_wake(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock(datetime(2024, 5, 1, 1, 0, tzinfo=UTC))
        async with world(tmp_path, clock=clock) as w:
            hourly, daily = Recorder(), Recorder()
            w.sched.register("hourly", hourly, "1h")
            w.sched.register("daily", daily, "daily 03:00")
            await w.step()
            await w.step(600)
            assert w.sched.status().slept_s == 0  # both clocks moved together: no sleep
            clock.suspend(3 * 86400 + 5 * 3600)  # 3 days 5 hours: 77 hourly, 3 daily slots
            started = await w.step()
            assert len(started) == 2
            assert (len(hourly.calls), len(daily.calls)) == (1, 1)  # once each, not per slot
            assert w.sched.status().slept_s > 3 * 86400
            assert await w.step() == []
            assert await w.step(1800) == []
            assert len(await w.step(1800)) == 1  # the next hourly slot counts from the catch-up
            assert (len(hourly.calls), len(daily.calls)) == (2, 1)

    run(scenario)


def test_without_a_wall_clock_jump_a_stopped_monotonic_clock_runs_nothing(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            fn = Recorder()
            w.sched.register("hourly", fn, "1h")
            await w.step()
            w.clock.wall_time -= timedelta(hours=5)  # the clock set back: no run, no sleep
            w.clock.mono += 10
            assert await w.step() == []
            assert w.sched.status().slept_s == 0
            assert len(await w.step(3590)) == 1

    run(scenario)


# --- failures and retries -----------------------------------------------------------------
def test_a_failing_run_is_retried_with_backoff_then_recorded_failed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            tries: list[int] = []

            async def broken(report: Report) -> None:
                tries.append(1)
                raise RuntimeError("boom")

            good = Recorder()
            w.sched.register("broken", broken)
            w.sched.register("good", good, "90s")
            await w.step()
            job_id = await w.sched.run_now("broken")
            assert (await w.job(job_id)).status == "queued"
            await w.step()
            job = await w.job(job_id)
            assert (job.status, job.attempts, job.error) == ("queued", 1, "RuntimeError: boom")
            assert job.finished_at is None and "retry_at" in job.metadata
            assert await w.step(59) == []  # first backoff: 60 s
            assert await w.step(1) == [job_id]
            job = await w.job(job_id)
            assert (job.status, job.attempts) == ("queued", 2)
            assert job_id not in await w.step(299)  # second backoff: 300 s
            assert len(good.calls) == 1  # … while other work goes on
            assert await w.step(1) == [job_id]
            job = await w.job(job_id)
            assert (job.status, job.attempts, job.error) == ("failed", 3, "RuntimeError: boom")
            assert job.finished_at is not None and "retry_at" not in job.metadata
            assert len(tries) == 3  # retries=2: three attempts in all
            assert await w.step(3600) != []  # the scheduler goes on
            assert len(good.calls) > 1 and len(tries) == 3

    run(scenario)


def test_a_run_that_succeeds_on_retry_completes_without_an_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path, retries=1, backoff=(5.0,)) as w:
            flaky = FailsOnce()
            w.sched.register("flaky", flaky)
            job_id = await w.sched.run_now("flaky")
            await w.step()
            assert (await w.job(job_id)).error == "OSError: disk hiccup"
            await w.step(5)
            job = await w.job(job_id)
            assert (job.status, job.attempts, job.error, job.response) == (
                "completed", 2, None, "fine",
            )  # fmt: skip

    run(scenario)


def test_a_retry_whose_record_went_with_a_replaced_database_gets_a_new_one(
    tmp_path: Path,
) -> None:
    """A restore, reset or import between two attempts takes the job's row with the old
    file: the retry records itself afresh instead of failing to start."""

    async def scenario() -> None:
        async with world(tmp_path, retries=1, backoff=(5.0,)) as w:
            flaky = FailsOnce()
            w.sched.register("flaky", flaky)
            job_id = await w.sched.run_now("flaky")
            await w.step()

            def forget(tx: Tx) -> None:  # what the swapped-in file does not have
                tx.conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

            await w.db.write(forget)
            await w.step(5)
            assert flaky.tries == 2, "the retry ran"
            (job,) = await w.all_jobs("flaky")
            assert (job.status, job.response) == ("completed", "fine")

    run(scenario)


# --- concurrency and priority -----------------------------------------------------------------
def test_the_concurrency_limit_is_honoured(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path, concurrency=2) as w:
            gate = Gate()
            w.sched.register("slow", gate)
            ids = [await w.sched.run_now("slow") for _ in range(5)]
            started = await w.sched.tick()
            assert started == ids[:2]
            await until(lambda: gate.active == 2)
            assert await w.sched.tick() == []  # no free slot
            statuses = [(await w.job(i)).status for i in ids]
            assert statuses == ["running", "running", "queued", "queued", "queued"]
            gate.release.set()
            for _ in range(5):
                await w.step()
            assert [(await w.job(i)).status for i in ids] == ["completed"] * 5
            assert gate.peak == 2 and gate.started == 5

    run(scenario)


def test_requested_runs_go_before_deferred_ones_which_leave_a_slot_free(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with world(tmp_path, concurrency=2) as w:
            gate = Gate()
            w.sched.register("scan", gate)
            w.sched.register("urgent", Recorder())
            for project in (1, 2, 3):
                w.sched.defer(f"p{project}", "scan", 10, project=project)
            w.clock.advance(10)
            assert len(await w.sched.tick()) == 1  # deferred work never takes the last slot
            await until(lambda: gate.active == 1)
            urgent = await w.sched.run_now("urgent")
            assert await w.sched.tick() == [urgent]  # the free slot serves it at once
            await until(lambda: len(w.sched.status().running) == 1)
            gate.release.set()
            for _ in range(5):
                await w.step()
            assert gate.started == 3 and gate.peak == 1
            assert (await w.job(urgent)).status == "completed"

    run(scenario)


def test_higher_priority_takes_the_slot_first(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path, concurrency=1) as w:
            order: list[str] = []

            def make(name: str) -> Callable[..., Awaitable[None]]:
                async def fn(report: Report) -> None:
                    order.append(name)

                return fn

            w.sched.register("low", make("low"), priority=0)
            w.sched.register("high", make("high"), priority=5)
            await w.sched.run_now("low")
            await w.sched.run_now("high")
            for _ in range(2):
                await w.step()
            assert order == ["high", "low"]

    run(scenario)


# --- cancelling -------------------------------------------------------------------------------
def test_cancel_a_running_and_a_queued_job(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path, concurrency=1) as w:
            gate = Gate()
            w.sched.register("slow", gate)
            running = await w.sched.run_now("slow")
            waiting = await w.sched.run_now("slow")
            await w.sched.tick()
            await until(lambda: gate.active == 1)
            job = await w.jobs.cancel(running, w.sched)  # as jobs.cancel does
            assert job.status == "canceled" and job.finished_at is not None
            assert gate.cancelled == 1
            job = await w.jobs.cancel(waiting, w.sched)
            assert job.status == "canceled" and job.attempts == 0
            await w.step()
            assert gate.started == 1  # the canceled one never ran
            with pytest.raises(InvalidState, match="already canceled"):
                await w.jobs.cancel(running, w.sched)
            # the scheduler goes on
            again = await w.sched.run_now("slow")
            gate.release.set()
            await w.step()
            assert (await w.job(again)).status == "completed"

    run(scenario)


# --- deferred ---------------------------------------------------------------------------------
def test_defer_debounces_to_one_run_after_the_last_call(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            fn = Recorder()
            w.sched.register("quality_scan", fn)
            w.sched.defer("project:7", "quality_scan", 60, project=7)
            assert await w.step(30) == []
            w.sched.defer("project:7", "quality_scan", 60, project=7)
            assert await w.step(50) == []
            w.sched.defer("project:7", "quality_scan", 60, project=7)
            assert await w.step(59) == []  # 139 s after the first call: still settling
            assert len(await w.step(1)) == 1
            assert fn.calls == [{"project": 7}]
            (job,) = await w.all_jobs()
            assert job.metadata == {"trigger": "deferred", "args": {"project": 7},
                                    "key": "project:7"}  # fmt: skip
            assert await w.step(3600) == []
            w.sched.defer("project:7", "quality_scan", 60, project=7)
            w.sched.defer("project:8", "quality_scan", 60, project=8)
            assert len(await w.step(60)) == 1  # other keys are other runs, one at a time
            assert len(await w.step()) == 1
            assert sorted(c["project"] for c in fn.calls) == [7, 7, 8]

    run(scenario)


def test_unknown_kinds_and_wrong_args_are_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            w.sched.register("maintenance", Recorder())

            async def scan(report: Report, project: int | None = None) -> None:
                return None

            w.sched.register("quality_scan", scan)
            with pytest.raises(InvalidParams, match="known: maintenance, quality_scan") as e:
                await w.sched.run_now("nope")
            assert e.value.data["known"] == ["maintenance", "quality_scan"]
            with pytest.raises(InvalidParams, match="does not take"):
                await w.sched.run_now("quality_scan", folder="x")
            with pytest.raises(InvalidParams):
                w.sched.defer("k", "nope", 1)
            with pytest.raises(ValueError, match="twice"):
                w.sched.register("maintenance", Recorder())
            for bad in ("", "k" * 101):  # what a job row's kind cannot hold
                with pytest.raises(ValueError, match="not a job kind"):
                    w.sched.register(bad, Recorder())
            assert await w.all_jobs() == []

    run(scenario)


def test_a_run_for_one_project_records_it_as_its_job_is_made(tmp_path: Path) -> None:
    """A deferred run for one project: its job row is made as the run starts, running and
    with the project (one jobs.created; before, a queued row first, then an update). A
    project forgotten meanwhile is left out of the row, and the run goes on."""

    async def scenario() -> None:
        published: list[Event] = []
        async with world(tmp_path, published=published) as w:

            def add_project(tx: Tx) -> int:
                return int(
                    tx.conn.execute(
                        "INSERT INTO projects (name, path, created_at, updated_at) "
                        "VALUES ('p', '/nowhere/p', ?, ?) RETURNING id",
                        (tx.now, tx.now),
                    ).fetchone()[0]
                )

            project = await w.db.write(add_project)

            async def project_of(project: int | None = None) -> int | None:
                return project

            w.sched.register("quality_scan", Recorder(), project_of=project_of)
            w.sched.defer("p", "quality_scan", 1, project=project)
            await w.step(1)
            (job,) = await w.all_jobs()
            assert (job.project_id, job.status, job.version) == (project, "completed", 2)
            events = [e for e in published if e.topic == "jobs"]
            assert [e.type for e in events] == ["jobs.created", "jobs.updated", "jobs.finished"]
            created = msgspec.json.decode(events[0].data)
            assert (created["status"], created["project_id"]) == ("running", project)

            w.sched.defer("q", "quality_scan", 1, project=project + 100)
            await w.step(1)
            gone = (await w.all_jobs())[-1]
            assert (gone.project_id, gone.status) == (None, "completed")
            asked = await w.sched.run_now("quality_scan", project=project)
            assert (await w.job(asked)).project_id == project

    run(scenario)


def test_progress_is_visible_while_it_runs(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path) as w:
            gate = Gate()
            w.sched.register("slow", gate)
            job_id = await w.sched.run_now("slow")
            await w.sched.tick()
            await until(lambda: gate.active == 1)
            progress = w.sched.progress(job_id)
            assert progress is not None and progress.message == "waiting at the gate"
            (running,) = w.sched.status().running
            assert running.job_id == job_id and running.trigger == "manual"
            gate.release.set()
            await w.sched.drain()
            assert w.sched.progress(job_id) is None

    run(scenario)


# --- start and stop -----------------------------------------------------------------------------
def _insert_job(
    kind: str, status: str, started: datetime | None, trigger: str = "schedule"
) -> Callable[[Tx], int]:
    def op(tx: Tx) -> int:
        finished = iso(started) if started and status in ("completed", "failed") else None
        row = tx.conn.execute(
            "INSERT INTO jobs (kind, source, status, metadata, attempts, created_at, "
            "updated_at, started_at, finished_at) VALUES (?, 'daemon', ?, json_object('trigger', "
            "?), 1, ?, ?, ?, ?) RETURNING id",
            (kind, status, trigger, tx.now, tx.now, iso(started) if started else None, finished),
        ).fetchone()
        return int(row[0])

    return op


def test_start_closes_leftovers_and_catches_up_from_history(tmp_path: Path) -> None:
    async def scenario() -> None:
        now = datetime.now(UTC).replace(microsecond=0)
        clock = FakeClock(now)
        async with world(tmp_path, clock=clock, startup_delay_s=30.0) as w:
            left_running = await w.db.write(_insert_job("old", "running", now))
            left_queued = await w.db.write(_insert_job("old", "queued", None))
            client = await w.jobs.record("agent_call", {"status": "running"})
            await w.db.write(_insert_job("overdue", "completed", now - timedelta(hours=7)))
            await w.db.write(_insert_job("recent", "completed", now - timedelta(hours=1)))
            await w.db.write(_insert_job("nightly", "completed", now - timedelta(days=2)))
            overdue, recent, nightly = Recorder(), Recorder(), Recorder()
            w.sched.register("overdue", overdue, "6h")
            w.sched.register("recent", recent, "6h")
            slot = now - timedelta(hours=2)  # today's slot has passed too
            w.sched.register("nightly", nightly, f"daily {slot.hour:02d}:{slot.minute:02d}")
            await w.sched.start(loop=False)

            job = await w.job(left_running)
            assert (job.status, job.error) == ("failed", STOPPED_WHILE_RUNNING)
            job = await w.job(left_queued)
            assert (job.status, job.error) == ("canceled", STOPPED_BEFORE_RUNNING)
            assert (await w.job(client.id)).status == "running"  # a client's job is its own

            assert await w.step(29) == []  # missed slots wait for the start-up delay …
            assert len(await w.step(1)) == 2  # … then run once: overdue, and nightly
            assert (len(overdue.calls), len(recent.calls), len(nightly.calls)) == (1, 0, 1)
            assert await w.step(5 * 3600 - 31) == []
            assert len(await w.step(1)) == 1  # recent: 6 h after its last run
            assert len(recent.calls) == 1

    run(scenario)


def test_close_records_what_it_interrupts(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with world(tmp_path, concurrency=1) as w:
            gate = Gate()
            w.sched.register("slow", gate)
            running = await w.sched.run_now("slow")
            queued = await w.sched.run_now("slow")
            await w.sched.tick()
            await until(lambda: gate.active == 1)
            await w.sched.close()
            job = await w.job(running)
            assert (job.status, job.error) == ("failed", STOPPED_WHILE_RUNNING)
            job = await w.job(queued)
            assert (job.status, job.error) == ("canceled", STOPPED_BEFORE_RUNNING)
            assert await w.sched.tick() == []

    run(scenario)


def test_the_production_loop_runs_schedules_and_requests_by_itself(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "pm.db"
        db = Database(str(path))
        db.migrate(migrations.load())
        await db.start()
        jobs = JobService(db, str(tmp_path / "data"))
        sched = Scheduler(jobs, concurrency=2, retries=0, startup_delay_s=0)
        ticking, asked = Recorder(), Recorder()
        sched.register("ticking", ticking, "0.05s")
        sched.register("asked", asked)
        try:
            await sched.start()
            await until(lambda: len(ticking.calls) >= 3)
            job_id = await sched.run_now("asked")
            await until(lambda: len(asked.calls) == 1)
            await sched.drain()
            await until(lambda: sched.status().running == [])
            assert (await jobs.get(job_id)).status == "completed"
        finally:
            await sched.close()
            await db.close()

    run(scenario)


def test_every_change_is_an_event(tmp_path: Path) -> None:
    async def scenario() -> None:
        published: list[Event] = []
        async with world(tmp_path, published=published) as w:
            w.sched.register("sweep", Recorder())
            job_id = await w.sched.run_now("sweep")
            await w.step()
            await until(lambda: any(e.type == "jobs.finished" for e in published))
            types = [e.type for e in published]
            assert types == ["jobs.created", "jobs.updated", "jobs.updated", "jobs.finished"]
            assert all(e.topic == "jobs" for e in published)
            assert f'"id":{job_id}' in bytes(published[-1].data).decode()

    run(scenario)
