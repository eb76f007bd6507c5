"""Recovery as a user meets it: a damaged file at start, a migration to roll back, an export
to bring back, a reset. Every path ends with the data intact or with the command to run."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.store import backup, migrations
from tests.conftest import DaemonFactory
from tests.helpers import DaemonProcess, wait_for
from tests.test_backup import corrupt, kv_keys
from tests.test_cli import Cli
from tests.test_salvage import pages

REPO = Path(__file__).resolve().parent.parent


def fill(daemon: DaemonProcess, count: int, namespace: str = "keep") -> None:
    with daemon.client() as client:
        for i in range(count):
            value = f"value {i} " * 20  # ~200 bytes: many pages, so damage hits some rows
            client.call("kv.set", {"namespace": namespace, "key": f"k{i:06d}", "value": value})


def refused_start(daemon: DaemonProcess) -> str:
    daemon.start(wait=False)
    assert daemon.wait(30) == 1
    return daemon.log()


@pytest.fixture
def cli(make_daemon: DaemonFactory) -> Iterator[Cli]:
    c = Cli(make_daemon())
    yield c
    c.stop_spawned()


def test_damaged_database_is_refused_then_restored_offline(cli: Cli) -> None:
    world = cli.world.start()
    fill(world, 50)
    made = world.call("db.backup")
    world.call("kv.set", {"namespace": "keep", "key": "after-backup", "value": 1})
    world.stop()
    before = world.db_path.read_bytes()
    corrupt(world.db_path, [2, 3, 4])
    damaged = world.db_path.read_bytes()
    said = refused_start(world)
    assert "is damaged" in said and "changed nothing" in said
    assert f"pm backup restore {made['name']}" in said and "pm db repair" in said
    assert world.db_path.read_bytes() == damaged, "a refused start must not touch the file"
    assert before != damaged
    # The daemon cannot start, so pm works on the files itself.
    done = cli.run("backup", "list")
    assert done.returncode == 0 and made["name"] in done.stdout
    assert "not running" in done.stderr
    done = cli.run("--no-spawn", "backup", "restore", made["name"])
    assert done.returncode == 0, done.stderr
    assert "restored" in done.stdout and "kept as" in done.stdout
    world.start()
    assert len(world.call("kv.list", {"namespace": "keep"})["items"]) == 50
    # The damaged file was kept, byte for byte.
    kept = list((world.data_dir / "damaged").iterdir())
    assert [p.read_bytes() for p in kept if p.suffix == ".db"] == [damaged]


def test_repair_recovers_the_readable_rows(cli: Cli) -> None:
    world = cli.world.start()
    fill(world, 3000)
    world.stop()
    leaves = pages(world.db_path, "kv")  # two of the kv table's own pages, mid-table
    middle = leaves[len(leaves) // 2 : len(leaves) // 2 + 2]
    corrupt(world.db_path, [number - 1 for number in middle])  # (page numbers count from 1)
    said = refused_start(world)
    assert "There is no good backup" in said and "pm db repair" in said
    done = cli.run("--no-spawn", "db", "repair")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recovered" in done.stdout and "rows lost" in done.stdout
    report = json.loads(cli.run("--no-spawn", "--json", "db", "check").stdout)
    assert report["ok"] is True
    world.start()
    keys = {i["key"] for i in world.call("kv.list", {"namespace": "keep", "limit": 1000,
                                                      "offset": 0})["items"]}  # fmt: skip
    recovered = kv_keys(world.db_path, "keep")
    assert keys <= recovered
    assert 2000 <= len(recovered) < 3000
    assert recovered <= {f"k{i:06d}" for i in range(3000)}, "nothing invented"
    world.call("kv.set", {"namespace": "keep", "key": "new", "value": 1})
    assert world.call("db.check")["ok"] is True


def test_pre_migration_backup_and_rollback(cli: Cli, tmp_path: Path) -> None:
    world = cli.world.start()
    fill(world, 20)
    world.stop()
    extra = tmp_path / "extra"
    extra.mkdir()
    shipped = migrations.load()[-1].version
    newer = shipped + 1
    (extra / f"{newer:04d}_notes.sql").write_text("CREATE TABLE notes (id INTEGER PRIMARY KEY);\n")
    plain_argv = world.argv
    world.argv = [sys.executable, str(REPO / "tests" / "extra_migrations_daemon.py")]
    world.env["PM_TEST_EXTRA_MIGRATIONS"] = str(extra)
    world.start()
    assert world.call("db.health")["schema_version"] == newer
    items = world.call("db.backups")["items"]
    assert [b["label"] for b in items] == [f"before-migration-{newer:04d}"]
    assert items[0]["schema_version"] == shipped
    world.call("kv.set", {"namespace": "keep", "key": "on-v5", "value": 1})
    world.stop()
    # The older pm-agent refuses the newer schema and says how to go back.
    world.argv = plain_argv
    said = refused_start(world)
    assert "newer than this pm-agent knows" in said and "pm db rollback" in said
    done = cli.run("--no-spawn", "db", "rollback")
    assert done.returncode == 0, done.stderr
    assert "rolled back to" in done.stdout and f"schema {shipped}" in done.stdout
    world.start()
    keys = kv_keys(world.db_path, "keep")
    assert len(keys) == 20 and "on-v5" not in keys
    # The v5 database is kept, so even that rollback can be undone.
    kept = [b for b in world.call("db.backups")["items"] if b["label"] == "before-rollback"]
    assert kept and kept[0]["schema_version"] == newer
    # A second rollback has nothing to roll back: it would only lose what was written since.
    world.call("kv.set", {"namespace": "keep", "key": "since", "value": 1})
    world.stop()
    done = cli.run("--no-spawn", "db", "rollback")
    assert done.returncode == 1 and "nothing to roll back" in done.stderr, done.stderr
    assert "since" in kv_keys(world.db_path, "keep")


def test_rollback_with_nothing_to_roll_back_leaves_the_daemon_running(cli: Cli) -> None:
    """13 §4: with no backup taken before a migration, `pm db rollback` says so and the daemon
    pm started goes on as it was (it was stopped before)."""
    cli.ok("status")  # a daemon pm started, as a user's would be
    pid = cli.world.status()["pid"]  # type: ignore[index]
    done = cli.run("db", "rollback")
    assert done.returncode == 1
    assert "no backup taken before a migration" in done.stderr and "keeps running" in done.stderr
    assert "stopping" not in done.stderr
    assert cli.world.status()["pid"] == pid  # type: ignore[index]


def test_rollback_to_the_same_schema_is_nothing_to_roll_back(cli: Cli) -> None:
    """A backup labelled as taken before a migration, at the schema the live database has
    (a rollback already done, say): restoring it would only lose what was written since."""
    world = cli.world.start()
    made = world.call("db.backup")
    world.call("kv.set", {"namespace": "keep", "key": "written-since", "value": 1})
    labelled = Path(made["path"]).with_name(
        made["name"].replace(".db", "_before-migration-0004.db")
    )
    os.rename(made["path"], labelled)
    pid = world.status()["pid"]  # type: ignore[index]
    done = cli.run("db", "rollback")
    assert done.returncode == 1 and "nothing to roll back" in done.stderr, done.stderr
    assert world.status()["pid"] == pid  # type: ignore[index]
    assert world.call("kv.get", {"namespace": "keep", "key": "written-since"})["value"] == 1


def test_a_rollback_that_fails_starts_the_daemon_again(cli: Cli) -> None:
    """The daemon is stopped for a rollback; when the rollback then fails (the backup is
    damaged), nothing changed and pm starts the daemon again."""
    cli.ok("status")
    world = cli.world
    world.call("kv.set", {"namespace": "keep", "key": "live", "value": 1})
    made = world.call("db.backup")
    labelled = Path(made["path"]).with_name(
        made["name"].replace(".db", "_before-migration-0005.db")
    )
    os.rename(made["path"], labelled)
    labelled.write_bytes(b"not a database" * 100)  # damaged: its schema cannot be read
    done = cli.run("db", "rollback")
    assert done.returncode == 1 and "damaged" in done.stderr, done.stderr
    assert "starting pm-agentd again" in done.stderr
    assert world.status() is not None, "the daemon was left stopped"
    assert world.call("kv.get", {"namespace": "keep", "key": "live"})["value"] == 1


def test_export_import_round_trip_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    world = cli.world.start()
    fill(world, 30)
    world.call("jobs.record", {"kind": "agent.call", "prompt": 'p, with "quotes"\nand lines'})

    def snapshot() -> dict[str, list[tuple[object, ...]]]:
        conn = sqlite3.connect(f"file:{world.db_path}?mode=ro", uri=True)
        try:
            return {
                t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()
                for t in ("kv", "jobs", "projects", "quality_metrics")
            }
        finally:
            conn.close()

    before = snapshot()
    for fmt in ("json", "csv"):
        target = tmp_path / f"export-{fmt}"
        done = cli.run("db", "export", "--format", fmt, "--output", str(target))
        assert done.returncode == 0, done.stderr
        assert target.exists()
        world.call("kv.set", {"namespace": "keep", "key": "later", "value": 1})
        done = cli.run("db", "import", str(target))
        assert done.returncode == 0, done.stderr
        assert "before-import" in done.stdout
        assert snapshot() == before
    # A bad export changes nothing and says why.
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    done = cli.run("db", "import", str(bad))
    assert done.returncode == 1 and "cannot be imported" in done.stderr
    assert snapshot() == before
    # Over RPC, the daemon reads only inside its own folders.
    error = world.call_error("db.import", {"path": str(bad)})
    assert error.kind == "forbidden"


def test_export_to_a_missing_folder_or_over_a_file_leaves_nothing(cli: Cli, tmp_path: Path) -> None:
    """13 §4: `pm db export -o PATH` with a missing folder or an existing target is a clear
    error, and leaves no export behind in <data>/exports; a good one is moved there whole
    and private."""
    world = cli.world.start()
    fill(world, 5)
    exports = world.data_dir / "exports"

    def left() -> list[str]:
        return sorted(os.listdir(exports)) if exports.exists() else []

    for fmt in ("json", "csv"):
        done = cli.run("db", "export", "--format", fmt, "-o", str(tmp_path / "no" / "x"))
        assert done.returncode == 1, done.stderr
        assert "does not exist" in done.stderr and "Traceback" not in done.stderr
        assert left() == []
        for there in (tmp_path / "there.json", tmp_path / "there-folder"):
            if not there.exists():
                there.mkdir() if there.suffix == "" else there.write_text("mine")
            done = cli.run("db", "export", "--format", fmt, "-o", str(there))
            assert done.returncode == 1 and "already exists" in done.stderr, done.stderr
            assert left() == []
    assert (tmp_path / "there.json").read_text() == "mine"
    assert os.listdir(tmp_path / "there-folder") == []
    for fmt, name in (("json", "good.json"), ("csv", "good-csv")):
        target = tmp_path / name
        done = cli.run("db", "export", "--format", fmt, "-o", str(target))
        assert done.returncode == 0, done.stderr
        assert str(target) in done.stdout and left() == []
        files = [target] if fmt == "json" else list(target.iterdir())
        assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert stat.S_IMODE((tmp_path / "good-csv").stat().st_mode) == 0o700


def test_exports_do_not_pile_up(cli: Cli, tmp_path: Path) -> None:
    """<data>/exports keeps the newest three of the daemon's exports; anything else there (a
    file of the user's, a link named like an export) is left alone."""
    world = cli.world.start()
    outside = tmp_path / "outside.json"
    outside.write_text("not the daemon's")
    exports = world.data_dir / "exports"
    exports.mkdir(mode=0o700)
    (exports / "notes.txt").write_text("mine")
    (exports / "pm-agent_20000101_000000_000000.json").symlink_to(outside)
    made = [world.call("db.export", {"format": fmt})["path"]
            for fmt in ("json", "csv", "json", "csv", "json")]  # fmt: skip
    kept = sorted(os.listdir(exports))
    assert kept == sorted(
        [os.path.basename(p) for p in made[-3:]]
        + ["notes.txt", "pm-agent_20000101_000000_000000.json"]
    )
    assert outside.read_text() == "not the daemon's"


