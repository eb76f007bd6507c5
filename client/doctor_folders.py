"""`pm doctor`'s checks of the folders pm-agent lives in: the Dev root(s) and the data folder."""

from __future__ import annotations

import errno
import os
import stat
import tempfile

from client import door, locations
from client.doctor_probe import Finding, NotChecked, Probe, fail, ok, warn


def dev_roots(p: Probe) -> list[str]:
    """The Dev roots the running daemon watches or, when none answers, the config names."""
    if p.online:
        return [str(root["path"]) for root in p.status.get("dev_roots") or []]
    paths = p.config()
    if isinstance(paths, door.Refused):
        raise NotChecked(f"the config cannot be read and no daemon answers ({paths})")
    return [paths["dev_root"]]


def dev_root_fix(root: str) -> str:
    fix: str = door.ask("dev_root_fix", {"root": root})
    return fix


def check_dev_root(p: Probe) -> Finding:
    roots = dev_roots(p)
    if not roots:
        return warn("the daemon did not say which Dev roots it watches", "pm daemon restart")
    for root in roots:
        if not os.path.isdir(root):
            what = "is not a folder" if os.path.lexists(root) else "does not exist"
            return fail(
                f"the Dev root {root} {what}: no project is found or watched there",
                dev_root_fix(root),
            )
    return ok(f"projects are looked for in {', '.join(roots)}")


def _write_problem(folder: str) -> OSError | None:
    """Why a file cannot be made in `folder` (tried for real: permissions, a read-only
    mount, a full disk and root's powers all count), or None."""
    try:
        fd, scratch = tempfile.mkstemp(prefix=".pm-doctor-", dir=folder)
    except OSError as e:
        return e
    os.close(fd)
    os.unlink(scratch)
    return None


def _nearest_existing(path: str) -> str:
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _unwritable(folder: str, problem: OSError, elsewhere: str) -> Finding:
    reason = problem.strerror or str(problem)
    message = f"{folder} is not writable ({reason}): the database and its backups cannot change"
    if problem.errno == errno.EROFS:
        fix = f"remount the filesystem that holds {folder} read-write, {elsewhere}"
    elif problem.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = f"free space on the disk that holds {folder}"
    elif problem.errno in (errno.EACCES, errno.EPERM):
        fix = f"chmod u+rwx {folder}, {elsewhere}"
    else:
        fix = f"make {folder} writable by you, {elsewhere}"
    return fail(message, fix)


def check_data_dir(p: Probe) -> Finding:
    data_dir = p.where().data_dir
    setting = (
        f"set data_dir in {locations.config_path()} (or PM_AGENT_DATA_DIR) to a folder of yours "
        "on a local disk"
    )
    elsewhere = f"or {setting}"
    try:
        st = os.lstat(data_dir)
    except FileNotFoundError:
        for root in dev_roots(p):
            if not os.path.isdir(root) and os.path.commonpath([root, data_dir]) == root:
                return warn(
                    f"{data_dir} does not exist, and pm-agentd does not create it inside the "
                    f"missing Dev root {root}",
                    dev_root_fix(root),
                )
        parent = _nearest_existing(os.path.dirname(data_dir))
        if not os.path.isdir(parent):
            return fail(f"{data_dir} cannot be created: {parent} is not a folder", setting)
        problem = _write_problem(parent)
        if problem is not None:
            return _unwritable(parent, problem, elsewhere)
        status = "warn" if p.online else "ok"  # gone from under a running daemon
        return Finding(status, f"{data_dir} does not exist yet; pm-agentd creates it (mode 0700)")
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return fail(
            f"{data_dir} is not a folder (a symlink or a file): pm-agentd refuses to use it",
            f"move {data_dir} away, {elsewhere}",
        )
    if st.st_uid != os.getuid():
        return fail(
            f"{data_dir} belongs to uid {st.st_uid}, not to you (uid {os.getuid()})",
            f"sudo chown -R {os.getuid()} {data_dir} (after checking who made it), {elsewhere}",
        )
    for folder in (data_dir, os.path.join(data_dir, "db")):
        if os.path.isdir(folder):
            problem = _write_problem(folder)
            if problem is not None:
                return _unwritable(folder, problem, elsewhere)
    return ok(f"{data_dir} is yours and writable")
