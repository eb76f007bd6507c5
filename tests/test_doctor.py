"""`pm doctor`, run as a user runs it, against real daemons in their own temp worlds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from client.doctor_host import Mount, judge_filesystem, mount_for
from daemon.store import backup
from tests.conftest import DaemonFactory
from tests.helpers import REPO, DaemonProcess, other_install, wait_for
from tests.test_backup import corrupt
from tests.test_cli import Cli

NAMES = [
    "config", "dev_root", "data_dir", "socket_dir", "daemon", "service", "inotify", "disk",
    "filesystem", "database", "backup",
]  # fmt: skip


def doctor(cli: Cli, **env: str) -> tuple[int, dict[str, Any], dict[str, dict[str, Any]]]:
    """Exit code, the --json document, and its checks by name."""
    done = cli.run("--json", "doctor", **env)
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    assert [c["name"] for c in report["checks"]] == NAMES
    assert report["ok"] is (done.returncode == 0)
    return done.returncode, report, {c["name"]: c for c in report["checks"]}


def projects(d: DaemonProcess, count: int) -> None:
    """Git-less projects (a manifest and a README) under the daemon's Dev root."""
    for i in range(count):
        folder = d.dev_root / f"p{i}"
        folder.mkdir(parents=True)
        (folder / "pyproject.toml").write_text(f'[project]\nname = "p{i}"\n')
        (folder / "README.md").write_text(f"# p{i}\n")


def degraded(d: DaemonProcess) -> dict[str, Any]:
    d.start()
    status: dict[str, Any] = wait_for(
        lambda: (s := d.call("daemon.status"))["watcher"]["mode"] == "degraded" and s,
        20,
        "the watcher to degrade",
    )
    return status


@pytest.fixture
def cli(make_daemon: DaemonFactory) -> Iterator[Cli]:
    world = make_daemon()
    world.dev_root.mkdir(parents=True)  # a healthy world has its Dev root
    c = Cli(world)
    yield c
    c.stop_spawned()  # one `pm` started, if any


# --- a healthy world, and the backup's age ---------------------------------------------------
def test_healthy_daemon_passes_every_check(cli: Cli) -> None:
    cli.world.start()
    cli.world.call("db.backup", {})
    code, report, checks = doctor(cli)
    assert code == 0, report
    assert all(c["status"] != "fail" for c in report["checks"]), report
    assert all(c["status"] == "ok" for n, c in checks.items() if n != "service"), report
    assert checks["service"]["message"].startswith("not installed as a user service")
    assert checks["service"]["fix"] is None
    assert "ready" in checks["daemon"]["message"]
    person = cli.run("doctor")
    assert person.returncode == 0 and person.stderr == ""
    assert "✓ daemon" in person.stdout and "! service" in person.stdout
    assert "fix:" not in person.stdout
    assert cli.world.status() is not None  # still the one we started


def test_no_backup_then_an_old_one_then_a_failed_one(cli: Cli) -> None:
    cli.world.start()
    _, _, checks = doctor(cli)
    assert checks["backup"]["status"] == "warn"
    assert checks["backup"]["fix"] == "pm backup now"

    made = cli.world.call("db.backup", {})
    old = backup.make_name(datetime.now(UTC) - timedelta(days=10))
    os.rename(made["path"], Path(made["path"]).with_name(old))
    code, _, checks = doctor(cli)
    assert code == 0
    assert checks["backup"]["status"] == "warn" and old in checks["backup"]["message"]
    assert checks["backup"]["fix"] == "pm backup now"
    assert "fix: pm backup now" in cli.run("doctor").stdout

    failed_dir = cli.world.data_dir / "backups" / backup.FAILED_DIR
    failed_dir.mkdir()
    name = backup.make_name(datetime.now(UTC))
    (failed_dir / name).write_bytes(b"not a database")
    (failed_dir / f"{name}.txt").write_text("*** in database main *** Page 3: boom\n")
    code, _, checks = doctor(cli)
    assert code == 1
    assert checks["backup"]["status"] == "fail" and "Page 3: boom" in checks["backup"]["message"]
    assert "pm backup now" in checks["backup"]["fix"] and "pm db check" in checks["backup"]["fix"]


# --- socket, daemon, versions ------------------------------------------------------------------
def test_socket_dir_open_to_others_fails_with_chmod(cli: Cli) -> None:
    cli.world.start()
    folder = os.path.dirname(cli.world.socket_path)
    os.chmod(folder, 0o755)
    code, _, checks = doctor(cli)
    assert code == 1
    assert checks["socket_dir"]["status"] == "fail" and "0755" in checks["socket_dir"]["message"]
    assert checks["socket_dir"]["fix"] == f"chmod 700 {folder}"
    assert checks["daemon"]["status"] == "ok"  # the others go on
    assert f"fix: chmod 700 {folder}" in cli.run("doctor").stdout


