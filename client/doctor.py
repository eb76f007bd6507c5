"""`pm doctor`: everything a user can get wrong, each finding with the command that fixes it.

Doctor never starts the daemon. It asks a running one (`daemon.hello`, `daemon.status`,
`db.health`, `db.check`, `db.backups`) and otherwise looks at the files itself, read-only.
Every check runs on its own: one that cannot run says so, and the others go on.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from client import door, errors, locations, output
from client.doctor_folders import check_data_dir, check_dev_root
from client.doctor_host import check_disk, check_filesystem, check_inotify, check_service
from client.doctor_probe import Finding, NotChecked, Probe, fail, ok, warn
from client.spec import Command
from client.version import __version__

if TYPE_CHECKING:
    from client.args import Args
    from client.session import Session

THEN_START = "; then pm daemon start"
BACKUP_WARN_AFTER_S = 2 * 86400  # a daily backup missed twice
SYMBOLS = {"ok": ("✓", "32"), "warn": ("!", "33"), "fail": ("✗", "31")}


class Check(NamedTuple):
    name: str  # stable: scripts read them
    status: str
    message: str
    fix: str | None


# --- config, socket, daemon ------------------------------------------------------------------
def _socket_path_max() -> int:
    found: int = door.ask("socket_path_max")
    return found


def check_config(p: Probe) -> Finding:
    path = locations.config_path()
    paths = p.config()
    if isinstance(paths, door.Refused):
        return fail(str(paths), paths.fix)
    where = path if os.path.exists(path) else f"no config file at {path}: the defaults"
    if p.online and paths["data_dir"] != p.status["data_dir"]:
        return warn(
            f"the running daemon uses {p.status['data_dir']}, but {where} now says "
            f"{paths['data_dir']}",
            "pm daemon restart",
        )
    unknown: dict[str, str] = door.ask("unknown_environment")
    if unknown:
        return warn(
            "; ".join(unknown.values()),
            f"unset {' '.join(unknown)} (or correct the name) where it is set",
        )
    return ok(f"{where}; data in {paths['data_dir']}")


def check_socket_dir(p: Probe) -> Finding:
    limit = _socket_path_max()
    path = p.s.socket_path
    folder = os.path.dirname(path)
    elsewhere = f"set PM_AGENT_SOCKET (or socket in {locations.config_path()}) to another path"
    if len(os.fsencode(path)) >= limit:
        return fail(
            f"the socket path {path} is longer than a Unix socket address holds "
            f"({limit - 1} bytes)",
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
            return fail(
                f"{path} is not a socket: the daemon cannot listen there", f"mv {path} {path}.old"
            )
    return ok(f"{folder} is yours, mode {mode:04o}")


def check_daemon(p: Probe) -> Finding:
    if p.incompatible:
        return fail(p.incompatible, "pm daemon restart")
    if p.unreachable:
        return _not_running(p)
    theirs = (p.hello.get("daemon_version"), p.hello.get("protocol_version"))
    ours = (__version__, errors.PROTOCOL_VERSION)
    if theirs != ours:
        return fail(
            f"pm-agentd {theirs[0] or 'of unknown version'} (protocol {theirs[1] or '?'}) "
            f"answers, but this pm is {ours[0]} (protocol {ours[1]}): the daemon runs from "
            "another install",
            "pm daemon restart",
        )
    state, pid = p.status.get("state") or "in an unknown state", p.status.get("pid") or "?"
    what = f"pm-agentd {__version__} (pid {pid}, protocol {ours[1]})"
    if state != "ready":
        return warn(f"{what} is {state}; run pm doctor again in a moment")
    return ok(f"{what} is ready on {p.s.socket_path}")


def _not_running(p: Probe) -> Finding:
    """Not running: why it stopped when it last tried to start, and the fix for that cause."""
    path = p.s.socket_path
    if len(os.fsencode(path)) >= _socket_path_max():
        return fail(
            f"not running: no daemon can listen on {path}, a path too long for a Unix socket",
            _socket_fix(p),
        )
    failure = p.start_failure()
    if failure is not None:
        when = output.relative_time(failure["at"])
        return fail(
            f"not running: when it last tried to start ({when}) it stopped (exit status "
            f"{failure['exit_code']}): {failure['message']}",
            _start_fix(p, failure),
        )
    cannot = _cannot_start(p)
    if cannot is not None:
        message, fix = cannot
        return fail(f"not running, and it cannot start: {message}", f"{fix}{THEN_START}")
    return fail(f"not running: {p.unreachable}{_last_start()}", "pm daemon start")


def _cannot_start(p: Probe) -> tuple[str, str] | None:
    """What in the config stops the daemon from starting now, even if nothing started it:
    (why, the fix)."""
    paths = p.config()
    if isinstance(paths, door.Refused):
        return str(paths), paths.fix
    found = door.ask("cannot_start")
    return None if found is None else (found["message"], found["fix"])


def _socket_fix(p: Probe) -> str:
    found = check_socket_dir(p)
    return found.fix or (
        f"set PM_AGENT_SOCKET (or socket in {locations.config_path()}) to another path, "
        "then pm daemon start"
    )


def _start_fix(p: Probe, failure: dict[str, Any]) -> str:
    """The fix for what stopped the daemon, as it recorded it, checked against things now."""
    then = THEN_START
    kind, data_dir = failure["kind"], failure["data_dir"]
    if kind in ("config", "dev_root") and failure["fix"]:
        return str(failure["fix"]) + then
    if kind == "socket":
        return _socket_fix(p)
    if kind == "database":
        return _repair_fix(p)
    if kind == "data_dir":
        found = check_data_dir(p)
        if found.fix:
            return found.fix + then
    if kind == "instance":
        return (
            f"stop the pm-agentd that holds {data_dir} (its pid is in "
            f"{os.path.join(data_dir, 'pm-agentd.lock')}), or give this one another "
            f"data_dir{then}"
        )
    if kind == "migration":
        return (
            "pm db rollback (back to the backup taken before the migration), or install the "
            "pm-agent the message names"
        )
    return f"pm daemon start; if it stops again, the daemon log in {locations.state_dir()} says why"


def _last_start() -> str:
    """What a daemon that pm started last said on its way out, when it left no record (a
    crash): the last line of its stderr, where the exception is."""
    from datetime import UTC, datetime

    from client.spawn import START_LOG

    path = os.path.join(locations.state_dir(), START_LOG)
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
        mtime = os.stat(path).st_mtime
    except OSError:
        return ""
    last = lines[-1].strip() if lines else ""
    when = output.relative_time(datetime.fromtimestamp(mtime, UTC).isoformat())
    return f"; when pm last started it ({when}) it said: {last}" if last else ""


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
    db_path = p.where().db_path
    if not os.path.exists(db_path):
        return ok(f"not created yet ({db_path})")
    problems: list[str] = door.ask("quick_check", {"db_path": db_path})
    if not problems:
        return ok(f"quick_check found nothing in {db_path} (checked offline)")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return fail(f"damaged (checked offline): {problems[0]}{more}", _repair_fix(p))


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
            f"{failed.get('problem') or 'no reason was recorded'}",
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
    ("dev_root", check_dev_root),
    ("data_dir", check_data_dir),
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
        message = f"the daemon could not answer: {e.message}"
        if e.kind in ("starting", "busy"):
            found = warn(message, "run pm doctor again in a moment")
        else:
            found = fail(
                message,
                f"pm daemon restart (the daemon log in {locations.state_dir()} "
                "says why it could not answer)",
            )
    except Exception as e:  # a check that cannot run must not stop the others
        found = warn(f"not checked: the check could not run: {type(e).__name__}: {e}")
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


def cmd_doctor(args: Args, s: Session) -> int:
    probe = Probe(s)
    checks = [run_check(name, check, probe) for name, check in CHECKS]
    passed = all(c.status != "fail" for c in checks)
    if args.json:
        output.print_json({"ok": passed, "checks": [c._asdict() for c in checks]})
    else:
        sys.stdout.write(render(checks))
    return 0 if passed else errors.EXIT_FAILED


def command(word: str) -> Command:
    return Command("doctor", cmd_doctor, help="check everything that can go wrong, with the fixes")
