"""Jobs: the service's lifecycle rules against a real database file, the maintenance job
functions, and (once wired into the daemon) jobs.* over the socket and `pm jobs`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from daemon.domain.jobs.service import METADATA_MAX, RESPONSE_INLINE_MAX, JobService
from daemon.rpc.errors import InvalidState, NotFound, TooLarge
from daemon.runtime.maintenance import maintenance_job, retention_job
from daemon.store import migrations
from daemon.store.batch import Tx
from daemon.store.clock import iso
from daemon.store.database import Database
from daemon.store.events import Event
from tests.conftest import DaemonFactory
from tests.helpers import DaemonProcess, wait_for
from tests.test_cli import Cli

T = TypeVar("T")


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(fn())  # type: ignore[arg-type]


class Env:
    def __init__(self, db: Database, jobs: JobService, data: Path, events: list[Event]):
        self.db = db
        self.jobs = jobs
        self.data = data
        self.events = events

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def data_of(self, type_: str) -> list[dict[str, Any]]:
        return [json.loads(bytes(e.data)) for e in self.events if e.type == type_]


@contextlib.asynccontextmanager
async def service(tmp_path: Path) -> AsyncIterator[Env]:
    events: list[Event] = []
    db = Database(str(tmp_path / "pm.db"), publish=events.extend)
    db.migrate(migrations.load())
    await db.start()
    try:
        yield Env(db, JobService(db, str(tmp_path / "data")), tmp_path / "data", events)
    finally:
        await db.close()


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def size(path: Path) -> int:
    return path.stat().st_size


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def noop_report(message: str, percentage: int | None = None) -> None:
    pass


# --- the service ----------------------------------------------------------------------------
def test_record_keeps_what_the_client_gives(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with service(tmp_path) as env:
            job = await env.jobs.record(
                "implementation_plan",
                {"prompt": "plan it", "api_type": "gemini", "model_used": "gemini-2.5-pro",
                 "session_id": "s-1", "metadata": {"files": 3}},
            )  # fmt: skip
            assert (job.kind, job.source, job.status, job.attempts) == (
                "implementation_plan", "client", "queued", 0,
            )  # fmt: skip
            assert (job.prompt, job.api_type, job.model_used, job.session_id) == (
                "plan it", "gemini", "gemini-2.5-pro", "s-1",
            )  # fmt: skip
            assert job.metadata == {"files": 3}
            assert job.started_at is None and job.finished_at is None
            assert job.created_at == job.updated_at
            assert await env.jobs.get(job.id) == job
            done = await env.jobs.record("pathfinder", {"status": "completed", "response": "ok"})
            assert done.attempts == 1 and done.started_at == done.finished_at is not None
            with pytest.raises(NotFound, match="no job with id 999"):
                await env.jobs.get(999)

    run(scenario)


def test_the_lifecycle_rules(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with service(tmp_path) as env:
            job = await env.jobs.record("call", {})
            running = await env.jobs.update(job.id, {"status": "running"})
            assert (running.status, running.attempts) == ("running", 1)
            assert running.started_at is not None and running.updated_at >= job.updated_at
            again = await env.jobs.update(job.id, {"status": "running"})  # said twice: no change
            assert again == running
            retry = await env.jobs.update(job.id, {"status": "queued", "error": "rate limited"})
            assert (retry.status, retry.error, retry.finished_at) == ("queued", "rate limited",
                                                                      None)  # fmt: skip
            second = await env.jobs.update(job.id, {"status": "running"})
            assert second.attempts == 2
            done = await env.jobs.update(
                job.id, {"status": "completed", "response": "the plan", "error": None}
            )
            assert (done.status, done.response, done.error) == ("completed", "the plan", None)
            assert done.finished_at is not None and done.finished_at >= done.started_at  # type: ignore[operator]
            for status in ("failed", "running", "queued", "canceled"):
                with pytest.raises(
                    InvalidState, match=f"already completed.*cannot become {status}"
                ):
                    await env.jobs.update(job.id, {"status": status})
            same = await env.jobs.update(job.id, {"status": "completed"})
            assert same.finished_at == done.finished_at  # a repeated completion is harmless
            later = await env.jobs.update(job.id, {"metadata": {"tokens": 812}})
            assert later.status == "completed" and later.metadata == {"tokens": 812}
            with pytest.raises(NotFound):
                await env.jobs.update(12345, {"status": "running"})

    run(scenario)


def test_metadata_is_merged_and_null_removes_a_key(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with service(tmp_path) as env:
            job = await env.jobs.record("call", {"metadata": {"a": 1, "b": {"x": 1}}})
            job = await env.jobs.update(job.id, {"metadata": {"b": {"y": 2}, "c": [3]}})
            assert job.metadata == {"a": 1, "b": {"y": 2}, "c": [3]}
            job = await env.jobs.update(job.id, {"metadata": {"a": None}})
            assert job.metadata == {"b": {"y": 2}, "c": [3]}
            # what is stored is held to the limit an import holds it to, merges included
            half = {"big": "x" * (METADATA_MAX // 2)}
            job = await env.jobs.update(job.id, {"metadata": half})
            with pytest.raises(TooLarge, match="exceeds the limit"):
                await env.jobs.update(job.id, {"metadata": {"more": "y" * (METADATA_MAX // 2)}})
            assert (await env.jobs.get(job.id)).metadata == job.metadata

    run(scenario)


def test_cancel_a_client_job(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with service(tmp_path) as env:
            job = await env.jobs.record("call", {"status": "running"})
            canceled = await env.jobs.cancel(job.id)
            assert canceled.status == "canceled" and canceled.finished_at is not None
            with pytest.raises(InvalidState, match="already canceled"):
                await env.jobs.cancel(job.id)
            with pytest.raises(NotFound):
                await env.jobs.cancel(4242)

    run(scenario)


def test_projects_are_checked(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with service(tmp_path) as env:
            with pytest.raises(NotFound, match="no project with id 77"):
                await env.jobs.record("call", {"project_id": 77})

            def add_project(tx: Tx) -> int:
                return int(
                    tx.conn.execute(
                        "INSERT INTO projects (name, path, created_at, updated_at) "
                        "VALUES ('p', '/nowhere/p', ?, ?) RETURNING id",
                        (tx.now, tx.now),
                    ).fetchone()[0]
                )

            project_id = await env.db.write(add_project)
            job = await env.jobs.record("call", {"project_id": project_id})
            other = await env.jobs.record("call", {})
            page = await env.jobs.list(project_id=project_id)
            assert [j.id for j in page.items] == [job.id] and page.total == 1
            with pytest.raises(NotFound):
                await env.jobs.update(other.id, {"project_id": 78})

    run(scenario)


def test_a_large_response_goes_to_a_private_file(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with service(tmp_path) as env:
            big = "plan line ✓\n" * (RESPONSE_INLINE_MAX // 10)
            job = await env.jobs.record("implementation_plan", {"response": big})
            assert job.response is None and job.output_path is not None
            path = Path(job.output_path)
            assert path == env.data / "jobs" / f"{job.id}.out"
            assert read(path) == big
            assert (mode(path), mode(path.parent)) == (0o600, 0o700)
            assert names(path.parent) == [path.name]  # no temporary file left behind

            inline = "x" * RESPONSE_INLINE_MAX  # exactly the limit stays inline
            other = await env.jobs.record("call", {"status": "running"})
            other = await env.jobs.update(other.id, {"response": inline})
            assert other.response == inline and other.output_path is None

            bigger = await env.jobs.update(other.id, {"response": big + "!"})
            assert bigger.response is None
            assert read(Path(str(bigger.output_path))) == big + "!"
            small = await env.jobs.update(other.id, {"response": "short"})
            assert (small.response, small.output_path) == ("short", None)
            assert names(path.parent) == [path.name]  # the old file went with it

            again = await env.jobs.update(job.id, {"response": big + "?"})  # file for file
            assert (again.version, again.output_path) == (job.version + 1, job.output_path)
            assert read(path) == big + "?" and again.updated_at >= job.updated_at
            (last,) = env.data_of("jobs.updated")[-1:]
            assert (last["id"], last["changed_text"], last["version"]) == (
                job.id, ["response"], again.version,
            )  # fmt: skip

            finished = await env.jobs.update(job.id, {"status": "completed"})
            with pytest.raises(InvalidState):
                await env.jobs.update(finished.id, {"status": "failed", "response": big})
            assert names(path.parent) == [path.name]

    run(scenario)


def test_every_change_emits_an_event(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with service(tmp_path) as env:
            job = await env.jobs.record("call", {"prompt": "p", "session_id": "s"})
            await env.jobs.update(job.id, {"status": "running"})
            await env.jobs.update(job.id, {"status": "running"})  # nothing changed: no event
            await env.jobs.update(job.id, {"status": "failed", "error": "quota",
                                           "response": "partial"})  # fmt: skip
            assert env.types() == ["jobs.created", "jobs.updated", "jobs.updated", "jobs.finished"]
            assert all(e.topic == "jobs" for e in env.events)
            (created,) = env.data_of("jobs.created")
            assert created == json.loads(msgspec.json.encode(job))  # the row as it was made
            assert (created["uid"], created["version"], created["session_id"]) == (job.uid, 1, "s")
            first, second = env.data_of("jobs.updated")
            assert (first["id"], first["uid"], first["version"]) == (job.id, job.uid, 2)
            assert first["changed"] == {"status": "running", "attempts": 1,
                                        "started_at": first["changed"]["started_at"]}  # fmt: skip
            assert second["changed"]["error"] == "quota" and second["status"] == "failed"
            assert (second["kind"], second["source"], second["version"]) == ("call", "client", 3)
            assert second["changed_text"] == ["response"]
            assert "response" not in second["changed"]
            (finished,) = env.data_of("jobs.finished")
            assert (finished["status"], finished["error"], finished["attempts"]) == (
                "failed", "quota", 1,
            )  # fmt: skip
            assert finished["uid"] == job.uid

    run(scenario)


def test_list_filters_and_pages_newest_first(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with service(tmp_path) as env:
            ids = []
            for i in range(7):
                kind = "a" if i % 2 else "b"
                ids.append((await env.jobs.record(kind, {"session_id": f"s{i % 3}"})).id)
            await env.jobs.create_daemon_job("maintenance", {"status": "running"})
            await env.jobs.update(ids[0], {"status": "canceled"})
            page = await env.jobs.list(limit=3)
            assert page.total == 8 and len(page.items) == 3
            assert [j.id for j in page.items] == sorted((j.id for j in page.items), reverse=True)
            assert (await env.jobs.list(kind="a")).total == 3
            assert (await env.jobs.list(source="daemon")).items[0].kind == "maintenance"
            assert (await env.jobs.list(status=["canceled", "running"])).total == 2
            assert (await env.jobs.list(session_id="s0")).total == 3
            rest = await env.jobs.list(limit=5, offset=5)
            assert rest.total == 8 and len(rest.items) == 3

    run(scenario)


def test_recover_closes_only_the_daemons_leftovers(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with service(tmp_path) as env:
            ran = await env.jobs.create_daemon_job("maintenance", {"status": "running"})
            waited = await env.jobs.create_daemon_job("backup", {"status": "queued"})
            client = await env.jobs.record("call", {"status": "running"})
            done = await env.jobs.recover()
            assert [(d.id, d.status) for d in done] == [
                (ran.id, "failed"), (waited.id, "canceled"),
            ]  # fmt: skip
            assert (await env.jobs.get(ran.id)).error == "the daemon stopped while it ran"
            assert (await env.jobs.get(client.id)).status == "running"
            assert env.types().count("jobs.finished") == 2

    run(scenario)


def test_a_row_no_job_can_hold_is_shown_as_stored(tmp_path: Path) -> None:
    """A file swapped in as it is (a restored backup, a hand edit) may hold a job the Struct
    refuses: metadata nested deeper than any decoder goes, a session_id over its limit. It is
    still shown and listed (a note in place of the metadata), a change to it is a clear
    invalid_state, and the start-up clean-up closes the daemon's other leftovers."""

    async def scenario() -> None:
        async with service(tmp_path) as env:
            client = await env.jobs.record("call", {"session_id": "s"})
            stuck = await env.jobs.create_daemon_job("backup", {"status": "running"})
            other = await env.jobs.create_daemon_job("maintenance", {"status": "queued"})
            deep = '{"a":' * 1500 + "1" + "}" * 1500
            conn = sqlite3.connect(tmp_path / "pm.db")  # by hand, beside the daemon's writer
            with conn:
                conn.execute("PRAGMA ignore_check_constraints = ON")
                conn.execute(
                    "UPDATE jobs SET metadata = ?, session_id = ? WHERE id = ?",
                    (deep, "s" * 600, client.id),
                )
                conn.execute("UPDATE jobs SET metadata = ? WHERE id = ?", (deep, stuck.id))
            conn.close()
            shown = await env.jobs.get(client.id)
            assert "1500 levels" in shown.metadata["unreadable"]
            assert shown.session_id == "s" * 600 and shown.uid == client.uid
            page = await env.jobs.list()
            assert [j.id for j in page.items] == [other.id, stuck.id, client.id]
            assert page.items[1].metadata == (await env.jobs.get(stuck.id)).metadata
            with pytest.raises(InvalidState, match="shown, not changed"):
                await env.jobs.update(client.id, {"status": "running"})
            closed = await env.jobs.recover()
            assert [(j.id, j.status) for j in closed] == [(other.id, "canceled")]

    run(scenario)


