"""`pm doctor`: everything a user can get wrong, each finding with the command that fixes it.

Doctor never starts the daemon. It asks a running one (`daemon.hello`, `daemon.status`,
`db.health`, `db.check`, `db.backups`) and otherwise looks at the files itself, read-only.
Every check runs on its own: one that cannot run says so, and the others go on.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import stat
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from client import errors, locations, output

if TYPE_CHECKING:
    from client.commands import Session
    from client.sync import Client
    from daemon.config import Paths

MiB = 1024 * 1024
GiB = 1024 * MiB
DISK_FAIL_BYTES = 100 * MiB
DISK_WARN_BYTES = GiB
DISK_WARN_FRACTION = 0.05
BACKUP_WARN_AFTER_S = 2 * 86400  # a daily backup missed twice
INOTIFY_WARN_FRACTION = 0.8
SYSTEMCTL_TIMEOUT_S = 3.0
UNIT = "pm-agent"
NOT_INSTALLED = "not installed as a user service; pm starts the daemon on demand"
# SQLite's WAL needs shared memory that every process sees: none of these give it.
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "sshfs", "fuse.sshfs", "9p", "afs", "ceph",
     "glusterfs", "fuse.glusterfs", "lustre", "fuse.rclone"}
)  # fmt: skip
SYMBOLS = {"ok": ("✓", "32"), "warn": ("!", "33"), "fail": ("✗", "31")}


class Finding(NamedTuple):
    status: str  # "ok" | "warn" | "fail"
    message: str
    fix: str | None = None  # the command that fixes it


class Check(NamedTuple):
    name: str  # stable: scripts read them
    status: str
    message: str
    fix: str | None


def ok(message: str) -> Finding:
    return Finding("ok", message)


def warn(message: str, fix: str | None = None) -> Finding:
    return Finding("warn", message, fix)


def fail(message: str, fix: str | None) -> Finding:
    return Finding("fail", message, fix)


class NotChecked(Exception):
    """What a check needs is not known (the config is broken and no daemon answers)."""


class Where(NamedTuple):
    data_dir: str
    db_path: str
    backups_dir: str


# --- what the checks share -------------------------------------------------------------------
class Probe:
    """The daemon's answers (asked once each) or, when none answers, the config's paths."""

    def __init__(self, s: Session) -> None:
        self.s = s
        self.client: Client | None = None
        self.unreachable: str | None = None  # why nothing usable answers
        self.incompatible: str | None = None  # a daemon answers, in another protocol
        self.hello: dict[str, Any] = {}
        self.status: dict[str, Any] = {}
        self._answers: dict[str, Any] = {}
        self._config: Paths | str | None = None
        try:
            client = s.client(spawn=False)
            self.hello = client.call(
                "daemon.hello",
                {"client": "pm doctor", "protocol_version": errors.PROTOCOL_VERSION},
            )
            self.status = client.call("daemon.status")
        except errors.Unreachable as e:
            self.unreachable = str(e)
        except errors.IncompatibleDaemon as e:
            self.incompatible = str(e)
        except errors.ClientError as e:
            self.unreachable = f"{s.socket_path} does not answer as pm-agentd should: {e}"
        else:
            self.client = client

    @property
    def online(self) -> bool:
        return self.client is not None

    def ask(self, method: str) -> Any:
        if method not in self._answers:
            assert self.client is not None
            self._answers[method] = self.client.call(method)
        return self._answers[method]

    def config(self) -> Paths | str:
        """The paths the config resolves to, or why it cannot be read."""
        if self._config is None:
            from daemon import offline
            from daemon.config import ConfigError

            try:
                self._config = offline.paths_from_config()
            except ConfigError as e:
                self._config = str(e)
        return self._config

    def where(self) -> Where:
        if self.online:
            data_dir = str(self.status["data_dir"])
            backups = os.path.join(data_dir, "backups")
            return Where(data_dir, str(self.status["db_path"]), backups)
        paths = self.config()
        if isinstance(paths, str):
            raise NotChecked(f"the config cannot be read and no daemon answers ({paths})")
        return Where(paths.data_dir, paths.db_path, paths.backups_dir)

    def backups(self) -> list[dict[str, Any]]:
        """Every backup, newest first."""
        if self.online:
            items: list[dict[str, Any]] = self.ask("db.backups")["items"]
            return items
        if "backups" not in self._answers:
            import msgspec

            from daemon.db import backup

            found = backup.listing(self.where().backups_dir, with_versions=False)
            self._answers["backups"] = msgspec.to_builtins(found)
        listed: list[dict[str, Any]] = self._answers["backups"]
        return listed


# --- config, socket, daemon, service ---------------------------------------------------------
def check_config(p: Probe) -> Finding:
    path = locations.config_path()
    paths = p.config()
    if isinstance(paths, str):
        return fail(paths, f"correct it in {path}")
    where = path if os.path.exists(path) else f"no config file at {path}: the defaults"
    if p.online and paths.data_dir != p.status["data_dir"]:
        return warn(
            f"the running daemon uses {p.status['data_dir']}, but {where} now says "
            f"{paths.data_dir}",
            "pm daemon restart",
        )
    return ok(f"{where}; data in {paths.data_dir}")


def check_socket_dir(p: Probe) -> Finding:
    from daemon.startup import SUN_PATH_MAX

    path = p.s.socket_path
    folder = os.path.dirname(path)
    elsewhere = f"set PM_AGENT_SOCKET (or socket in {locations.config_path()}) to another path"
    if len(os.fsencode(path)) >= SUN_PATH_MAX:
        return fail(
            f"the socket path {path} is longer than a Unix socket address holds "
            f"({SUN_PATH_MAX - 1} bytes)",
            elsewhere.replace("another", "a shorter"),
        )
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        status = "warn" if p.online else "ok"
        return Finding(status, f"{folder} does not exist yet; the daemon creates it (mode 0700)")
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return fail(
            f"{folder} is not a directory (a symlink or a file)",
            f"move {folder} away, or {elsewhere}",
        )
    if st.st_uid != os.getuid():
        return fail(
            f"{folder} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); "
            "another user may be intercepting the socket",
            f"sudo rm -r {folder} (after checking who made it), or {elsewhere}",
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return fail(
            f"{folder} has mode {mode:04o}; it must be 0700 so no other user can reach "
            "the socket (the daemon refuses to start on it)",
            f"chmod 700 {folder}",
        )
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return fail(f"{path} is not a socket: the daemon cannot listen there",
                        f"mv {path} {path}.old")  # fmt: skip
    return ok(f"{folder} is yours, mode {mode:04o}")


def check_daemon(p: Probe) -> Finding:
    from daemon import __version__

    if p.incompatible:
        return fail(p.incompatible, "pm daemon restart")
    if p.unreachable:
        return fail(f"not running: {p.unreachable}{_last_start()}", "pm daemon start")
    theirs = (p.hello.get("daemon_version"), p.hello.get("protocol_version"))
    ours = (__version__, errors.PROTOCOL_VERSION)
    if theirs != ours:
        return fail(
            f"pm-agentd {theirs[0]} (protocol {theirs[1]}) answers, but this pm is "
            f"{ours[0]} (protocol {ours[1]}): the daemon runs from another install",
            "pm daemon restart",
        )
    state, pid = p.status.get("state"), p.status.get("pid")
    what = f"pm-agentd {__version__} (pid {pid}, protocol {ours[1]})"
    if state != "ready":
        return warn(f"{what} is {state}; run pm doctor again in a moment")
    return ok(f"{what} is ready on {p.s.socket_path}")


def _last_start() -> str:
    """What the daemon said when pm last started it, if anything (say, why it exited)."""
    from datetime import UTC, datetime

    path = os.path.join(locations.state_dir(), "pm-agentd.start.log")  # client.spawn writes it
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline().strip()
        mtime = os.stat(path).st_mtime
    except OSError:
        return ""
    when = output.relative_time(datetime.fromtimestamp(mtime, UTC).isoformat())
    return f"; when pm last started it ({when}) it said: {first}" if first else ""


def _systemctl_state(unit: str) -> str | None:
    """`systemctl --user is-active UNIT`: active, inactive, failed…; None when it cannot say."""
    import shutil
    import subprocess

    if shutil.which("systemctl") is None:
        return None
    try:
        done = subprocess.run(
            ["systemctl", "--user", "is-active", unit],
            capture_output=True,
            text=True,
            timeout=SYSTEMCTL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    words = done.stdout.split()
    return words[0] if len(words) == 1 and words[0] != "unknown" else None


def _systemd(p: Probe) -> Finding:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    folder = os.path.join(base, "systemd", "user")
    units = [
        u for u in (f"{UNIT}.service", f"{UNIT}.socket") if os.path.exists(os.path.join(folder, u))
    ]
    if not units:
        return warn(NOT_INSTALLED)
    where = f"installed as {', '.join(units)} in {folder}"
    state = _systemctl_state(f"{UNIT}.service")
    if state is None:
        return ok(f"{where}; whether it runs is unknown (systemctl --user could not say)")
    if state == "active":
        return ok(f"{where}; active")
    if f"{UNIT}.socket" in units and _systemctl_state(f"{UNIT}.socket") == "active":
        return ok(f"{where}; socket-activated: starts on the first call")
    if state == "failed":
        return warn(
            f"{where}, but the unit failed",
            f"systemctl --user restart {UNIT}.service (journalctl --user -u "
            f"{UNIT}.service says why it failed)",
        )
    start = f"systemctl --user start {UNIT}.service"
    return warn(
        f"{where}, but it is {state}",
        f"pm daemon stop && {start}" if p.online else start,
    )


def check_service(p: Probe) -> Finding:
    if sys.platform.startswith("linux"):
        return _systemd(p)
    if sys.platform == "darwin":
        folder = os.path.expanduser("~/Library/LaunchAgents")
        try:
            plists = sorted(n for n in os.listdir(folder) if UNIT in n and n.endswith(".plist"))
        except OSError:
            plists = []
        if plists:
            return ok(f"installed as {', '.join(plists)} in {folder}")
        return warn(NOT_INSTALLED)
    return ok("not applicable on this platform")


# --- inotify -----------------------------------------------------------------------------------
def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def inotify_usage(uid: int) -> tuple[int, int]:
    """(watches, instances) held by every process of `uid`, as the kernel counts per user."""
    watches = instances = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(os.path.join(fd_dir, fd)) != "anon_inode:inotify":
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as f:
                    watches += sum(1 for line in f if line.startswith("inotify wd:"))
                instances += 1
            except OSError:
                continue
    return watches, instances


def _sysctl(setting: str, value: int) -> str:
    return (
        f"sudo sysctl fs.inotify.{setting}={value} (and put fs.inotify.{setting}={value} "
        "in /etc/sysctl.d/90-pm-agent.conf to keep it)"
    )


def _degraded(watcher: dict[str, Any], limit: int | None) -> Finding:
    problem = str(watcher.get("problem") or "the OS refused file watches")
    message = (
        f"file watching is {watcher['mode']}: {problem}; {watcher['polled_paths']} "
        "folders are polled instead of watched"
    )
    if problem.startswith("max_watches="):  # the config caps it, not the OS
        fix = (
            f"remove max_watches from {locations.config_path()} (or raise it), then "
            "pm daemon restart"
        )
    else:
        fix = watcher.get("fix") or _sysctl("max_user_watches", max(524288, (limit or 0) * 2))
    return fail(message, fix)


def check_inotify(p: Probe) -> Finding:
    if not sys.platform.startswith("linux"):
        return ok("not applicable (inotify is Linux's)")
    limit = _read_int("/proc/sys/fs/inotify/max_user_watches")
    instance_limit = _read_int("/proc/sys/fs/inotify/max_user_instances")
    daemon_part = ""
    if p.online:
        watcher = p.ask("db.health")["watcher"]
        if watcher["mode"] in ("degraded", "polling"):
            return _degraded(watcher, limit)
        daemon_part = (
            f"; pm-agentd watches {watcher['watched_paths']} folders"
            if watcher["mode"] == "watching"
            else f"; pm-agentd's file watching is {watcher['mode']}"
        )
    watches, instances = inotify_usage(os.getuid())
    message = (
        f"your processes use {watches} of {limit} watches and {instances} of "
        f"{instance_limit} instances{daemon_part}"
    )
    if limit and watches > INOTIFY_WARN_FRACTION * limit:
        return warn(message, _sysctl("max_user_watches", limit * 2))
    if instance_limit and instances > INOTIFY_WARN_FRACTION * instance_limit:
        return warn(message, _sysctl("max_user_instances", instance_limit * 2))
    return ok(message)


# --- disk and filesystem -----------------------------------------------------------------------
def _existing(path: str) -> str:
    """The path itself, or its nearest parent that exists, with symlinks resolved."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return os.path.realpath(path)


