"""Watching the Dev folder: one inotify watcher for everything, never a recursive watch.

What is watched: the Dev roots and the grouping folders down to the discovery depth (a
project appearing, vanishing or being renamed shows there), and per project a small fixed set
— its folder, its git folder, the folder of its current branch's ref (a linked worktree adds
its own admin folder). So the number of OS watches grows with projects, not with files.

Events settle briefly per project or folder, are held while `index.lock` exists (git is in
the middle of something), then the scanner rescans just that project or folder. When the OS
refuses watches (ENOSPC: max_user_watches; EMFILE: max_user_instances) the paths that did
not fit are polled instead, the daemon keeps serving, and `status()` says what to raise.

The watcher does not die quietly. watchfiles cannot report a name that is not UTF-8 (git can
commit one): any event on such an entry of a watched folder — created, changed, even opened
by a scan — fails its thread for good. So a folder that holds such a name, or whose own path
is one, is polled instead (a stat of the folder: its mtime moves when an entry comes, goes or
is renamed), until the name is gone; the watch set is checked for them each time it is built.
When the thread fails anyway (a name that appeared since), the failure is recorded and the
watcher is built again — at once the first time, then after a growing delay (up to a minute)
while failures follow each other — and a full rescan catches what was missed meanwhile.
`status()` reports what is true now: a watcher that is not running is never "watching".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import msgspec
import structlog
from watchfiles._rust_notify import RustNotify

from daemon.domain.projects import sql as projects_db
from daemon.domain.projects.scanning import ScanSummary
from daemon.runtime.scanner import Scanner
from daemon.runtime.watch_set import (
    Owner,
    count_inotify_watches,
    failed_path,
    git_busy,
    owners_for,
    printable,
    read_int,
    stamps,
    unwatchable_folders,
    utf8,
    watch_limit_hit,
)
from daemon.store.cancellation import wait_set
from daemon.store.clock import utc_now
from daemon.store.database import Database

__all__ = ["Mode", "WatchStatus", "Watcher", "count_inotify_watches"]

log = structlog.get_logger("pm.watcher")

Mode = Literal["off", "starting", "watching", "degraded", "polling", "restarting"]
_LOCK_HOLD_MAX_S = 30.0  # a stale index.lock must not stop updates for ever
_DEBOUNCE_MS, _STEP_MS, _TIMEOUT_MS = 50, 10, 1000
RESTART_DELAYS_S = (0.0, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)  # after 1, 2, 3… failures in a row
_IN_A_ROW_S = 60.0  # a failure within this of the previous one counts as "in a row"
_NOT_UTF8_FIX = (
    "rename the file or folder whose name is not valid UTF-8 (for example with convmv, or mv "
    "in a shell); the folder is watched again once the name is gone"
)


class WatchStatus(msgspec.Struct, kw_only=True):
    mode: Mode  # "restarting": not watching now, it failed and is being built again
    watched_paths: int  # given to inotify
    polled_paths: int  # polled every poll_interval_s (did not fit, or unwatchable)
    os_watches: int | None  # inotify watches this process holds (Linux /proc)
    max_user_watches: int | None
    problem: str | None
    fix: str | None  # the exact command (or action) that lifts the problem
    unwatchable: list[str]  # folders polled because a name there is not UTF-8
    failures: int  # times the file watcher failed (and was restarted) since the daemon started
    last_failure: str | None
    last_failure_at: str | None  # ISO 8601 UTC


class _Notifier:
    """One RustNotify on its own thread; changes are handed to the loop in batches, and a
    failure is reported to `failed` on the loop (a RustNotify that failed stays failed)."""

    def __init__(
        self,
        paths: list[str],
        *,
        polling: bool,
        poll_delay_ms: int,
        deliver: Callable[[set[tuple[int, str]]], None],
        failed: Callable[[_Notifier, str], None],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        # May raise OSError when the OS refuses a watch: the caller decides what to poll.
        self._notify = RustNotify(paths, False, polling, poll_delay_ms, False, True)
        self.paths = paths
        self.polling = polling
        self._stop = threading.Event()
        self._deliver = deliver
        self._failed = failed
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="pm-watch", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                changes = self._notify.watch(_DEBOUNCE_MS, _STEP_MS, _TIMEOUT_MS, self._stop)
                if changes == "stop":
                    return
                if isinstance(changes, set) and changes:
                    self._loop.call_soon_threadsafe(self._deliver, changes)
        except RuntimeError as e:
            if self._loop.is_closed():
                return  # the daemon is gone
            self._report(e)
        except Exception as e:
            self._report(e)
        finally:
            self._notify.close()

    def _report(self, error: Exception) -> None:
        log.warning("the file watcher thread failed", error=str(error))
        if not self._stop.is_set():
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                self._loop.call_soon_threadsafe(self._failed, self, str(error))

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
        restart_delays_s: Sequence[float] = RESTART_DELAYS_S,
    ) -> None:
        self._scanner = scanner
        self._db = db
        self._settle_s = settle_s
        self._poll_s = poll_interval_s
        self._max_watches = max_watches
        self._on_project_change = on_project_change  # any change, even one no fact shows
        self._restart_delays = tuple(restart_delays_s) or (0.0,)
        self._owners: dict[str, Owner] = {}
        self._watchers: list[_Notifier] = []
        self._groups: set[str] = set()
        self._catching_up = False
        self._due: dict[Owner, float] = {}  # owner → when it may be rescanned
        self._held_since: dict[Owner, float] = {}
        self._wake = asyncio.Event()
        self._rebuild = asyncio.Event()
        self._mode: Mode = "off"
        self._limit_problem: str | None = None  # the OS (or max_watches) refused watches
        self._task: asyncio.Task[None] | None = None
        # Failures, and what they left unwatchable
        self._failures = 0
        self._in_a_row = 0
        self._last_failure: str | None = None
        self._last_failure_at: str | None = None
        self._last_failure_mono: float | None = None
        self._restart_at: float | None = None  # set while the watcher waits to be rebuilt
        self._missed = False  # changes may have gone unseen: rescan everything once rebuilt
        self._unwatchable: dict[str, str] = {}  # folder → why it is polled instead
        self._stat_polled: dict[str, Owner] = {}
        self._stamps: dict[str, tuple[int, int] | None] = {}
        self._next_poll = 0.0
        scanner.listeners.append(self._after_scan)

    # --- status -----------------------------------------------------------------------------
    def _running(self) -> bool:
        return (
            self._restart_at is None
            and self._task is not None
            and not self._task.done()
            and all(w.running for w in self._watchers)
        )

    def status(self) -> WatchStatus:
        """What is true now: a watcher whose thread is gone is not "watching", whatever the
        mode last set says."""
        watched = sum(len(w.paths) for w in self._watchers if not w.polling)
        polled = sum(len(w.paths) for w in self._watchers if w.polling) + len(self._stat_polled)
        limit = read_int("/proc/sys/fs/inotify/max_user_watches")
        mode = self._mode
        problems: list[str] = []
        fixes: list[str] = []
        if mode in ("watching", "degraded", "polling") and not self._running():
            mode = "restarting"
        if mode == "restarting":
            watched = 0
            wait = max(0.0, (self._restart_at or time.monotonic()) - time.monotonic())
            problems.append(
                f"the file watcher failed ({self._last_failure or 'its thread ended'}); it "
                f"is restarted in {wait:.0f} s, and a full rescan catches what it missed"
            )
            fixes.append("none needed if it recovers; if it keeps failing: pm daemon restart")
        if self._limit_problem:
            problems.append(self._limit_problem)
            wanted = max(524288, (limit or 0) * 2)
            fixes.append(
                f"sudo sysctl fs.inotify.max_user_watches={wanted} "
                "fs.inotify.max_user_instances=1024 "
                "(and put the same in /etc/sysctl.d/90-pm-agent.conf to keep it)"
            )
        if self._stat_polled:
            shown = "; ".join(
                f"{printable(f)}{': ' + why if why else ''}"
                for f, why in sorted(self._unwatchable.items())[:3]
            )
            problems.append(
                f"{len(self._stat_polled)} folder(s) are polled instead of watched: a name "
                f"there is not valid UTF-8, which the file watcher cannot report ({shown})"
            )
            fixes.append(_NOT_UTF8_FIX)
        return WatchStatus(
            mode=mode,
            watched_paths=watched,
            polled_paths=polled,
            os_watches=count_inotify_watches(),
            max_user_watches=limit,
            problem="; ".join(problems) or None,
            fix="; ".join(fixes) or None,
            unwatchable=sorted(printable(f) for f in self._stat_polled),
            failures=self._failures,
            last_failure=self._last_failure,
            last_failure_at=self._last_failure_at,
        )

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Watch, and keep watching; never raises (a failure is recorded and retried)."""
        self._mode = "starting"
        await self._apply_watch_set(catch_up=False)
        self._rebuild.clear()  # the scans before this set are already in it
        if self._restart_at is not None:
            self._rebuild.set()  # it failed: built again when the delay is over
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
        changed = (
            summary.new or summary.missing or summary.moved or summary.returned or summary.merged
        )
        # A new folder that is not a project yet (`mkdir x`, `git init` later) is a grouping
        # folder: it must be watched too, or the project that appears in it goes unseen.
        if changed or self._groups_now() != self._groups:
            self._rebuild.set()
            self._wake.set()

    def _groups_now(self) -> set[str]:
        """The folders watched for projects appearing: the scanner's grouping folders, or its
        roots until a walk found any (compared as built, or a root with no groups — one that
        vanished — would rebuild the set after every rescan, and rescan after every rebuild)."""
        return set(self._scanner.groups or self._scanner.roots)

    # --- failures ---------------------------------------------------------------------------
    def _notifier_failed(self, notifier: _Notifier, error: str) -> None:
        """On the loop: a watcher thread failed. Record it and build the watch set again."""
        if notifier in self._watchers:  # else an old one, already replaced
            self._failed(error)

    def _failed(self, error: str) -> None:
        now = time.monotonic()
        self._failures += 1
        recent = self._last_failure_mono is not None and now - self._last_failure_mono < _IN_A_ROW_S
        self._in_a_row = self._in_a_row + 1 if recent else 0
        self._last_failure, self._last_failure_mono = error, now
        self._last_failure_at = utc_now()
        delay = self._restart_delays[min(self._in_a_row, len(self._restart_delays) - 1)]
        self._restart_at = now + delay
        self._missed = True
        self._rebuild.set()
        self._wake.set()
        log.warning(
            "file watching failed; it restarts", error=error, in_s=delay, failures=self._failures
        )

    # --- the watch set ----------------------------------------------------------------------
    async def _watch_set(self) -> tuple[dict[str, Owner], list[str]]:
        rows = await self._db.read(projects_db.present)
        groups = sorted(self._groups_now())
        projects = [(p.path, p.branch) for p in rows]
        return await asyncio.to_thread(owners_for, groups, projects), groups

    async def _apply_watch_set(self, *, catch_up: bool = True) -> None:
        """Watch exactly the current set. The old watches go first, so the count never
        doubles (a limit of 8,192 watches must hold 1,000 projects, not half as many); a change
        made while the set was swapped is caught by one rescan right after."""
        old, self._watchers = self._watchers, []
        try:
            owners, groups = await self._watch_set()
            await asyncio.to_thread(_close_all, old)
            unwatchable = await asyncio.to_thread(unwatchable_folders, owners)
            # A grouping folder whose own name is not UTF-8 is not polled either: no project
            # in it can be tracked (the scan reports each one), so there is nothing to see.
            polled = {
                p: o for p, o in owners.items()
                if p in unwatchable and (o.kind == "project" or utf8(p))
            }  # fmt: skip
            paths = [p for p in owners if p not in unwatchable]
            loop = asyncio.get_running_loop()
            notifiers, mode, problem = await asyncio.to_thread(self._open, paths, loop)
            # A polled folder's first stamp, like a watch, comes before the catch-up rescan:
            # what changes after that rescan looked is then seen by the next poll.
            kept = {p: self._stamps[p] for p in polled if p in self._stamps}
            fresh = await asyncio.to_thread(stamps, [p for p in polled if p not in kept])
        except Exception as e:
            log.exception("could not set up file watching")
            self._failed(f"{type(e).__name__}: {e}")
            return
        self._watchers = notifiers
        self._owners = owners
        self._unwatchable = {p: why for p, why in unwatchable.items() if p in polled}
        self._stat_polled = polled
        self._stamps = kept | fresh
        self._groups = set(groups)  # as the scanner knew them (unwatchable names included)
        if mode == "watching" and polled:
            mode = "degraded"
        self._mode, self._limit_problem = mode, problem
        log.info("watching", mode=mode, paths=len(paths), polled=len(polled), problem=problem)
        if (catch_up and old) or self._missed:
            self._missed = False
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
                notifier = self._notifier(live, polling=False, loop=loop)
                break
            except OSError as e:
                index = failed_path(e, live)
                if index is None or (index == 0 and watch_limit_hit(e)):
                    return self._poll_only(paths, loop, f"the OS refused file watches: {e}")
                refused = paths.index(live[index])
                if watch_limit_hit(e):
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
        poller = self._notifier(rest, polling=True, loop=loop)
        log.warning("degraded: polling what the OS would not watch", polled=len(rest), why=problem)
        return [notifier, poller], "degraded", problem

    def _poll_only(
        self, paths: list[str], loop: asyncio.AbstractEventLoop, problem: str
    ) -> tuple[list[_Notifier], Mode, str | None]:
        poller = self._notifier([p for p in paths if os.path.isdir(p)], polling=True, loop=loop)
        log.warning("no file watches available: polling everything", why=problem)
        return [poller], "polling", problem

    def _notifier(
        self, paths: list[str], *, polling: bool, loop: asyncio.AbstractEventLoop
    ) -> _Notifier:
        return _Notifier(
            paths, polling=polling, poll_delay_ms=int(self._poll_s * 1000) if polling else 0,
            deliver=self._on_changes, failed=self._notifier_failed, loop=loop,
        )  # fmt: skip

    # --- changes ----------------------------------------------------------------------------
    def _on_changes(self, changes: set[tuple[int, str]]) -> None:
        """On the loop: map each changed path to the project or folder it belongs to."""
        now = time.monotonic()
        for _change, path in changes:
            owner = self._owners.get(path) or self._owners.get(os.path.dirname(path))
            if owner is None:
                continue
            self._due[owner] = now + self._settle_s
            if owner.kind == "project" and path == owner.path:
                # The project folder itself came or went (a move): the folder that held it is
                # rescanned in the same pass, so the move is seen as one.
                parent = self._owners.get(os.path.dirname(path))
                if parent is not None and parent.kind == "group":
                    self._due[parent] = now + self._settle_s
        self._wake.set()

    async def _poll_unwatchable(self) -> None:
        """A stat of each folder that cannot be watched: its mtime moves when an entry is
        added, removed or renamed there (a project appearing, moving, vanishing)."""
        now = time.monotonic()
        if not self._stat_polled or now < self._next_poll:
            return
        self._next_poll = now + self._poll_s
        now_stamps = await asyncio.to_thread(stamps, list(self._stat_polled))
        for folder, stamp in now_stamps.items():
            if folder in self._stamps and self._stamps[folder] != stamp:
                owner = self._stat_polled.get(folder)
                if owner is not None:
                    self._due[owner] = time.monotonic() + self._settle_s
                self._rebuild.set()  # the name may be gone: look, and watch it again
            self._stamps[folder] = stamp

    def _next_wake(self) -> float | None:
        moments = list(self._due.values())
        if self._restart_at is not None:
            moments.append(self._restart_at)
        if self._stat_polled:
            moments.append(self._next_poll)
        return max(0.0, min(moments) - time.monotonic()) if moments else None

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except Exception as e:  # a bug must not end watching quietly: record, go on
                log.exception("the file watcher's loop failed")
                self._failed(f"{type(e).__name__}: {e}")

    async def _step(self) -> None:
        await wait_set(self._wake, self._next_wake())
        self._wake.clear()
        if self._restart_at is not None and time.monotonic() >= self._restart_at:
            self._restart_at = None
        if self._rebuild.is_set() and self._restart_at is None:
            self._rebuild.clear()
            await self._apply_watch_set()
        if self._catching_up:
            self._catching_up = False
            try:
                await self._scanner.scan_all()
            except Exception:
                log.exception("the catch-up scan after a new watch set failed")
        await self._poll_unwatchable()
        await self._rescan_due()

    async def _rescan_due(self) -> None:
        now = time.monotonic()
        due = [o for o, t in self._due.items() if t <= now]
        if not due:
            return
        ready = []
        for owner in due:
            if owner.git_dir and git_busy(owner.git_dir):
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


def _close_all(notifiers: Iterable[_Notifier]) -> None:
    for notifier in notifiers:
        notifier.close()