def test_daemon_not_running_fails_and_checks_the_files_itself(cli: Cli) -> None:
    cli.world.start()
    cli.world.call("db.backup", {})
    assert cli.world.stop() == 0
    code, _, checks = doctor(cli)
    assert code == 1
    assert checks["daemon"]["status"] == "fail" and checks["daemon"]["fix"] == "pm daemon start"
    assert checks["database"]["status"] == "ok"
    assert "checked offline" in checks["database"]["message"]
    assert checks["backup"]["status"] == "ok"
    assert checks["socket_dir"]["status"] in ("ok", "warn")
    assert cli.world.status() is None  # doctor never starts the daemon
    Path(cli.world.socket_path).write_text("not a socket")
    _, _, checks = doctor(cli)
    assert checks["socket_dir"]["status"] == "fail"
    assert checks["socket_dir"]["fix"] == f"mv {cli.world.socket_path} {cli.world.socket_path}.old"


def test_a_user_service_is_found_where_xdg_config_home_says(cli: Cli) -> None:
    units = cli.world.root / "xdg" / "systemd" / "user"
    units.mkdir(parents=True)
    (units / "pm-agent.service").write_text("[Service]\nExecStart=pm-agentd\n")
    _, _, checks = doctor(cli, XDG_CONFIG_HOME=str(cli.world.root / "xdg"))
    service = checks["service"]
    if sys.platform.startswith("linux"):
        assert service["message"].startswith(f"installed as pm-agent.service in {units}")
        assert service["status"] in ("ok", "warn")  # ok when systemctl cannot say