def test_reset_needs_confirmation_and_backs_up_first(cli: Cli) -> None:
    world = cli.world.start()
    fill(world, 10)
    done = cli.run("db", "reset")
    assert done.returncode == 2 and "--yes" in done.stderr
    assert world.call_error("db.reset", {}).kind == "invalid_params"
    assert len(kv_keys(world.db_path, "keep")) == 10
    done = cli.run("db", "reset", "--yes")
    assert done.returncode == 0, done.stderr
    assert world.call("kv.list", {"namespace": "keep"})["items"] == []
    backup = world.call("db.backups")["items"][0]
    assert backup["label"] == "before-reset"
    assert len(kv_keys(backup["path"], "keep")) == 10
    assert os.stat(backup["path"]).st_mode & 0o077 == 0


def test_a_database_deleted_under_the_daemon_is_written_out_again(
    make_daemon: DaemonFactory,
) -> None:
    world = make_daemon().start()
    fill(world, 20)
    os.unlink(world.db_path)  # an `rm` in the wrong folder
    wait_for(world.db_path.exists, 20, "the database file to be written out again")
    world.call("kv.set", {"namespace": "keep", "key": "after", "value": 1})
    assert len(world.call("kv.list", {"namespace": "keep"})["items"]) == 21
    types = [e["type"] for e in world.call("events.list", {"since": 0, "limit": 1000})["items"]]
    assert "db.rescued" in types
    world.stop()
    assert len(kv_keys(world.db_path, "keep")) == 21
    assert backup.problems(str(world.db_path)) == []


def test_a_deleted_database_with_backups_is_not_replaced_silently(
    make_daemon: DaemonFactory,
) -> None:
    world = make_daemon().start()
    fill(world, 5)
    made = world.call("db.backup")
    world.stop()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{world.db_path}{suffix}").unlink(missing_ok=True)
    world.start()
    warnings = world.call("db.health")["warnings"]
    assert any("created new" in w and f"pm backup restore {made['name']}" in w for w in warnings), (
        warnings
    )
    world.call("db.restore", {"name": made["name"]})
    assert len(world.call("kv.list", {"namespace": "keep"})["items"]) == 5
    assert not any("created new" in w for w in world.call("db.health")["warnings"])
