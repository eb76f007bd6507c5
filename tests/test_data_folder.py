"""The data folder's own subfolders (issue 12 §4): whatever another process of the user leaves
where db/, backups/, backups/failed/, damaged/, exports/, jobs/ or imports/ belong — a link to
a folder elsewhere, a file, a folder of another user — the daemon refuses it with the fix, at
start and at the moment of use, and never writes, chmods or deletes through it. Files it finds
there (a failed backup's reason, the note of the backup last restored, the lock file) are not
followed, not blocked on, and not read past a few bytes."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from client.errors import RemoteError
from daemon.platform import private_folders
from daemon.store import backup, swap
from tests.conftest import DaemonFactory
from tests.helpers import DaemonProcess
from tests.test_backup import corrupt
from tests.test_cli import Cli
from tests.test_hostile_imports import canaries

OFF = ("backup", "quality", "maintenance", "retention")
QUIET = {"watch": False, "rescan_interval_s": 0, "schedule": {k: "off" for k in OFF}}
SUBFOLDERS = ["db", "backups", "backups/failed", "damaged", "exports", "jobs", "imports"]
SECRET = "pm-SECRET-data-folder-never-returned"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder elsewhere, 0755, holding files named like the daemon's own (backups an
    unguarded retention would delete, a job output), and a secret."""
    folder = tmp_path / "outside"
    folder.mkdir()
    now = datetime.now(UTC)
    for days in range(1, 12):
        (folder / backup.make_name(now - timedelta(days=days))).write_bytes(b"not yours")
    (folder / "1.out").write_text("someone's file")
    (folder / "secret.txt").write_text(SECRET)
    folder.chmod(0o755)
    return folder


def plant_link(data: Path, sub: str, target: Path) -> None:
    place = data / sub
    place.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if place.is_symlink() or place.is_file():
        place.unlink()
    elif place.is_dir():
        for child in place.iterdir():
            child.unlink()
        place.rmdir()
    place.symlink_to(target, target_is_directory=True)