def test_a_daemon_from_another_install_fails_with_restart(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    copy = other_install(tmp_path / "other-install", version="9.9.9+0.1.0")
    other = make_daemon(argv=[sys.executable, "-m", "daemon"], env={"PYTHONPATH": str(copy)})
    other.start(cwd=str(copy))
    assert other.call("daemon.hello")["daemon_version"].startswith("9.9.9+")
    cli = Cli(other)
    cli.env.pop("PYTHONPATH")  # pm itself comes from this install
    if "PYTHONPATH" in os.environ:
        cli.env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    code, _, checks = doctor(cli)
    assert code == 1
    assert checks["daemon"]["status"] == "fail" and "9.9.9+" in checks["daemon"]["message"]
    assert checks["daemon"]["fix"] == "pm daemon restart"
    assert checks["database"]["status"] == "ok"  # still asked: the protocol is the same


# --- file watching ---------------------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")
def test_inotify_refused_by_the_os_fails_with_the_sysctl(make_daemon: DaemonFactory) -> None:
    d = make_daemon(
        config={"rescan_interval_s": 0},
        argv=[sys.executable, str(REPO / "tests" / "watch_limited_daemon.py")],
        env={"PM_TEST_WATCH_LIMIT": "2"},
    )
    projects(d, 4)
    degraded(d)
    code, _, checks = doctor(Cli(d))
    assert code == 1
    assert checks["inotify"]["status"] == "fail"
    assert "degraded" in checks["inotify"]["message"]
    assert "sudo sysctl fs.inotify.max_user_watches=" in checks["inotify"]["fix"]
    assert "/etc/sysctl.d/" in checks["inotify"]["fix"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")
def test_inotify_capped_by_the_config_names_the_setting(make_daemon: DaemonFactory) -> None:
    d = make_daemon(config={"rescan_interval_s": 0, "max_watches": 1})
    projects(d, 3)
    degraded(d)
    code, _, checks = doctor(Cli(d))
    assert code == 1
    assert checks["inotify"]["status"] == "fail"
    assert "max_watches=1" in checks["inotify"]["message"]
    assert f"remove max_watches from {d.config_path}" in checks["inotify"]["fix"]


# --- disk and filesystem -----------------------------------------------------------------------
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_nearly_full_disk_fails(cli: Cli) -> None:
    folder = tempfile.mkdtemp(prefix="pm-disk-")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", folder],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        os.rmdir(folder)
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        code, _, checks = doctor(cli, PM_AGENT_DATA_DIR=os.path.join(folder, "data"))
        assert code == 1
        assert checks["disk"]["status"] == "fail"
        assert f"on {folder}" in checks["disk"]["message"]
        assert checks["disk"]["fix"].startswith(f"free space on {folder}")
        assert checks["filesystem"]["status"] == "ok" and "tmpfs" in checks["filesystem"]["message"]
    finally:
        subprocess.run(["umount", folder], check=True)
        os.rmdir(folder)


MOUNTINFO = r"""22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
60 27 0:50 / /home/ann/Dev rw,relatime shared:30 - nfs4 fs.lan:/export/dev rw,vers=4.2
61 27 0:51 / /tank/work rw,relatime - zfs tank/work rw,xattr,noacl
62 27 0:52 / /media/My\040Disk rw,relatime shared:31 master:2 - ext4 /dev/sdb1 rw
63 27 0:53 / /home/ann/remote rw,nosuid - fuse.sshfs ann@box:/srv rw,user_id=1000
64 60 0:54 / /home/ann/Dev/local rw,relatime - xfs /dev/sdc1 rw
"""


def test_mountinfo_longest_prefix_and_escapes() -> None:
    assert mount_for(MOUNTINFO, "/home/ann/Dev/.pm-agent") == Mount(
        "/home/ann/Dev", "nfs4", "fs.lan:/export/dev"
    )
    assert mount_for(MOUNTINFO, "/home/ann/Dev/local/x").fstype == "xfs"  # type: ignore[union-attr]
    assert mount_for(MOUNTINFO, "/home/ann/Development") == Mount("/", "ext4", "/dev/vda")
    assert mount_for(MOUNTINFO, "/media/My Disk/pm") == Mount("/media/My Disk", "ext4", "/dev/sdb1")
    assert mount_for(MOUNTINFO, "/home/ann/remote").fstype == "fuse.sshfs"  # type: ignore[union-attr]
    assert mount_for("", "/x") is None
    stacked = MOUNTINFO + "70 27 0:60 / /tank/work rw - ext4 /dev/sdd1 rw\n"
    assert mount_for(stacked, "/tank/work/pm").fstype == "ext4"  # type: ignore[union-attr]


def test_filesystem_verdicts() -> None:
    config = "/home/ann/.config/pm-agent/config.toml"

    def judge(path: str) -> Any:
        return judge_filesystem(mount_for(MOUNTINFO, path), path, config)

    nfs = judge("/home/ann/Dev/.pm-agent")
    assert nfs.status == "fail" and "nfs4" in nfs.message
    assert (
        nfs.fix is not None and f"set data_dir in {config} to a folder on a local disk" in nfs.fix
    )
    assert judge("/home/ann/remote/.pm-agent").status == "fail"
    zfs = judge("/tank/work/.pm-agent")
    assert zfs.status == "warn" and "zfs" in zfs.message
    assert judge("/srv/.pm-agent").status == "ok"
    assert judge("/media/My Disk/.pm-agent").status == "ok"


# --- the database and the config ---------------------------------------------------------------
def test_damaged_database_names_repair_and_the_backup(cli: Cli) -> None:
    cli.world.start()
    made = cli.world.call("db.backup", {})
    assert cli.world.stop() == 0
    wal = Path(f"{cli.world.db_path}-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # everything is in the main file
    corrupt(cli.world.db_path)  # every page after the header page
    assert cli.run("status").returncode == 69  # pm tries to start it; the daemon refuses
    code, _, checks = doctor(cli)
    assert code == 1
    daemon = checks["daemon"]
    assert "when it last tried to start" in daemon["message"]
    assert "(exit status 1): the database" in daemon["message"]
    assert "is damaged" in daemon["message"]
    # Starting it again cannot help: the fix is the database's, for both checks.
    assert "pm daemon start" not in daemon["fix"]
    database = checks["database"]
    assert database["status"] == "fail" and "damaged" in database["message"]
    for fix in (daemon["fix"], database["fix"]):
        assert "pm db repair" in fix
        assert f"pm backup restore {made['name']}" in fix


def test_a_broken_config_fails_and_the_rest_still_runs(cli: Cli) -> None:
    broken = cli.world.root / "broken.toml"
    broken.write_text("no_such_setting = 1\n")
    code, _, checks = doctor(cli, PM_AGENT_CONFIG=str(broken))
    assert code == 1
    assert checks["config"]["status"] == "fail" and "no_such_setting" in checks["config"]["message"]
    assert checks["config"]["fix"] == f"correct it in {broken}"
    # It cannot start with that config: the daemon's fix is the config's, not a start.
    assert "cannot start" in checks["daemon"]["message"]
    assert checks["daemon"]["fix"] == f"correct it in {broken}; then pm daemon start"
    assert checks["disk"]["status"] == "warn" and "not checked" in checks["disk"]["message"]


# --- every failing check's fix addresses its cause; never None ---------------------------------
NOTHING = re.compile(r"\bNone\b|\bnull\b")


def assert_says_something(report: dict[str, Any]) -> None:
    """Every message says something, every failure says what to do, and neither ever shows a
    missing value as None or null."""
    for check in report["checks"]:
        assert isinstance(check["message"], str) and check["message"].strip(), check
        assert not NOTHING.search(check["message"]), check
        if check["status"] == "fail":
            assert isinstance(check["fix"], str) and check["fix"].strip(), check
        if check["fix"] is not None:
            assert not NOTHING.search(check["fix"]), check


def test_no_none_or_null_in_any_broken_state(cli: Cli) -> None:
    cli.world.start()
    cli.world.call("db.backup", {})
    assert cli.world.stop() == 0
    broken = cli.world.root / "broken.toml"
    broken.write_text("no_such_setting = 1\n")
    missing = cli.world.root / "Dve"
    states: list[dict[str, str]] = [
        {"PM_AGENT_CONFIG": str(broken)},
        {"PM_AGENT_SOCKET": long_socket_path(cli)},
        {"PM_AGENT_DEV_ROOT": str(missing), "PM_AGENT_DATA_DIR": str(missing / ".pm-agent")},
        {"PM_AGENT_NO_SUCH_THING": "1"},
    ]
    _, report, _ = doctor(cli)  # stopped, nothing ever started it
    assert_says_something(report)
    for env in states:
        cli.run("status", **env)  # pm tries to start it (which most of these make fail)
        _, report, _ = doctor(cli, **env)
        assert_says_something(report)
        cli.stop_spawned()
    corrupt(cli.world.db_path)
    assert cli.run("status").returncode == 69
    _, report, _ = doctor(cli)
    assert_says_something(report)


def long_socket_path(cli: Cli) -> str:
    return os.path.join(os.path.dirname(cli.world.socket_path), "x" * 120, "pm.sock")


def test_a_long_socket_path_gets_the_socket_fix_everywhere(cli: Cli) -> None:
    path = long_socket_path(cli)
    assert cli.run("status", PM_AGENT_SOCKET=path).returncode == 69
    _, _, checks = doctor(cli, PM_AGENT_SOCKET=path)
    fix = checks["socket_dir"]["fix"]
    assert fix.startswith("set PM_AGENT_SOCKET") and "a shorter path" in fix
    assert checks["daemon"]["status"] == "fail" and "too long" in checks["daemon"]["message"]
    assert checks["daemon"]["fix"] == fix


def test_a_socket_folder_open_to_others_stops_the_daemon_and_doctor_says_chmod(cli: Cli) -> None:
    folder = os.path.dirname(cli.world.socket_path)
    os.chmod(folder, 0o755)  # as if someone else had prepared it
    done = cli.run("status")
    assert done.returncode == 69 and "has mode 0755" in done.stderr
    _, _, checks = doctor(cli)
    assert "when it last tried to start" in checks["daemon"]["message"]
    assert checks["daemon"]["fix"] == f"chmod 700 {folder}" == checks["socket_dir"]["fix"]


def test_a_missing_dev_root_is_reported_with_mkdir(cli: Cli) -> None:
    missing = cli.world.root / "Dve"
    env = {"PM_AGENT_DEV_ROOT": str(missing), "PM_AGENT_DATA_DIR": str(missing / ".pm-agent")}
    code, _, checks = doctor(cli, **env)
    assert code == 1
    dev_root = checks["dev_root"]
    assert dev_root["status"] == "fail" and f"{missing} does not exist" in dev_root["message"]
    assert dev_root["fix"].startswith(f"mkdir -p {missing} ")
    assert checks["data_dir"]["status"] == "warn" and checks["data_dir"]["fix"] == dev_root["fix"]
    assert "cannot start" in checks["daemon"]["message"]
    assert checks["daemon"]["fix"] == dev_root["fix"] + "; then pm daemon start"
    assert not missing.exists()  # doctor creates nothing either


def test_a_data_folder_that_cannot_be_written_fails_with_its_cause(cli: Cli) -> None:
    cli.world.start()
    assert cli.world.stop() == 0
    data = str(cli.world.data_dir)
    if os.geteuid() == 0:  # root writes through any mode: a read-only mount stops it
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", data],
                                 capture_output=True, text=True)  # fmt: skip
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
        expected = f"remount the filesystem that holds {data} read-write"
    else:
        os.chmod(data, 0o500)
        expected = f"chmod u+rwx {data}"
    try:
        code, report, checks = doctor(cli)
        assert code == 1
        data_dir = checks["data_dir"]
        assert data_dir["status"] == "fail" and f"{data} is not writable" in data_dir["message"]
        assert data_dir["fix"].startswith(expected)
        assert_says_something(report)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", data], check=True)
        else:
            os.chmod(data, 0o700)
