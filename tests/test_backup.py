"""Backups and restores on a real daemon: writes keep flowing, nothing acknowledged is lost."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from client.errors import RemoteError
from daemon.platform import private_folders
from daemon.runtime.backups import BackupService
from daemon.runtime.config import Config, resolve_paths
from daemon.store import backup, migrations
from daemon.store.database import Database
from tests.conftest import DaemonFactory
from tests.helpers import DaemonProcess, RawConnection, wait_for

REPO = Path(__file__).resolve().parent.parent
WRITERS = 8


def kv_keys(db_file: str | Path, namespace: str) -> set[str]:
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT key FROM kv WHERE namespace = ?", (namespace,)).fetchall()
    finally:
        conn.close()
    return {r[0] for r in rows}


def corrupt(path: str | Path, pages: list[int] | None = None) -> None:
    """Overwrite pages (default: every page after the first) with garbage, in place."""
    data = Path(path).read_bytes()
    size = int.from_bytes(data[16:18], "big") or 65536
    count = len(data) // size
    with open(path, "r+b") as f:
        for page in pages or list(range(1, count)):
            f.seek(page * size)
            f.write(os.urandom(size))


class Writers:
    """`count` clients, each writing kv.set ns=w, key=c<i>-<n> in order, recording every ack."""

    def __init__(self, daemon: DaemonProcess, count: int = WRITERS) -> None:
        self.daemon = daemon
        self.acked: list[list[tuple[int, float]]] = [[] for _ in range(count)]
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(count)]

    def _run(self, i: int) -> None:
        with self.daemon.client() as client:
            n = 0
            while not self._stop.is_set():
                try:
                    client.call("kv.set", {"namespace": "w", "key": f"c{i}-{n:06d}", "value": n})
                except RemoteError as e:  # would be a lost write: the test fails on it
                    self.errors.append(f"{e.kind}: {e.message}")
                    return
                self.acked[i].append((n, time.monotonic()))
                n += 1

    def __enter__(self) -> Writers:
        for t in self._threads:
            t.start()
        wait_for(lambda: all(len(a) > 5 for a in self.acked), 20, "every writer to write")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def keys_acked_before(self, moment: float) -> set[str]:
        return {f"c{i}-{n:06d}" for i, a in enumerate(self.acked) for n, t in a if t < moment}

    def all_keys(self) -> set[str]:
        return {f"c{i}-{n:06d}" for i, a in enumerate(self.acked) for n, _ in a}


def test_backup_while_eight_clients_write(daemon: DaemonProcess) -> None:
    with Writers(daemon) as writers:
        time.sleep(0.2)
        asked = time.monotonic()
        made = daemon.call("db.backup")
        answered = time.monotonic()
        time.sleep(0.2)
    assert not writers.errors
    assert made["name"].startswith("pm-agent_") and made["bytes"] > 0
    assert backup.problems(made["path"]) == []
    in_backup = kv_keys(made["path"], "w")
    # Everything acknowledged before the backup was asked for is in it ...
    assert writers.keys_acked_before(asked) <= in_backup
    # ... and it holds one moment: for each writer, a gap-free prefix of what it wrote.
    for i in range(WRITERS):
        mine = sorted(int(k.split("-")[1]) for k in in_backup if k.startswith(f"c{i}-"))
        assert mine == list(range(len(mine)))
    # Writes went on during the backup, and every acknowledged one is in the live database.
    during = {
        f"c{i}-{n:06d}" for i, a in enumerate(writers.acked) for n, t in a if asked < t < answered
    }
    assert during, "no write was acknowledged while the backup ran"
    daemon.stop()
    assert writers.all_keys() <= kv_keys(daemon.db_path, "w")
    # private: 0600 files in a 0700 folder
    assert stat.S_IMODE(os.stat(made["path"]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(made["path"])).st_mode) == 0o700


def test_scheduler_runs_the_backup_kind(daemon: DaemonProcess) -> None:
    job = daemon.call("jobs.run", {"kind": "backup"})
    done = wait_for(
        lambda: (j := daemon.call("jobs.get", {"id": job["id"]}))["status"] == "completed" and j,
        30,
        "the backup job",
    )
    assert "pm-agent_" in done["response"]
    listed = daemon.call("db.backups")["items"]
    assert [b["ok"] for b in listed] == [True]
    assert listed[0]["schema_version"] == daemon.call("db.health")["schema_version"]
    assert daemon.call("db.health")["last_backup"]["name"] == listed[0]["name"]


def test_retention_keeps_the_last_seven_and_one_a_week(tmp_path: Path) -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    paths = resolve_paths(Config(dev_root=str(tmp_path / "dev"), data_dir=str(tmp_path / "d")))
    folder = private_folders.check(paths.backups_dir, what="backups folder", parents=True)
    made = []
    for day in range(70):  # one backup a day for ten weeks, plus one before a migration
        name = backup.make_name(now - timedelta(days=day, hours=1))
        Path(folder, name).write_bytes(b"")
        made.append(name)
    before_migration = backup.make_name(now - timedelta(days=60), "before-migration-0005")
    Path(folder, before_migration).write_bytes(b"")
    failed = private_folders.check(os.path.join(folder, "failed"), what="failed")
    Path(failed, backup.make_name(now - timedelta(days=65))).write_bytes(b"")
    service = BackupService(
        Database(paths.db_path), paths, list, keep_last=7, keep_weeks=8, clock=lambda: now
    )
    removed = service.prune()
    left = sorted(n for n in os.listdir(folder) if n.endswith(".db"))
    newest_seven = set(made[:7])
    weekly = {made[7 * w] for w in range(8)}  # the newest of each of the last 8 weeks
    assert set(left) == newest_seven | weekly | {before_migration}
    assert len(removed) == 70 - len(newest_seven | weekly)
    assert os.listdir(failed), "a failed backup is reported, never rotated"
    # a week later, the oldest weekly one ages out
    later = BackupService(
        Database(paths.db_path), paths, list, clock=lambda: now + timedelta(weeks=1)
    )
    assert later.prune() == [made[49]]


def test_a_burst_of_backups_keeps_true_times_and_the_newest(daemon: DaemonProcess) -> None:
    """Twenty backups asked for in one batch (most within one second): their names say when
    each was made (-1, -2… within a second, never a later second), each answer names a
    file that retention kept, and the seven kept are the seven newest."""
    started = datetime.now(UTC).replace(microsecond=0)
    conn = RawConnection(daemon.socket_path, timeout=60)
    try:
        conn.send(
            json.dumps(
                [{"jsonrpc": "2.0", "id": i, "method": "db.backup"} for i in range(20)]
            ).encode()
        )
        reply = conn.read_frame()
    finally:
        conn.close()
    assert reply is not None
    made = [r["result"] for r in sorted(json.loads(reply), key=lambda r: r["id"])]
    finished = datetime.now(UTC)
    names = [m["name"] for m in made]
    assert len(set(names)) == 20
    for name in names:
        moment, _ = backup.parse_name(name) or (None, None)
        assert moment is not None and started <= moment <= finished, name
    listed = [b["name"] for b in daemon.call("db.backups")["items"]]
    assert listed == names[::-1][:7], "newest first, and the newest seven kept"
    removed = [name for m in made for name in m["removed"]]
    assert sorted(removed) == sorted(names[:13]), "each of the others removed once, later"
    assert not any(m["name"] in m["removed"] for m in made), "none removed by its own pruning"


def test_restore_round_trip_while_writing(daemon: DaemonProcess) -> None:
    daemon.call("kv.set", {"namespace": "r", "key": "before", "value": 1})
    made = daemon.call("db.backup")
    daemon.call("kv.set", {"namespace": "r", "key": "after", "value": 2})
    with daemon.client() as listener:
        listener.call("events.subscribe", {"topics": ["db"]})
        with Writers(daemon, 4) as writers:
            time.sleep(0.1)
            asked = time.monotonic()
            restored = daemon.call("db.restore", {"name": made["name"]})
            answered = time.monotonic()
            time.sleep(0.1)
        event = next(n["params"]["event"] for n in listener.notifications())
    assert event["type"] == "db.restored" and event["data"]["name"] == made["name"]
    assert not writers.errors, "a write waiting through the restore failed"
    safety = restored["safety_copy"]
    assert safety and os.path.basename(safety).endswith("_before-restore.db")
    live = daemon.call("kv.list", {"namespace": "r"})["items"]
    assert [i["key"] for i in live] == ["before"]
    # Writes acknowledged before the restore are in the safety copy, later ones in the live db.
    assert writers.keys_acked_before(asked) <= kv_keys(safety, "w")
    after = {f"c{i}-{n:06d}" for i, a in enumerate(writers.acked) for n, t in a if t > answered}
    assert after and after <= kv_keys(daemon.db_path, "w")
    # Restoring the safety copy brings the rest back.
    daemon.call("db.restore", {"name": os.path.basename(safety)})
    assert {i["key"] for i in daemon.call("kv.list", {"namespace": "r"})["items"]} == {
        "before",
        "after",
    }
    # Event numbers never go backwards across restores.
    seqs = [e["seq"] for e in daemon.call("events.list", {"since": 0, "limit": 1000})["items"]]
    assert seqs == sorted(seqs)


def test_restore_of_a_damaged_backup_changes_nothing(daemon: DaemonProcess) -> None:
    daemon.call("kv.set", {"namespace": "r", "key": "live", "value": 1})
    made = daemon.call("db.backup")
    corrupt(made["path"], [2, 3])
    error = daemon.call_error("db.restore", {"name": made["name"]})
    assert error.kind == "storage"
    assert "damaged" in error.message and "nothing was changed" in error.message
    assert daemon.call("kv.get", {"namespace": "r", "key": "live"})["value"] == 1
    daemon.call("kv.set", {"namespace": "r", "key": "still-writing", "value": 2})
    assert daemon.call("db.verify", {"name": made["name"]})["ok"] is False
    unknown = daemon.call_error("db.restore", {"name": "pm-agent_20200101_000000.db"})
    assert unknown.kind == "not_found" and "pm backup list" in unknown.message
    traversal = daemon.call_error("db.restore", {"name": "../db/pm-agent.db"})
    assert traversal.kind == "not_found" and "not a backup name" in traversal.message


def test_a_restore_that_fails_after_the_swap_is_rolled_back(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """A backup whose rows break a migration of this daemon: swapped in, the migration
    fails, the previous database is put back and the daemon goes on."""
    plain = make_daemon("plain").start()
    plain.call("kv.set", {"namespace": "x", "key": "a", "value": 1})
    plain.call("kv.set", {"namespace": "x", "key": "b", "value": 1})  # the same value twice
    old = plain.call("db.backup")
    plain.stop()
    extra = tmp_path / "extra"
    extra.mkdir()
    newer = f"{migrations.load()[-1].version + 1:04d}_unique_values.sql"
    (extra / newer).write_text("CREATE UNIQUE INDEX kv_unique_value ON kv (value);\n")
    strict = make_daemon(
        "strict",
        argv=[sys.executable, str(REPO / "tests" / "extra_migrations_daemon.py")],
        env={"PM_TEST_EXTRA_MIGRATIONS": str(extra)},
    ).start()
    strict.call("kv.set", {"namespace": "x", "key": "mine", "value": 42})
    backups = strict.data_dir / "backups"
    backups.mkdir(mode=0o700, exist_ok=True)
    shutil.copy(old["path"], backups / old["name"])
    error = strict.call_error("db.restore", {"name": old["name"]})
    assert error.kind == "storage"
    assert f"{newer} failed" in error.message
    assert "previous database was put back" in error.message
    assert strict.call("kv.list", {"namespace": "x"})["items"][0]["key"] == "mine"
    strict.call("kv.set", {"namespace": "x", "key": "later", "value": 43})
    assert strict.call("db.check")["ok"] is True


def test_retention_counts_safety_copies_apart() -> None:
    """Safety copies (a label) never push regular backups out, and have a pool of their own;
    a protected name (the backup last restored) is never removed."""
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    regular = [backup.make_name(now - timedelta(hours=h)) for h in range(1, 5)]
    safety = [
        backup.make_name(now - timedelta(minutes=m), label)
        for m, label in ((10, "before-import"), (20, "before-reset"), (30, "before-restore"),
                         (40, "before-migration-0004"), (50, "before-import"))
    ]  # fmt: skip
    named = [(n, backup.parse_name(n)[0]) for n in regular + safety]  # type: ignore[index]
    gone = backup.expired(named, now, keep_last=2, keep_weeks=0)
    assert sorted(gone) == sorted([*regular[2:], safety[2], safety[4]])
    protected = backup.expired(
        named, now, keep_last=2, keep_weeks=0, protected=frozenset([regular[3]])
    )
    assert regular[3] not in protected and sorted(protected) == sorted(
        [regular[2], safety[2], safety[4]]
    )


def test_a_backup_that_fails_verify_is_listed_as_damaged_from_then_on(
    daemon: DaemonProcess,
) -> None:
    """13 §4: `db.verify` finding damage sets the backup aside: `db.backups` lists it as
    damaged with what was found, it is never restored, and retention does not count it."""
    daemon.call("kv.set", {"namespace": "r", "key": "k", "value": 1})
    made = daemon.call("db.backup")
    corrupt(made["path"], [2, 3])
    verified = daemon.call("db.verify", {"name": made["name"]})
    assert verified["ok"] is False and verified["problems"]
    assert verified["moved_to"] and os.path.basename(verified["moved_to"]) == made["name"]
    for _ in range(2):  # from then on: not only in the answer to the verify
        listed = {b["name"]: b for b in daemon.call("db.backups")["items"]}
        assert listed[made["name"]]["ok"] is False
        assert listed[made["name"]]["problem"] == "; ".join(verified["problems"])
    error = daemon.call_error("db.restore", {"name": made["name"]})
    assert error.kind == "invalid_state" and "failed its check" in error.message
    again = daemon.call("db.verify", {"name": made["name"]})
    assert again["ok"] is False and again["moved_to"] is None
    assert daemon.call("db.health")["last_backup"] is None
    good = daemon.call("db.backup")
    assert daemon.call("db.health")["last_backup"]["name"] == good["name"]


def test_pm_backup_verify_offline_marks_the_backup_damaged(make_daemon: DaemonFactory) -> None:
    from tests.test_cli import Cli

    world = make_daemon().start()
    made = world.call("db.backup")
    world.stop()
    corrupt(made["path"], [2, 3])
    cli = Cli(world)
    done = cli.run("--no-spawn", "backup", "verify", made["name"])
    assert done.returncode == 1 and "DAMAGED" in done.stdout and "from now on" in done.stdout
    listed = cli.run("--no-spawn", "backup", "list")
    assert listed.returncode == 0
    line = next(x for x in listed.stdout.splitlines() if made["name"] in x)
    assert "FAILED" in line, listed.stdout
    done = cli.run("--no-spawn", "backup", "restore", made["name"])
    assert done.returncode == 1 and "failed its check" in done.stderr


KEEP_TWO = {"backup_keep_last": 2, "backup_keep_weeks": 0, "watch": False,
            "schedule": {"backup": "off", "quality": "off"}}  # fmt: skip


def names(daemon: DaemonProcess) -> set[str]:
    return {b["name"] for b in daemon.call("db.backups")["items"] if b["ok"]}


def test_safety_copies_do_not_push_regular_backups_out(make_daemon: DaemonFactory) -> None:
    """13 §4: the copies kept before an import or a reset are not regular backups: the two
    newest regular ones survive however many safety copies were made meanwhile."""
    d = make_daemon(config=KEEP_TWO).start()
    d.call("kv.set", {"namespace": "r", "key": "k", "value": 1})
    first = d.call("db.backup")["name"]
    second = d.call("db.backup")["name"]
    export = d.call("db.export", {"format": "json"})["path"]
    d.call("db.import", {"path": export})
    d.call("db.reset", {"confirm": True})
    d.call("db.import", {"path": export})
    third = d.call("db.backup")
    assert [n for n in third["removed"] if "_before-" not in n] == [first]
    kept = names(d)
    assert {second, third["name"]} <= kept
    assert len([n for n in kept if "_before-" in n]) == 2, kept


def test_the_backup_restored_from_is_never_removed(make_daemon: DaemonFactory) -> None:
    """13 §4: restore an old backup, then back up on: retention keeps the one restored from."""
    d = make_daemon(config=KEEP_TWO).start()
    d.call("kv.set", {"namespace": "r", "key": "k", "value": "old"})
    old = d.call("db.backup")["name"]
    d.call("kv.set", {"namespace": "r", "key": "k", "value": "new"})
    made = [d.call("db.backup")["name"]]
    d.call("db.restore", {"name": old})
    later = [d.call("db.backup")["name"] for _ in range(3)]
    kept = names(d)
    assert old in kept, "the backup just restored from was removed"
    assert set(later[-2:]) <= kept and not set(made) & kept
    d.stop()
    d.start()  # the protection holds across a restart
    d.call("db.backup")
    assert old in names(d)