# --- maintenance job functions ------------------------------------------------------------
def test_maintenance_checkpoints_and_optimizes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with service(tmp_path) as env:
            for _ in range(20):
                await env.jobs.record("call", {})
            result = await maintenance_job(env.db)(noop_report)
            assert result.optimized and not result.checkpoint_busy
            assert size(tmp_path / "pm.db-wal") == 0  # TRUNCATE emptied it

    run(scenario)


def test_retention_deletes_old_events_only(tmp_path: Path) -> None:
    path = tmp_path / "pm.db"
    Database(str(path)).migrate(migrations.load())
    old = iso(datetime.now(UTC) - timedelta(days=100))
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO events (ts, topic, type, data) VALUES (?, 'kv', 'kv.set', '{}')",
            [(old,)] * 12_000,
        )
    conn.close()

    async def scenario() -> None:
        db = Database(str(path))
        await db.start()
        try:
            await JobService(db, str(tmp_path / "data")).record("call", {})  # a recent event
            result = await retention_job(db, 90)(noop_report)
            assert result.deleted_events == 12_000
            left = await db.read(lambda c: c.execute("SELECT seq, type FROM events").fetchall())
            assert left == [(12_001, "jobs.created")]
            assert (await retention_job(db, 0)(noop_report)).deleted_events == 0
        finally:
            await db.close()

    run(scenario)


