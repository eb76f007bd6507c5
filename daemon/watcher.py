"""Watching the Dev folder: one inotify watcher for everything, never a recursive watch.

What is watched: the Dev roots and the grouping folders down to the discovery depth (a
project appearing, vanishing or being renamed shows there), and per project a small fixed set
— its folder, its git folder, the folder of its current branch's ref (a linked worktree adds
its own admin folder). So the number of OS watches grows with projects, not with files.

Events settle briefly per project or folder, are held while `index.lock` exists (git is in
the middle of something), then the scanner rescans just that project or folder. When the OS
refuses watches (ENOSPC: max_user_watches; EMFILE: max_user_instances) the paths that did
not fit are polled instead, the daemon keeps serving, and `status()` says what to raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import msgspec
import structlog
from watchfiles._rust_notify import RustNotify

from daemon.db import projects as projects_db
from daemon.db.database import Database
from daemon.projects import gitmeta
from daemon.services.scan_plan import ScanSummary
from daemon.services.scanner import Scanner

log = structlog.get_logger("pm.watcher")

Mode = Literal["off", "starting", "watching", "degraded", "polling"]
_LOCK_HOLD_MAX_S = 30.0  # a stale index.lock must not stop updates for ever
_DEBOUNCE_MS, _STEP_MS, _TIMEOUT_MS = 50, 10, 1000


class WatchStatus(msgspec.Struct, kw_only=True):
    mode: Mode
    watched_paths: int  # given to inotify
    polled_paths: int  # that did not fit, polled every poll_interval_s
    os_watches: int | None  # inotify watches this process holds (Linux /proc)
    max_user_watches: int | None
    problem: str | None
    fix: str | None  # the exact command that lifts the limit


class _Owner(msgspec.Struct, frozen=True):
    kind: Literal["project", "group"]
    path: str  # the project folder, or the grouping folder
    git_dir: str | None = None


def _watch_limit_hit(error: OSError) -> bool:
    text = str(error)
    return "limit" in text.lower() or "MaxFilesWatch" in text or "Too many open files" in text


def _failed_path(error: OSError, paths: list[str]) -> int | None:
    """Which path the OS refused (watchfiles names it): the ones before it fitted."""
    text = str(error)
    for i, path in enumerate(paths):
        if f'"{path}"' in text:
            return i
    return None


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def count_inotify_watches(pid: int | str = "self") -> int | None:
    """Watches held by this process's inotify instances, from /proc/<pid>/fdinfo."""
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return None
    total = 0
    for fd in fds:
        try:
            if os.readlink(os.path.join(fd_dir, fd)) != "anon_inode:inotify":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as f:
                total += sum(1 for line in f if line.startswith("inotify wd:"))
        except OSError:
            continue
    return total