def answer_within(fn: Callable[[], Any], timeout: float = 20) -> Any:
    """`fn()`'s result or error, which must come within `timeout` seconds (a hang fails)."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as e:  # handed to the test thread
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    assert outcome, f"no answer within {timeout} s"
    return outcome[0]


# --- at start --------------------------------------------------------------------------------
@pytest.mark.parametrize("sub", SUBFOLDERS)
@pytest.mark.parametrize("what", ["link", "file", "other-user"])
def test_a_subfolder_that_is_not_ours_stops_the_start(
    make_daemon: DaemonFactory, outside: Path, sub: str, what: str
) -> None:
    d = make_daemon(config=QUIET)
    d.data_dir.mkdir(mode=0o700)
    if what == "link":
        plant_link(d.data_dir, sub, outside)
    elif what == "file":
        (d.data_dir / sub).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        (d.data_dir / sub).write_text("a file where a folder belongs")
    else:
        if os.getuid() != 0:
            pytest.skip("only root can make a folder of another user")
        (d.data_dir / sub).mkdir(parents=True, mode=0o700)
        os.chown(d.data_dir / sub, 65534, 65534)
    before = canaries(outside)
    d.start(wait=False)
    assert d.wait(30) != 0, "the daemon started through a folder that is not its own"
    said = d.log()
    assert str(d.data_dir / sub) in said, said
    assert ("mv " in said or "Remove it" in said) and "Traceback" not in said, said
    assert canaries(outside) == before
    assert stat.S_IMODE(outside.stat().st_mode) == 0o755


def test_a_linked_lock_file_is_never_truncated(make_daemon: DaemonFactory, outside: Path) -> None:
    d = make_daemon(config=QUIET)
    d.data_dir.mkdir(mode=0o700)
    (d.data_dir / "pm-agentd.lock").symlink_to(outside / "secret.txt")
    d.start(wait=False)
    assert d.wait(30) != 0
    assert "lock file" in d.log() and "symbolic link" in d.log()
    assert (outside / "secret.txt").read_text() == SECRET


# --- while it runs -----------------------------------------------------------------------------
@pytest.fixture
def running(make_daemon: DaemonFactory) -> Iterator[DaemonProcess]:
    d = make_daemon(config=QUIET).start()
    d.call("kv.set", {"namespace": "n", "key": "k", "value": 1})
    yield d
    d.stop()


def refused(d: DaemonProcess, method: str, params: dict[str, Any], folder: Path) -> RemoteError:
    error = answer_within(lambda: d.call(method, params))
    assert isinstance(error, RemoteError), f"{method} went through a planted link: {error}"
    assert error.kind == "storage", (method, error.kind, error.message)
    assert str(folder) in error.message and "symbolic link" in error.message, error.message
    assert "Fix: mv" in error.message
    return error


def test_backups_and_retention_never_go_through_a_planted_link(
    running: DaemonProcess, outside: Path
) -> None:
    d = running
    d.call("db.backup")
    before = canaries(outside)
    plant_link(d.data_dir, "backups", outside)
    refused(d, "db.backup", {}, d.data_dir / "backups")
    refused(d, "db.backups", {}, d.data_dir / "backups")
    refused(d, "db.verify", {"name": backup.make_name(datetime.now(UTC))}, d.data_dir / "backups")
    health = d.call("db.health")
    assert any("symbolic link" in w for w in health["warnings"]), health["warnings"]
    error = answer_within(lambda: d.call("db.reset", {"confirm": True}))
    assert isinstance(error, RemoteError) and "symbolic link" in error.message
    assert canaries(outside) == before and stat.S_IMODE(outside.stat().st_mode) == 0o755
    assert d.call("kv.get", {"namespace": "n", "key": "k"})["value"] == 1


def test_a_failed_backups_link_is_refused(running: DaemonProcess, outside: Path) -> None:
    d = running
    made = d.call("db.backup")
    plant_link(d.data_dir, "backups/failed", outside)
    before = canaries(outside)
    corrupt(made["path"], [2, 3])
    refused(d, "db.verify", {"name": made["name"]}, d.data_dir / "backups" / "failed")
    refused(d, "db.backups", {}, d.data_dir / "backups" / "failed")
    assert canaries(outside) == before
    assert Path(made["path"]).exists(), "the backup stays where it was"


def test_job_outputs_never_go_through_a_planted_link(running: DaemonProcess, outside: Path) -> None:
    d = running
    job = d.call("jobs.record", {"kind": "a", "response": "x" * 100_000})
    plant_link(d.data_dir, "jobs", outside)
    before = canaries(outside)
    refused(d, "jobs.record", {"kind": "a", "response": "y" * 100_000}, d.data_dir / "jobs")
    refused(d, "jobs.update", {"id": job["id"], "response": "z" * 100_000}, d.data_dir / "jobs")
    d.call("jobs.update", {"id": job["id"], "response": "inline now"})  # the old file: not removed
    assert canaries(outside) == before and stat.S_IMODE(outside.stat().st_mode) == 0o755
    assert d.call("jobs.get", {"id": job["id"]})["response"] == "inline now"


def test_exports_never_go_through_a_planted_link(running: DaemonProcess, outside: Path) -> None:
    d = running
    d.call("db.export", {"format": "json"})
    plant_link(d.data_dir, "exports", outside)
    before = canaries(outside)
    for fmt in ("json", "csv"):
        refused(d, "db.export", {"format": fmt}, d.data_dir / "exports")
    assert canaries(outside) == before and stat.S_IMODE(outside.stat().st_mode) == 0o755


def test_pm_db_import_never_copies_through_a_linked_imports_folder(
    running: DaemonProcess, outside: Path, tmp_path: Path
) -> None:
    d = running
    given = Path(d.call("db.export", {"format": "json"})["path"])
    mine = tmp_path / "mine.json"
    mine.write_bytes(given.read_bytes())
    plant_link(d.data_dir, "imports", outside)
    before = canaries(outside)
    done = Cli(d).run("db", "import", str(mine))
    assert done.returncode == 1 and "symbolic link" in done.stderr, done.stderr
    assert canaries(outside) == before


def test_the_damaged_folder_is_checked_when_it_is_used(tmp_path: Path, outside: Path) -> None:
    """A damaged live file is copied aside into damaged/ before a repair or a restore: not
    through a link (a unit test: a damaged live file under a running daemon is another story,
    told in test_recovery)."""
    live = tmp_path / "db" / "pm-agent.db"
    live.parent.mkdir(mode=0o700)
    live.write_bytes(b"SQLite format 3\x00" + b"\x00" * 4000)  # unreadable: kept byte for byte
    (tmp_path / "damaged").symlink_to(outside, target_is_directory=True)
    before = canaries(outside)
    with pytest.raises(private_folders.FolderRefused, match="symbolic link"):
        swap.keep_safety_copy(str(live), str(tmp_path / "backups"), str(tmp_path / "damaged"),
                              datetime.now(UTC), "before-restore")  # fmt: skip
    assert canaries(outside) == before


def test_retention_removes_nothing_through_a_link(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "backups").symlink_to(outside, target_is_directory=True)
    names = [n for n in os.listdir(outside) if backup.parse_name(n)]
    before = canaries(outside)
    with pytest.raises(private_folders.FolderRefused):
        backup.remove_expired(str(tmp_path / "backups"), names)
    assert canaries(outside) == before


# --- files found in the data folder ------------------------------------------------------------
REASONS: dict[str, Callable[[Path, Path], object]] = {
    "link": lambda p, out: p.symlink_to(out / "secret.txt"),
    "fifo": lambda p, out: os.mkfifo(p),
    "dev-zero": lambda p, out: p.symlink_to("/dev/zero"),
    "huge": lambda p, out: p.write_text("r" * (8 << 20)),
}


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_a_reason_file_is_read_as_untrusted(
    running: DaemonProcess, outside: Path, kind: str
) -> None:
    d = running
    failed = d.data_dir / "backups" / "failed"
    failed.mkdir(parents=True, mode=0o700)
    name = backup.make_name(datetime.now(UTC) - timedelta(days=1))
    (failed / name).write_bytes(b"not a database")
    REASONS[kind](failed / f"{name}.txt", outside)
    listed = answer_within(lambda: d.call("db.backups"))
    assert not isinstance(listed, BaseException), listed
    item = next(b for b in listed["items"] if b["name"] == name)
    assert item["ok"] is False and SECRET not in item["problem"]
    assert len(item["problem"]) <= 4096
    answer_within(lambda: d.call("db.health"))


@pytest.mark.parametrize("kind", ["link", "fifo", "dev-zero"])
def test_the_restored_note_is_read_as_untrusted(
    running: DaemonProcess, outside: Path, kind: str
) -> None:
    d = running
    d.call("db.backup")
    REASONS[kind](d.data_dir / "backups" / backup.RESTORED_NOTE, outside)
    made = answer_within(lambda: d.call("db.backup"))  # retention reads the note
    assert not isinstance(made, BaseException), made
    assert (outside / "secret.txt").read_text() == SECRET


def test_pm_offline_refuses_a_linked_backups_folder(
    make_daemon: DaemonFactory, outside: Path
) -> None:
    """With the daemon down, `pm` works on the files itself: through the same checks."""
    d = make_daemon(config=QUIET).start()
    name = d.call("db.backup")["name"]
    d.stop()
    plant_link(d.data_dir, "backups", outside)
    before = canaries(outside)
    cli = Cli(d)
    for args in (["backup", "list"], ["backup", "verify", name], ["backup", "restore", name],
                 ["backup", "now"], ["db", "rollback"]):  # fmt: skip
        done = cli.run("--no-spawn", *args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "symbolic link" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert canaries(outside) == before and stat.S_IMODE(outside.stat().st_mode) == 0o755