def _mount_point(path: str) -> str:
    while not os.path.ismount(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _size(n: float) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB else f"{n / MiB:.0f} MiB"


def check_disk(p: Probe) -> Finding:
    data_dir = p.where().data_dir
    existing = _existing(data_dir)
    st = os.statvfs(existing)
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    mount = _mount_point(existing)
    message = f"{_size(free)} free of {_size(total)} on {mount} (it holds {data_dir})"
    fix = f"free space on {mount}: at least {_size(DISK_WARN_BYTES)}"
    if free < DISK_FAIL_BYTES:
        return fail(message + "; writes and backups will fail", fix)
    if free < DISK_WARN_BYTES or (total and free < DISK_WARN_FRACTION * total):
        return warn(message, fix)
    return ok(message)


class Mount(NamedTuple):
    mount_point: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040…)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def mount_for(mountinfo: str, path: str) -> Mount | None:
    """The mount that holds the absolute `path`, from /proc/self/mountinfo's text: the longest
    mount point that is a prefix of it (the later line when two are stacked on one point)."""
    best: Mount | None = None
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        point = _unescape(fields[4])
        rest = fields[fields.index("-", 6) + 1 :]
        inside = point in ("/", path) or path.startswith(point.rstrip("/") + "/")
        if inside and len(rest) >= 2 and (best is None or len(point) >= len(best.mount_point)):
            best = Mount(point, rest[0], _unescape(rest[1]))
    return best


