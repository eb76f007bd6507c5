"""What must hold before the daemon serves: private folders, one instance, a bound socket.

Each check fails with a StartupError whose message says what is wrong and how to fix it.
The data folder's own subfolders are checked here at start and again each time they are used
(daemon.platform.private_folders): a link planted in their place is refused, never followed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
import sys
from typing import IO

import structlog

from daemon.domain.jobs import service as jobs
from daemon.platform import private_folders
from daemon.runtime.config import Paths
from daemon.store import backup, export, swap

log = structlog.get_logger("pm.startup")

# sizeof(sockaddr_un.sun_path): 108 on Linux, 104 on macOS and the BSDs; one byte is the NUL.
SUN_PATH_MAX = 108 if sys.platform.startswith("linux") else 104


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


def check_socket_path(path: str) -> None:
    size = len(os.fsencode(path))
    if size >= SUN_PATH_MAX:
        raise StartupError(
            f"socket path {path} is {size} bytes, but a Unix socket address holds at most "
            f"{SUN_PATH_MAX - 1}. Set PM_AGENT_SOCKET (or `socket` in config.toml) to a shorter "
            "path."
        )


def private_dir(path: str, *, what: str, fix_mode: bool) -> None:
    """Make sure `path` is a directory of ours that nobody else can enter.

    Created 0700 when missing. If it exists with group/other access, `fix_mode` tightens it
    (the data dir: ours, possibly made by an older tool); otherwise the daemon refuses (the
    socket dir: someone else may have prepared it).
    """
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:
        pass  # a file or a dangling link is there: said below
    except OSError as e:
        raise StartupError(f"cannot create the {what} {path}: {e.strerror}") from None
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise StartupError(
            f"the {what} {path} is not a directory (a symlink or a file is there); pm-agent "
            f"does not follow it. Fix: mv {path} {path}.moved, and start again"
        )
    if st.st_uid != os.getuid():
        raise StartupError(
            f"the {what} {path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); "
            f"another user may be intercepting it. Remove it or choose another path."
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        if not fix_mode:
            raise StartupError(
                f"the {what} {path} has mode {mode:04o}; it must be 0700 so no other user can "
                f"reach the socket. Fix: chmod 700 {path}"
            )
        log.warning("tightening directory permissions", path=path, was=f"{mode:04o}")
        os.chmod(path, 0o700)


def data_folders(paths: Paths) -> list[tuple[str, str]]:
    """Every folder below the data folder that pm-agent keeps files in, and its name."""
    return [
        (paths.db_dir, swap.DATABASE),
        (paths.backups_dir, backup.BACKUPS),
        (os.path.join(paths.backups_dir, backup.FAILED_DIR), backup.FAILED),
        (paths.damaged_dir, swap.DAMAGED),
        (paths.exports_dir, export.EXPORTS),
        (os.path.join(paths.data_dir, jobs.JOBS_DIR), jobs.JOBS_FOLDER),
        (os.path.join(paths.data_dir, export.IMPORTS_DIR), export.IMPORTS),
    ]


def check_data_folders(paths: Paths) -> None:
    """Those that exist are folders of ours (not links), 0700: the daemon refuses to start
    rather than follow a link out of its data folder."""
    for path, what in data_folders(paths):
        try:
            private_folders.check(path, what=what, create=False)
        except FileNotFoundError:
            continue  # made when first needed, and checked then
        except private_folders.FolderRefused as e:
            raise StartupError(str(e)) from None


def _open_lock(path: str) -> IO[str]:
    """The lock file, never through a link (it would be truncated and written to)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as e:
        problem = "is a symbolic link" if e.errno == errno.ELOOP else f"cannot be opened ({e})"
        raise StartupError(
            f"the lock file {path} {problem}; pm-agent does not follow it. Fix: "
            f"mv {path} {path}.moved, and start again"
        ) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
        os.close(fd)
        raise StartupError(
            f"the lock file {path} is not a regular file of yours. Fix: mv {path} {path}.moved, "
            "and start again"
        )
    os.set_blocking(fd, True)
    return os.fdopen(fd, "r+")


class InstanceLock:
    """An flock held for the daemon's lifetime: one daemon per data directory."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        handle = _open_lock(self._path)  # held open for the process lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                handle.close()
                raise
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StartupError(
                f"another pm-agentd (pid {holder}) is already running with this data "
                f"directory ({os.path.dirname(self._path)}). Stop it first: pm daemon stop"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def bind_socket(path: str) -> socket.socket:
    """Bind and listen on `path`, 0600. A leftover socket is removed only if nobody answers."""
    check_socket_path(path)
    if os.path.lexists(path):
        _reclaim(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)  # the socket is born 0600: no window where others can connect
    try:
        sock.bind(path)
    except OSError as e:
        sock.close()
        raise StartupError(f"cannot bind {path}: {e.strerror}") from None
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _reclaim(path: str) -> None:
    st = os.lstat(path)
    if not stat.S_ISSOCK(st.st_mode):
        raise StartupError(f"{path} exists and is not a socket; move it away and start again")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        log.info("removing a stale socket", path=path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    except FileNotFoundError:
        return
    except OSError as e:
        raise StartupError(f"cannot tell whether {path} is in use: {e.strerror}") from None
    finally:
        probe.close()
    raise StartupError(f"another daemon is already answering on {path}")


def unlink_socket(path: str) -> None:
    """Remove our socket file. Called while still listening, so a successor that finds the
    path free binds its own socket and we never remove that one."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


def damaged_database(db_path: str, backups_dir: str, found: list[str]) -> StartupError:
    """What to tell a user whose database failed `quick_check` at start: nothing was touched,
    the newest backup that still verifies, and the exact commands."""
    lines = [
        f"the database {db_path} is damaged ({found[0]}); pm-agentd did not start and "
        "changed nothing."
    ]
    good = None
    for candidate in backup.listing(backups_dir, with_versions=False):
        if candidate.ok and not backup.problems(candidate.path, quick=True):
            good = candidate
            break
    if good is not None:
        lines.append(
            f"The newest good backup is {good.name} (taken {_when(good.created_at)}). "
            "Restore it with:\n"
            f"    pm backup restore {good.name}"
        )
        lines.append("or recover what can still be read into a new file (the damaged one is kept):")
    else:
        lines.append(f"There is no good backup in {backups_dir}. Recover what can still be read")
        lines.append("into a new file (the damaged one is kept) with:")
    lines.append("    pm db repair")
    return StartupError("\n".join(lines))


def _when(iso: str) -> str:
    """2026-11-22T03:48:48.000000Z → 2026-11-22 03:48 UTC"""
    return f"{iso[:10]} {iso[11:16]} UTC"