class _Notifier:
    """One RustNotify on its own thread; changes are handed to the loop in batches."""

    def __init__(
        self,
        paths: list[str],
        *,
        polling: bool,
        poll_delay_ms: int,
        deliver: Any,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        # May raise OSError when the OS refuses a watch: the caller decides what to poll.
        self._notify = RustNotify(paths, False, polling, poll_delay_ms, False, True)
        self.paths = paths
        self.polling = polling
        self._stop = threading.Event()
        self._deliver = deliver
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="pm-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                changes = self._notify.watch(_DEBOUNCE_MS, _STEP_MS, _TIMEOUT_MS, self._stop)
                if changes == "stop":
                    return
                if isinstance(changes, set) and changes:
                    try:
                        self._loop.call_soon_threadsafe(self._deliver, changes)
                    except RuntimeError:
                        return  # the loop has closed
        except Exception:
            log.exception("the file watcher thread failed")
        finally:
            self._notify.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Watcher:
    def __init__(
        self,
        scanner: Scanner,
        db: Database,
        *,
        settle_s: float,
        poll_interval_s: float,
        max_watches: int,
        on_project_change: Callable[[str], None] | None = None,
    ) -> None:
        self._scanner = scanner
        self._db = db
        self._settle_s = settle_s
        self._poll_ms = int(poll_interval_s * 1000)
        self._max_watches = max_watches
        self._on_project_change = on_project_change  # any change, even one no fact shows
        self._owners: dict[str, _Owner] = {}
        self._watchers: list[_Notifier] = []
        self._groups: set[str] = set()
        self._catching_up = False
        self._due: dict[_Owner, float] = {}  # owner → when it may be rescanned
        self._held_since: dict[_Owner, float] = {}
        self._wake = asyncio.Event()
        self._rebuild = asyncio.Event()
        self._mode: Mode = "off"
        self._problem: str | None = None
        self._task: asyncio.Task[None] | None = None
        scanner.listeners.append(self._after_scan)

    # --- status -----------------------------------------------------------------------------
    def status(self) -> WatchStatus:
        watched = sum(len(w.paths) for w in self._watchers if not w.polling)
        polled = sum(len(w.paths) for w in self._watchers if w.polling)
        limit = _read_int("/proc/sys/fs/inotify/max_user_watches")
        fix = None
        if self._mode in ("degraded", "polling"):
            wanted = max(524288, (limit or 0) * 2)
            fix = (
                f"sudo sysctl fs.inotify.max_user_watches={wanted} "
                "fs.inotify.max_user_instances=1024 "
                "(and put the same in /etc/sysctl.d/90-pm-agent.conf to keep it)"
            )
        return WatchStatus(
            mode=self._mode,
            watched_paths=watched,
            polled_paths=polled,
            os_watches=count_inotify_watches(),
            max_user_watches=limit,
            problem=self._problem,
            fix=fix,
        )

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self._mode = "starting"
        await self._apply_watch_set(catch_up=False)
        self._rebuild.clear()  # the scans before this set are already in it
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pm-watcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self._close_notifiers)
        self._mode = "off"

    def _close_notifiers(self) -> None:
        _close_all(self._watchers)
        self._watchers = []

    def _after_scan(self, summary: ScanSummary) -> None:
        projects_changed = summary.new or summary.missing or summary.moved or summary.returned
        # A new folder that is not a project yet (`mkdir x`, `git init` later) is a grouping
        # folder: it must be watched too, or the project that appears in it goes unseen.
        if projects_changed or set(self._scanner.groups) != self._groups:
            self._rebuild.set()
            self._wake.set()

    # --- the watch set ----------------------------------------------------------------------
    async def _watch_set(self) -> tuple[dict[str, _Owner], list[str]]:
        rows = await self._db.read(
            lambda c: projects_db.list_projects(
                c, status=[], query=None, order="name", include_missing=False, limit=1_000_000,
                offset=0, max_bytes=None,  # every project, however long their descriptions
            )
        )  # fmt: skip
        groups = list(self._scanner.groups or self._scanner.roots)
        projects = [(p.path, p.branch) for p in rows]
        return await asyncio.to_thread(_owners_for, groups, projects), groups

    async def _apply_watch_set(self, *, catch_up: bool = True) -> None:
        """Watch exactly the current set. The old watches go first, so the count never
        doubles (a limit of 8,192 watches must hold 1,000 projects, not half as many); a change
        made while the set was swapped is caught by one rescan right after."""
        owners, groups = await self._watch_set()
        paths = list(owners)
        loop = asyncio.get_running_loop()
        old, self._watchers = self._watchers, []
        await asyncio.to_thread(_close_all, old)
        notifiers, mode, problem = await asyncio.to_thread(self._open, paths, loop)
        self._watchers = notifiers
        self._owners = owners
        self._groups = set(groups)  # as the scanner knew them (unwatchable names included)
        self._mode, self._problem = mode, problem
        log.info("watching", mode=mode, paths=len(paths), problem=problem)
        if catch_up and old:
            self._catching_up = True
            self._wake.set()

    def _open(
        self, paths: list[str], loop: asyncio.AbstractEventLoop
    ) -> tuple[list[_Notifier], Mode, str | None]:
        """inotify for as many paths as the OS (and max_watches) allows, polling for the rest."""
        fit = len(paths) if not self._max_watches else min(len(paths), self._max_watches)
        problem = None if fit == len(paths) else f"max_watches={self._max_watches} in the config"
        for _attempt in range(20):
            live = [p for p in paths[:fit] if os.path.isdir(p)]
            try:
                notifier = _Notifier(
                    live, polling=False, poll_delay_ms=0, deliver=self._on_changes, loop=loop
                )
                break
            except OSError as e:
                index = _failed_path(e, live)
                if index is None or (index == 0 and _watch_limit_hit(e)):
                    return self._poll_only(paths, loop, f"the OS refused file watches: {e}")
                refused = paths.index(live[index])
                if _watch_limit_hit(e):
                    problem = f"the OS refused more file watches: {e}"
                    fit = refused  # the ones before it fitted
                else:
                    paths = paths[:refused] + paths[refused + 1 :]  # unwatchable: skip it
                    fit = min(fit, len(paths))
        else:
            return self._poll_only(paths, loop, problem or "cannot set up file watches")
        rest = [p for p in paths[fit:] if os.path.isdir(p)]
        if not rest:
            return [notifier], "watching", None
        poller = _Notifier(
            rest, polling=True, poll_delay_ms=self._poll_ms, deliver=self._on_changes, loop=loop
        )
        log.warning("degraded: polling what the OS would not watch", polled=len(rest), why=problem)
        return [notifier, poller], "degraded", problem

    def _poll_only(
        self, paths: list[str], loop: asyncio.AbstractEventLoop, problem: str
    ) -> tuple[list[_Notifier], Mode, str | None]:
        poller = _Notifier(
            [p for p in paths if os.path.isdir(p)], polling=True, poll_delay_ms=self._poll_ms,
            deliver=self._on_changes, loop=loop,
        )  # fmt: skip
        log.warning("no file watches available: polling everything", why=problem)
        return [poller], "polling", problem

    # --- changes ----------------------------------------------------------------------------
    def _on_changes(self, changes: set[tuple[int, str]]) -> None:
        """On the loop: map each changed path to the project or folder it belongs to."""
        now = time.monotonic()
        for _change, path in changes:
            owner = self._owners.get(path) or self._owners.get(os.path.dirname(path))
            if owner is None:
                continue
            self._due[owner] = now + self._settle_s
        self._wake.set()

    async def _run(self) -> None:
        while True:
            timeout = None
            if self._due:
                timeout = max(0.0, min(self._due.values()) - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self._rebuild.is_set():
                self._rebuild.clear()
                await self._apply_watch_set()
            if self._catching_up:
                self._catching_up = False
                try:
                    await self._scanner.scan_all()
                except Exception:
                    log.exception("the catch-up scan after a new watch set failed")
            await self._rescan_due()

    async def _rescan_due(self) -> None:
        now = time.monotonic()
        due = [o for o, t in self._due.items() if t <= now]
        if not due:
            return
        ready = []
        for owner in due:
            if owner.git_dir and _git_busy(owner.git_dir):
                since = self._held_since.setdefault(owner, now)
                if now - since < _LOCK_HOLD_MAX_S:
                    self._due[owner] = now + 0.05  # git is busy: look again shortly
                    continue
            self._held_since.pop(owner, None)
            del self._due[owner]
            ready.append(owner)
        projects = [o.path for o in ready if o.kind == "project"]
        groups = [o.path for o in ready if o.kind == "group"]
        if self._on_project_change is not None:
            for path in projects:
                self._on_project_change(path)
        try:
            if groups:
                await self._scanner.scan_folders(groups)
            if projects:
                await self._scanner.scan_projects(projects)
        except Exception:
            log.exception("rescan after a change failed", projects=projects, folders=groups)


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False  # a folder name from another encoding: the periodic rescan covers it
    return True


def _close_all(notifiers: Iterable[_Notifier]) -> None:
    for notifier in notifiers:
        notifier.close()


def _git_busy(git_dir: str) -> bool:
    """git holds index.lock while it rewrites the index (commit, checkout, rebase…): one stat
    of a local file, cheap enough for the loop."""
    return os.path.exists(os.path.join(git_dir, "index.lock"))


def _owners_for(
    groups: Iterable[str], projects: Iterable[tuple[str, str | None]]
) -> dict[str, _Owner]:
    """Every folder to watch, and whom a change there concerns. Grouping folders come first so
    that, when the OS limit is hit, what shows new projects is watched and the rest polled."""
    owners: dict[str, _Owner] = {}
    for group in groups:
        if _utf8(group):
            owners[group] = _Owner("group", group)
    for path, branch in projects:
        located = gitmeta.locate(path)
        git_dir = located[1] if located else None
        owner = _Owner("project", path, git_dir)
        owners.setdefault(path, owner)
        if located is None:
            continue
        _kind, git_dir, common_dir = located
        folders = [git_dir]
        heads = os.path.join(common_dir, "refs", "heads")
        if branch and "/" in branch:
            heads = os.path.join(heads, os.path.dirname(branch))
        folders.append(heads)
        for folder in folders:
            owners.setdefault(folder, owner)
    return owners