def judge_filesystem(mount: Mount | None, data_dir: str, config_path: str) -> Finding:
    if mount is None:
        return warn(f"no mount found for {data_dir} in mountinfo")
    where = f"{data_dir} is on {mount.fstype} ({mount.source} at {mount.mount_point})"
    if mount.fstype in NETWORK_FILESYSTEMS:
        return fail(
            f"{where}, a network filesystem: SQLite's WAL needs shared memory that "
            "only a local disk gives, so the database can be corrupted there",
            f"set data_dir in {config_path} to a folder on a local disk (move "
            f"{data_dir} there with pm daemon stop first)",
        )
    if mount.fstype == "zfs":
        return warn(
            f"{where}: SQLite works on it, but with the default recordsize=128K "
            "every small write rewrites a whole record",
        )
    return ok(where)


def check_filesystem(p: Probe) -> Finding:
    data_dir = p.where().data_dir
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except OSError:
        return ok("not checked here (no /proc/self/mountinfo)")
    mount = mount_for(text, _existing(data_dir))
    return judge_filesystem(mount, data_dir, locations.config_path())


# --- database and backups ----------------------------------------------------------------------
def _good(p: Probe) -> dict[str, Any] | None:
    return next((b for b in p.backups() if b["ok"]), None)


def _repair_fix(p: Probe) -> str:
    try:
        good = _good(p)
    except Exception:  # no listing: repair is still there
        good = None
    if good is None:
        return "pm db repair"
    return (
        f"pm backup restore {good['name']} (the newest good backup, "
        f"{output.relative_time(good['created_at'])}), or pm db repair to keep what "
        "can be read"
    )


