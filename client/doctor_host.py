"""`pm doctor`'s checks of the machine: the user service, inotify, disk space, the filesystem."""

from __future__ import annotations

import os
import re
import sys
from typing import Any, NamedTuple

from client import locations
from client.doctor_probe import Finding, Probe, fail, ok, warn

MiB = 1024 * 1024
GiB = 1024 * MiB
DISK_FAIL_BYTES = 100 * MiB
DISK_WARN_BYTES = GiB
DISK_WARN_FRACTION = 0.05
INOTIFY_WARN_FRACTION = 0.8
SYSTEMCTL_TIMEOUT_S = 3.0
UNIT = "pm-agent"
NOT_INSTALLED = "not installed as a user service; pm starts the daemon on demand"
# SQLite's WAL needs shared memory that every process sees: none of these give it.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "sshfs",
        "fuse.sshfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "fuse.glusterfs",
        "lustre",
        "fuse.rclone",
    }
)


# --- service ---------------------------------------------------------------------------------
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
        f"file watching is {watcher['mode']}: {problem}; {watcher.get('polled_paths') or 'some'} "
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


def _limit(value: int | None) -> str:
    return "an unknown number of" if value is None else str(value)


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
        if watcher["mode"] == "restarting":  # nothing is watched until it is built again
            problem = watcher.get("problem") or "pm-agentd's file watcher failed"
            return warn(
                f"pm-agentd's file watching is restarting: {problem}",
                watcher.get("fix") or "pm daemon restart, if it keeps failing",
            )
        daemon_part = (
            f"; pm-agentd watches {watcher['watched_paths']} folders"
            if watcher["mode"] == "watching"
            else f"; pm-agentd's file watching is {watcher['mode']}"
        )
    watches, instances = inotify_usage(os.getuid())
    message = (
        f"your processes use {watches} of {_limit(limit)} watches and {instances} of "
        f"{_limit(instance_limit)} instances{daemon_part}"
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
