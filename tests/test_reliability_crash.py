"""Crashes, SIGTERM under load, a full disk: the short versions of bench/reliability_crash.py.

The scenarios themselves live in the bench module (the long versions run there: 50 kills of
64 clients, 20 SIGTERMs); here they run against a real daemon from `make_daemon`, briefly.
The full-disk tests mount a small tmpfs as the data folder: they need root, and are skipped
without it unless PM_TEST_REQUIRE_TOOLS=1 (CI), where they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import Iterator

import pytest

from bench import reliability_crash as rc
from client.aio import AsyncClient
from client.errors import ClientError, RemoteError
from tests.conftest import DaemonFactory
from tests.helpers import REQUIRE_TOOLS_ENV, DaemonProcess

REQUIRE_TOOLS = os.environ.get(REQUIRE_TOOLS_ENV) == "1"


def _seeded() -> tuple[int, random.Random]:
    seed = random.randrange(1 << 32)
    return seed, random.Random(seed)


def test_sigkill_under_load_loses_no_acknowledged_write(make_daemon: DaemonFactory) -> None:
    """5 kills of the daemon (SIGKILL) while 16 clients write; after each, before the restart,
    the files hold every acknowledged write once, with its value, and pass integrity_check."""
    seed, rng = _seeded()
    daemon = make_daemon(config={"watch": False}).start()
    run = asyncio.run(rc.kill_cycles(daemon, clients=16, cycles=5, max_delay_s=0.2, rng=rng))
    problems = [f"kill {i + 1}: {rc.describe(c.check)}" for i, c in enumerate(run.cycles)]
    assert run.ok, f"seed {seed}: {problems}; final: {rc.describe(run.final)}"
    assert run.lost == 0
    assert len(run.ledger.acked) >= 5 * 16
    # Every kill found writes in flight: what was sent and never answered may or may not be
    # there, and nothing else was there (no phantom, no key twice: checked above).
    assert all(c.in_flight > 0 for c in run.cycles), [c.in_flight for c in run.cycles]
    assert run.ledger.cut, "no write was ever caught in flight by a kill"
    assert set(run.ledger.refused.values()) <= {"starting"}, run.ledger.refused


STOP_TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def sigterms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, list[rc.TermCycle]]]:
    """3 SIGTERMs, each while 16 clients keep 2 durable writes each in flight."""
    seed, rng = _seeded()
    daemon = DaemonProcess(
        tmp_path_factory.mktemp("term") / "d",
        config={"watch": False, "stop_timeout_s": STOP_TIMEOUT_S},
    )
    cycles: list[rc.TermCycle] = []
    try:
        for cycle in range(3):
            daemon.start()
            cycles.append(
                asyncio.run(
                    rc.term_cycle(
                        daemon,
                        cycle,
                        clients=16,
                        depth=2,
                        max_delay_s=0.2,
                        stop_timeout_s=STOP_TIMEOUT_S,
                        rng=rng,
                    )
                )
            )
        yield seed, cycles
    finally:
        daemon.cleanup()


def test_sigterm_under_load_keeps_what_it_acknowledged_and_exits_in_time(
    sigterms: tuple[int, list[rc.TermCycle]],
) -> None:
    """Every acknowledged write is there; a write answered shutting_down was not written;
    no other error; exit 0 within stop_timeout_s; nobody left waiting once it exited."""
    seed, cycles = sigterms
    for i, r in enumerate(cycles):
        what = f"seed {seed}, cycle {i}"
        assert r.ledger.acked, what
        assert r.check.ok, f"{what}: {rc.describe(r.check)}"
        assert r.exit_code == 0, what
        assert r.exit_s < STOP_TIMEOUT_S, f"{what}: {r.exit_s:.2f} s"
        assert r.other_errors == {}, what
        assert r.refused_yet_written == 0, what
        assert r.hung == 0, what


def test_sigterm_under_load_answers_every_request(
    sigterms: tuple[int, list[rc.TermCycle]],
) -> None:
    """A result or shutting_down for every request, never a connection closed instead (it
    fails in about a quarter of the cycles; bench/reliability_crash.py counts it)."""
    seed, cycles = sigterms
    unanswered = [(r.unanswered, r.unanswered_unread) for r in cycles]
    assert all(n == 0 for n, _ in unanswered), f"seed {seed}: (unanswered, unread) {unanswered}"


def test_sigterm_a_request_sent_right_after_an_answer_is_answered(
    make_daemon: DaemonFactory,
) -> None:
    """A backup in flight when SIGTERM comes completes; the request the client sends as soon
    as it has the result must get an answer (shutting_down), not a closed connection."""
    daemon = make_daemon(config={"watch": False, "stop_timeout_s": STOP_TIMEOUT_S}).start()

    async def scenario() -> str:
        client = await AsyncClient.connect(daemon.socket_path)
        try:
            value = "x" * 1_000_000
            for i in range(20):  # a backup long enough to be in flight at the signal
                await client.call("kv.set", {"namespace": "big", "key": f"{i}", "value": value})
            copying = asyncio.Event()
            _, backup = client.start_call("db.backup", {}, progress=lambda _: copying.set())
            await copying.wait()
            daemon.signal(signal.SIGTERM)
            await backup
            try:
                await client.call("kv.get", {"namespace": "big", "key": "1"})
            except RemoteError as e:
                return e.kind
            except ClientError as e:
                return f"no answer: {e}"
            return "a result"
        finally:
            await client.close()

    heard = asyncio.run(scenario())
    assert daemon.wait() == 0
    assert heard in ("shutting_down", "a result"), heard


# --- a full disk ------------------------------------------------------------------------------
def _unavailable(reason: str) -> None:
    if REQUIRE_TOOLS:
        pytest.fail(f"{reason}, and PM_TEST_REQUIRE_TOOLS=1 requires the full-disk tests")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def full_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rc.DiskFull]:
    """One run of the full-disk scenario on a 16 MiB tmpfs; the tests below read its report."""
    daemon = DaemonProcess(tmp_path_factory.mktemp("full") / "d", config={"watch": False})
    try:
        with rc.tmpfs(daemon.data_dir, 16) as data:
            daemon.start()
            try:
                report = asyncio.run(rc.disk_full_scenario(daemon, data, data / "db" / "filler"))
            finally:
                rc.ensure_stopped(daemon)
            yield report
    except rc.TmpfsUnavailable as e:
        _unavailable(str(e))
    finally:
        daemon.cleanup()


def test_disk_full_fails_writes_with_disk_full_and_keeps_everything(
    full_disk: rc.DiskFull,
) -> None:
    r = full_disk
    assert r.first_error["kind"] == "disk_full" and r.first_error["code"] == -32007, r.first_error
    assert "full" in r.first_error["message"]
    # Once full, a write is acknowledged (it fitted) or refused disk_full, nothing else.
    assert set(r.after_full) <= {"acked", "disk_full"}, r.after_full
    assert r.after_full.get("disk_full"), r.after_full
    assert r.final is not None and r.final.ok, rc.describe(r.final) if r.final else None
    assert not r.final.missing and r.final.integrity == ["ok"]
    assert r.exit_code == 0


def test_disk_full_reads_go_on_and_the_database_stays_sound(full_disk: rc.DiskFull) -> None:
    r = full_disk
    assert r.reads_ok
    assert r.check_full["ok"] is True, r.check_full
    assert any("disk_full" in w for w in r.health["warnings"]), r.health["warnings"]
    # The WAL cannot be checkpointed into a database file that cannot grow: it stays.
    assert r.wal_full > 0


def test_disk_full_backup_and_checkpoint_fail_cleanly(full_disk: rc.DiskFull) -> None:
    r = full_disk
    assert r.backup_full.get("kind") in ("storage", "disk_full"), r.backup_full
    assert "full" in r.backup_full.get("message", ""), r.backup_full
    assert r.backups_left == [], "a failed backup left files behind"
    # The maintenance job cannot even be recorded on the full disk: a clear refusal.
    assert r.maintenance_full == "disk_full", r.maintenance_full


def test_disk_full_a_failing_checkpoint_is_recorded(full_disk: rc.DiskFull) -> None:
    assert rc.checkpoint_recorded(full_disk), full_disk.checkpoint_full


def test_disk_full_writes_resume_without_a_restart(full_disk: rc.DiskFull) -> None:
    r = full_disk
    assert r.resumed, "a write failed after space returned"
    assert r.checkpoint_after.get("status") == "completed", r.checkpoint_after
    assert r.wal_after < r.wal_full, (r.wal_after, r.wal_full)


def test_disk_full_stop_and_start_on_the_full_disk(full_disk: rc.DiskFull) -> None:
    r = full_disk
    assert r.full_stop_code == 0
    assert r.full_restart_reads_ok
    assert "restarted" in (r.final.present if r.final else set())