def check_database(p: Probe) -> Finding:
    if p.online:
        result = p.ask("db.check")
        if result["ok"]:
            return ok("integrity_check and foreign_key_check found nothing")
        found = [f"integrity: {line}" for line in result["integrity"]] + [
            f"foreign key: {f['table']} row {f['rowid']} points at a missing {f['parent']} row"
            for f in result["foreign_keys"]
        ]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        return fail(f"damaged: {found[0]}{more}", _repair_fix(p))
    from daemon.db import backup

    db_path = p.where().db_path
    if not os.path.exists(db_path):
        return ok(f"not created yet ({db_path})")
    found = backup.problems(db_path, quick=True)
    if not found:
        return ok(f"quick_check found nothing in {db_path} (checked offline)")
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return fail(f"damaged (checked offline): {found[0]}{more}", _repair_fix(p))


def _age_s(iso: str) -> float:
    import time
    from datetime import datetime

    return time.time() - datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def check_backup(p: Probe) -> Finding:
    items = p.backups()
    good = _good(p)
    failed = next((b for b in items if not b["ok"]), None)
    again = "pm backup now (and pm db check: the database itself may be damaged)"
    if failed and (good is None or failed["created_at"] > good["created_at"]):
        return fail(
            f"the newest backup attempt ({failed['name']}, "
            f"{output.relative_time(failed['created_at'])}) failed: "
            f"{failed.get('problem') or '?'}",
            again,
        )
    last_error = p.ask("db.health").get("last_backup_error") if p.online else None
    if last_error:
        return fail(f"the last backup attempt failed: {last_error}", again)
    if good is None:
        if not p.online and not os.path.exists(p.where().db_path):
            return ok("no database yet: nothing to back up")
        return warn("there is no backup yet", "pm backup now")
    when = output.relative_time(good["created_at"])
    if _age_s(good["created_at"]) > BACKUP_WARN_AFTER_S:
        return warn(
            f"the newest good backup, {good['name']}, is from {when}",
            "pm backup now",
        )
    count = sum(1 for b in items if b["ok"])
    return ok(f"newest {good['name']} ({when}); {count} kept")