# --- through the daemon ---------------------------------------------------------------------
def _finished(d: DaemonProcess, job_id: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = d.call("jobs.get", {"id": job_id})
        return job if job["status"] in ("completed", "failed", "canceled") else None

    result: dict[str, Any] = wait_for(done, 30, f"job {job_id} to finish")
    return result


def test_rpc_record_update_get_list(daemon: DaemonProcess) -> None:
    job = daemon.call(
        "jobs.record",
        {"kind": "implementation_plan", "prompt": "plan", "api_type": "claude",
         "model_used": "claude-x", "session_id": "s1", "metadata": {"k": 1}},
    )  # fmt: skip
    assert (job["status"], job["source"], job["attempts"]) == ("queued", "client", 0)
    job = daemon.call("jobs.update", {"id": job["id"], "status": "running"})
    assert job["attempts"] == 1 and job["started_at"]
    job = daemon.call(
        "jobs.update",
        {"id": job["id"], "status": "completed", "response": "done", "metadata": {"t": 2}},
    )
    assert job["finished_at"] and job["metadata"] == {"k": 1, "t": 2}
    got = daemon.call("jobs.get", {"id": job["id"]})
    assert got["response"] == "done" and got["progress"] is None
    page = daemon.call("jobs.list", {"source": "client", "status": ["completed"]})
    assert page["total"] == 1 and page["items"][0]["id"] == job["id"]
    assert daemon.call("jobs.list", {"kind": "nothing-like-it"}) == {"items": [], "total": 0}

    error = daemon.call_error("jobs.update", {"id": job["id"], "status": "failed"})
    assert error.kind == "invalid_state" and "already completed" in error.message
    assert daemon.call_error("jobs.get", {"id": 9999}).kind == "not_found"
    assert daemon.call_error("jobs.record", {"kind": "x", "project": 12345}).kind == "not_found"
    bad = daemon.call_error("jobs.record", {"kind": "x", "status": "idle"})
    assert bad.code == -32602 and bad.data.get("field") == "status"
    bad = daemon.call_error("jobs.update", {"id": job["id"], "status": "idle"})
    assert bad.code == -32602 and bad.data.get("field") == "status"
    assert daemon.call_error("jobs.record", {"kind": ""}).data.get("field") == "kind"
    assert daemon.call_error("jobs.update", {"id": job["id"], "kind": "y"}).code == -32602


def test_rpc_cancel_and_large_output(daemon: DaemonProcess) -> None:
    job = daemon.call("jobs.record", {"kind": "call", "status": "running"})
    canceled = daemon.call("jobs.cancel", {"id": job["id"]})
    assert canceled["status"] == "canceled"
    assert daemon.call_error("jobs.cancel", {"id": job["id"]}).kind == "invalid_state"
    big = "y" * (200 * 1024)
    stored = daemon.call("jobs.record", {"kind": "plan", "status": "completed", "response": big})
    assert stored["response"] is None
    path = Path(stored["output_path"])
    assert path.parent == daemon.data_dir / "jobs" and path.read_text() == big
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_rpc_run_the_daemons_own_jobs(daemon: DaemonProcess) -> None:
    error = daemon.call_error("jobs.run", {"kind": "nope"})
    assert error.code == -32602 and "maintenance" in error.message
    assert "retention" in error.data["known"]
    job = daemon.call("jobs.run", {"kind": "maintenance"})
    assert (job["source"], job["kind"], job["metadata"]["trigger"]) == (
        "daemon", "maintenance", "manual",
    )  # fmt: skip
    done = _finished(daemon, job["id"])
    assert done["status"] == "completed" and done["attempts"] == 1
    assert json.loads(done["response"])["optimized"] is True
    events = daemon.call("events.list", {"topics": ["jobs.finished"]})["items"]
    assert any(e["data"]["id"] == job["id"] for e in events)
    retention = _finished(daemon, daemon.call("jobs.run", {"kind": "retention"})["id"])
    assert retention["status"] == "completed"
    assert daemon.call("jobs.list", {"source": "daemon"})["total"] >= 2


def test_pm_jobs(make_daemon: DaemonFactory) -> None:
    world = make_daemon(config={"watch": False, "rescan_interval_s": 0})
    world.start()
    cli = Cli(world)
    done = cli.run("jobs", "run", "maintenance")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("job ") and "completed in" in lines[-1]
    job_id = int(lines[0].split()[1])
    table = cli.ok("jobs").splitlines()
    assert table[0].split() == ["ID", "KIND", "STATUS", "STARTED", "DURATION", "ERROR"]
    row = next(line for line in table[1:] if line.split()[0] == str(job_id))
    assert "maintenance" in row and "completed" in row and "just now" in row
    page = json.loads(cli.ok("--json", "jobs", "--kind", "maintenance"))
    assert [j["id"] for j in page["items"]] == [job_id]
    assert cli.ok("jobs", "--status", "failed").splitlines()[1:] == []
    assert "status      completed" in cli.ok("jobs", "show", str(job_id))
    queued = cli.run("jobs", "run", "retention", "--no-wait")
    assert queued.returncode == 0 and queued.stdout.startswith("job ")
    unknown = cli.run("jobs", "run", "nope")
    assert unknown.returncode == 1 and "known: " in unknown.stderr
    assert "maintenance" in unknown.stderr


def test_rpc_names_a_project_like_every_method(make_daemon: DaemonFactory) -> None:
    from tests.gitrepos import make_repo

    d = make_daemon(config={"watch": False, "schedule": {"quality": "off"}})
    make_repo(d.dev_root / "site", home=d.home)
    d.start()
    d.call("projects.scan")
    site = d.call("projects.get", {"project": "site"})
    job = d.call("jobs.record", {"kind": "llm-call", "project": "site", "model_used": "m1"})
    assert job["project_id"] == site["id"]
    by_path = d.call("jobs.list", {"project": site["path"]})
    assert [j["id"] for j in by_path["items"]] == [job["id"]]
    assert d.call_error("jobs.list", {"project": "nowhere"}).kind == "not_found"