# --- running and showing -----------------------------------------------------------------------
CHECKS: list[tuple[str, Callable[[Probe], Finding]]] = [
    ("config", check_config),
    ("socket_dir", check_socket_dir),
    ("daemon", check_daemon),
    ("service", check_service),
    ("inotify", check_inotify),
    ("disk", check_disk),
    ("filesystem", check_filesystem),
    ("database", check_database),
    ("backup", check_backup),
]


def run_check(name: str, check: Callable[[Probe], Finding], p: Probe) -> Check:
    try:
        found = check(p)
    except NotChecked as e:
        found = warn(f"not checked: {e}")
    except errors.RemoteError as e:
        status = "warn" if e.kind in ("starting", "busy") else "fail"
        found = Finding(status, f"the daemon could not answer: {e.message}")
    except Exception as e:  # a check that cannot run must not stop the others
        found = fail(f"the check could not run: {type(e).__name__}: {e}", None)
    return Check(name, *found)


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    out = []
    for c in checks:
        symbol, colour = SYMBOLS[c.status]
        out.append(f"{output.paint(symbol, colour)} {c.name:<{width}}  {c.message}")
        if c.fix:
            out.append(f"  {' ' * width}  fix: {c.fix}")
    failed = sum(c.status == "fail" for c in checks)
    warned = sum(c.status == "warn" for c in checks)
    if failed or warned:
        out.append(f"{failed} failed, {warned} to look at")
    else:
        out.append("everything is in order")
    return "\n".join(out) + "\n"


def cmd_doctor(args: argparse.Namespace, s: Session) -> int:
    probe = Probe(s)
    checks = [run_check(name, check, probe) for name, check in CHECKS]
    passed = all(c.status != "fail" for c in checks)
    if args.json:
        output.print_json({"ok": passed, "checks": [c._asdict() for c in checks]})
    else:
        sys.stdout.write(render(checks))
    return 0 if passed else errors.EXIT_FAILED


def add_parsers(sub: Any) -> None:
    doctor = sub.add_parser("doctor", help="check everything that can go wrong, with the fixes")
    doctor.set_defaults(fn=cmd_doctor)
