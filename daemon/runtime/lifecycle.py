"""The daemon from start to exit: one class owns startup → serve → graceful shutdown.

Order matters and is the promise made to clients: the socket is bound first and answers
`daemon.status` (starting, migrating) while migrations run; other calls meanwhile get
`data.kind = starting`. On SIGTERM/SIGINT: stop accepting, let in-flight requests finish (or
answer them `shutting_down`), commit everything queued, checkpoint the WAL, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog

from daemon import __version__
from daemon.domain import agents, modules
from daemon.domain.app import App
from daemon.domain.documents import upkeep
from daemon.domain.events.bus import EventBus
from daemon.domain.jobs.service import JobService
from daemon.domain.projects.row import MOVED, PROJECTS, RETURNED
from daemon.domain.quality.service import QualityService
from daemon.domain.work import claims
from daemon.platform import launchd, memory
from daemon.platform.systemd import Notifier, activation_socket
from daemon.rpc import openrpc
from daemon.rpc.dispatcher import Dispatcher, State
from daemon.rpc.registry import Registry
from daemon.rpc.server import Limits, Server
from daemon.runtime import daemon_methods, db_methods, exit_guard, start_failure
from daemon.runtime.backups import BackupService, backup_job
from daemon.runtime.care import CareService
from daemon.runtime.config import Config, Paths, dev_root_warnings
from daemon.runtime.maintenance import maintenance_job, retention_job
from daemon.runtime.scanner import Scanner
from daemon.runtime.scheduler import Scheduler
from daemon.runtime.startup import (
    InstanceLock,
    bind_socket,
    check_data_folders,
    damaged_database,
    private_dir,
    unlink_socket,
)
from daemon.runtime.watcher import Watcher
from daemon.store import backup as backup_files
from daemon.store import migrations as migrations_mod
from daemon.store.clock import utc_now
from daemon.store.database import Database
from daemon.store.events import Event
from daemon.store.events_catalogue import EventKind
from daemon.store.migrations import Migration

log = structlog.get_logger("pm.daemon")

FILE_CHECK_S = 2.0  # how often the daemon checks that its database file is still there

# A project new, changed, moved or back is assessed again; each event says where it is now.
_QUALITY_TRIGGERS: dict[str, EventKind[Any]] = {
    kind.name: kind for kind in (PROJECTS.created, PROJECTS.updated, MOVED, RETURNED)
}


class Daemon:
    def __init__(
        self,
        config: Config,
        paths: Paths,
        *,
        migrations: list[Migration] | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> None:
        self.config = config
        self.paths = paths
        self._migrations = migrations
        self._env = env
        self.state: State = "starting"
        self.stage: start_failure.Stage = "data_dir"  # what a start-up failure interrupted
        self.started_at = utc_now()
        self._started = time.monotonic()
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._signals = 0
        self.socket_activated = False
        self._socket_identity: tuple[int, int] | None = None  # of the socket file we bound
        self._notifier = Notifier(env)
        self.bus = EventBus()
        self.db = Database(
            paths.db_path,
            synchronous=config.synchronous,
            busy_timeout_ms=config.busy_timeout_ms,
            readers=config.readers,
            batch_max=config.write_batch_max,
            queue_max=config.write_queue_max,
            busy_wait_s=config.busy_wait_ms / 1000,
            publish=self.bus.publish,
        )
        self.db_started = False
        self.jobs = JobService(self.db, paths.data_dir)
        self.scheduler = Scheduler(
            self.jobs, concurrency=config.job_concurrency, retries=config.job_retries
        )
        self.scheduler.register(
            "maintenance", maintenance_job(self.db), config.schedule.maintenance
        )
        self.scheduler.register(
            "retention",
            retention_job(self.db, config.event_retention_days, config.event_retention_max),
            config.schedule.retention,
        )
        self.backups = BackupService(
            self.db,
            paths,
            self._shipped,
            keep_last=config.backup_keep_last,
            keep_weeks=config.backup_keep_weeks,
            on_swapped=self._database_swapped,
        )
        self.scheduler.register("backup", backup_job(self.backups), config.schedule.backup)
        self.quality = QualityService(self.db, weights=config.quality_weights)
        self.scheduler.register(
            "quality_scan",
            self.quality.run_job,
            config.schedule.quality,
            project_of=self.quality.project_of,
        )
        self.bus.listeners.append(self._projects_changed)
        self.scanner = Scanner(
            self.db,
            roots=[paths.dev_root],
            exclude=[paths.data_dir],
            max_depth=config.scan_max_depth,
            follow_symlinks=config.follow_symlinks,
            threads=config.scan_threads,
            own_handles=config.own_handles,
        )
        self.watcher = Watcher(
            self.scanner,
            self.db,
            settle_s=config.settle_ms / 1000,
            poll_interval_s=config.poll_interval_s,
            max_watches=config.max_watches,
            on_project_change=self._quality_later,
        )
        self._background: asyncio.Task[None] | None = None
        self._notes: list[str] = []  # what db.health warns about the file itself
        self._first_scan = False
        self.care = CareService(
            self.db,
            paths,
            self.backups,
            self._shipped,
            roots=self.scanner.roots,
            max_message_bytes=config.max_message_bytes,
        )
        self.app = App(self.db, self.bus, data_dir=paths.data_dir, roots=[paths.dev_root])
        self.app.work = config.work
        self.app.scheduling = self.scheduler
        self.app.quality = self.quality
        self.app.scanner = self.scanner
        upkeep.attach(self.app, self.scanner.listeners)  # instruction files indexed on scans
        # The methods: the daemon's own (daemon.*, db.*) see its parts; the domain's the App.
        self.registry = Registry()
        for runtime_module in (daemon_methods, db_methods):
            runtime_module.methods.bind(self.registry, self)
        for module in modules.MODULES:
            module.methods.bind(self.registry, self.app)
        self._discover: dict[str, Any] | None = None
        self.server = Server(
            Dispatcher(self.registry, lambda: self.state, config.max_batch),
            Limits(
                max_message_bytes=config.max_message_bytes,
                max_output_buffer_bytes=config.max_output_buffer_bytes,
                max_connections=config.max_connections,
                max_inflight=config.max_inflight_per_connection,
                idle_timeout_s=config.idle_timeout_s,
            ),
        )

    # --- what daemon.status reports ---------------------------------------------------
    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self._started

    def discover_document(self) -> dict[str, Any]:
        """rpc.discover's OpenRPC document, made once: the registry does not change."""
        if self._discover is None:
            self._discover = openrpc.document(self.registry, version=__version__)
        return self._discover

    def request_shutdown(self, reason: str) -> None:
        if not self._stop.is_set():
            log.info("shutdown requested", reason=reason)
            self._stop_reason = reason
            self._stop.set()

    # --- the run ----------------------------------------------------------------------
    async def run(self) -> int:
        """Serve until asked to stop. Raises StartupError/MigrationError when it cannot start."""
        paths = self.paths
        private_dir(paths.data_dir, what="data directory", fix_mode=True)
        private_dir(paths.db_dir, what="database directory", fix_mode=True)
        check_data_folders(paths)
        self.stage = "instance"
        lock = InstanceLock(paths.lock_path)
        lock.acquire()
        try:
            code = await self._run_locked()
            exit_guard.arm(code)  # stop means stopped, even with a thread stuck in a read
            return code
        finally:
            lock.release()

    async def _run_locked(self) -> int:
        self.stage = "socket"
        sock = launchd.activation_socket()  # macOS's LaunchAgent, then systemd's, then our own
        if sock is None:
            sock = activation_socket()
        if sock is not None:
            self.socket_activated = True
            self.paths = _with_socket(self.paths, str(sock.getsockname()))
            sock.setblocking(False)
        else:
            private_dir(
                os.path.dirname(self.paths.socket_path), what="socket directory", fix_mode=False
            )
            sock = bind_socket(self.paths.socket_path)
        self._socket_identity = _identity(self.paths.socket_path)
        await self.server.serve(sock)
        self._install_signals()
        log.info(
            "listening",
            socket=self.paths.socket_path,
            activated=self.socket_activated,
            pid=os.getpid(),
            version=__version__,
        )
        try:
            self.stage = "database"
            await self._open_database()
            if not self._stop.is_set():
                await self.scheduler.start()  # closes what a previous run left unfinished
                self.state = "ready"
                self.stage = "serving"
                start_failure.clear(self.paths.socket_path, self._env)
                self._notifier.ready(f"ready; socket {self.paths.socket_path}")
                log.info("ready", schema_version=self.db.schema_version)
                loop = asyncio.get_running_loop()
                watchdog = loop.create_task(self._watchdog())
                guard = loop.create_task(self._guard_database_file(), name="pm-file-guard")
                trimmer = loop.create_task(memory.keep_trimmed(), name="pm-malloc-trim")
                self._background = loop.create_task(self._keep_projects(), name="pm-projects")
                leases = loop.create_task(claims.keep_leases_swept(self.app), name="pm-leases")
                stale = loop.create_task(
                    agents.keep_swept(self.app, self.config.agent_stale_s), name="pm-agents"
                )
                await self._stop.wait()
                for task in (watchdog, guard, trimmer, leases, stale):
                    task.cancel()
        finally:
            await self._shut_down()
        return 0

    def _shipped(self) -> list[Migration]:
        return self._migrations if self._migrations is not None else migrations_mod.load()

    async def _open_database(self) -> None:
        """Check the file (never touching a damaged one), back up before migrating, migrate,
        open the writer and readers."""
        paths = self.paths
        newest = await asyncio.to_thread(_refuse_damaged, paths)
        if newest is not None:
            note = (
                f"the database was created new at start although backups exist (the newest is "
                f"{newest}); if the old one was deleted by mistake: pm backup restore {newest}"
            )
            log.warning("new database although backups exist", backup=newest)
            self._notes.append(note)
        shipped = self._shipped()

        def before(pending: list[Migration]) -> None:
            self.state = "migrating"
            self._notifier.status("backing up before migrating")
            made = backup_files.take(
                paths.db_path,
                paths.backups_dir,
                datetime.now(UTC),
                f"before-migration-{pending[0].version:04d}",
            )
            log.info("backed up before migrating", backup=made.name, pending=len(pending))

        def on_step(migration: Migration) -> None:
            self.state = "migrating"
            self._notifier.status(f"migrating: {migration.filename}")
            log.info("applying migration", migration=migration.filename)

        applied = await asyncio.to_thread(self.db.migrate, shipped, on_step, before)
        if applied:
            log.info("migrations applied", count=len(applied), version=self.db.schema_version)
        await self.db.start()
        self.db_started = True
        self.bus.attach(self.db)
        # A file imported or restored offline (`pm db import` with no daemon) has its rows but
        # not their full-text index: checked (two counts), rebuilt if need be, in the background.
        asyncio.get_running_loop().create_task(upkeep.after_swap(self.app))

    def database_warnings(self) -> list[str]:
        found = list(self._notes) + dev_root_warnings(self.paths, self._env)
        state = self.db.file_state() if self.db_started else "ok"
        if state == "missing":
            found.append(
                "the database file was deleted while the daemon ran; it is being written out "
                "again from the open connection"
            )
        elif state == "replaced":
            found.append(
                f"the database file {self.db.path} was replaced by another file while the "
                "daemon ran; the daemon still writes to the one it opened. `pm daemon restart` "
                "makes the new file live (what was written since goes with the old one; to "
                "bring a backup back, use `pm backup restore NAME` instead)"
            )
        return found

    async def _guard_database_file(self) -> None:
        """Someone may delete the database file under the running daemon (an `rm` in the
        wrong folder): the open connections still hold every byte, so it is written out
        again at once rather than lost when the daemon stops."""
        told = False
        while True:
            await asyncio.sleep(FILE_CHECK_S)
            state = self.db.file_state()
            if state == "missing":
                log.error("the database file was deleted; writing it out again", path=self.db.path)
                try:
                    await self.backups.rescue_deleted()
                except Exception:
                    log.exception("could not write the deleted database file out again")
                else:
                    log.warning("the deleted database file was written out again")
            elif state == "replaced" and not told:
                log.error("the database file was replaced under the daemon", path=self.db.path)
                told = True
            if self._socket_identity is not None:
                here = await asyncio.to_thread(_identity, self.paths.socket_path)
                if here != self._socket_identity:
                    # Nobody can reach this daemon any more (its socket was deleted, or another
                    # daemon's replaced it): stopping lets the next client start one it can.
                    log.error("the socket file is gone or replaced; stopping",
                              socket=self.paths.socket_path)  # fmt: skip
                    self.request_shutdown("socket file gone")
                    return

    def _database_swapped(self, why: str) -> None:
        """Another file is live (restore, reset, import, repair): what it says about projects
        is checked against the disk at once."""
        self._notes.clear()  # a note about the previous file no longer applies
        asyncio.get_running_loop().create_task(upkeep.after_swap(self.app))
        asyncio.get_running_loop().create_task(self._scan_logged(f"rescan after {why}"))

    async def _keep_projects(self) -> None:
        """Know every project at once, then keep knowing: watch, and rescan periodically.
        A failure is logged and the next step still runs: the rest of the daemon goes on."""
        self._first_scan = True
        try:
            await self._scan_logged("projects scanned")
        finally:
            self._first_scan = False
        if self.config.schedule.quality != "off":
            try:
                # Scores for what was just found (unchanged projects are skipped), as a job.
                await self.scheduler.run_now("quality_scan")
            except Exception:
                log.exception("could not start the first quality scan")
        if self.config.watch:
            try:
                await self.watcher.start()
            except Exception:
                log.exception("file watching could not start; periodic rescans go on")
        interval = self.config.rescan_interval_s
        while interval > 0:
            await asyncio.sleep(interval)
            await self._scan_logged("periodic rescan")

    def _quality_later(self, path: str) -> None:
        """A changed project's quality is assessed again once it has settled, as a job.
        Not while the first scan after start-up runs (the full assessment after it covers
        every project), and not at all when quality scans are turned off."""
        if self._first_scan or self.config.schedule.quality == "off":
            return
        self.scheduler.defer(
            f"quality:{path}", "quality_scan", self.config.quality_settle_s, project=path
        )

    def _projects_changed(self, events: list[Event]) -> None:
        for event in events:
            kind = _QUALITY_TRIGGERS.get(event.type)
            if kind is not None:
                self._quality_later(kind.decode(event.data).path)

    async def _scan_logged(self, what: str) -> None:
        try:
            summary = await self.scanner.scan_all()
        except Exception:
            log.exception(f"{what} failed")
            return
        log.info(
            what,
            found=summary.found,
            new=summary.new,
            missing=summary.missing,
            errors=len(summary.errors),
            ms=summary.duration_ms,
        )

    async def _shut_down(self) -> None:
        self.state = "stopping"
        self._notifier.stopping("stopping")
        log.info("stopping", reason=self._stop_reason or "startup failed")
        if not self.socket_activated:
            unlink_socket(self.paths.socket_path)
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
        log.debug("stopping: background work cancelled")
        await self.watcher.close()
        self.scanner.close()
        self.quality.close()
        log.debug("stopping: watcher and scanners closed")
        grace = self.config.stop_timeout_s * 0.6
        await self.server.close(grace)
        log.debug("stopping: connections closed")
        await self.scheduler.close(timeout=self.config.stop_timeout_s * 0.2)
        log.debug("stopping: scheduler closed")
        if self.db_started:
            await self.db.close(timeout=self.config.stop_timeout_s * 0.3)
        log.info("stopped")

    async def _watchdog(self) -> None:
        interval = self._notifier.watchdog_interval_s
        if interval is None:
            return
        while True:
            self._notifier.watchdog()  # from the loop itself: a stuck loop stops the pings
            await asyncio.sleep(interval)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: exiting now", signal=sig.name)
            with contextlib.suppress(Exception):
                logging_flush()
            os._exit(128 + sig.value)
        self.request_shutdown(sig.name)


def _refuse_damaged(paths: Paths) -> str | None:
    """`quick_check` at start: a damaged file stops the daemon (and is left as it is).
    No file at all while good backups exist: the newest one's name (the user is told)."""
    if os.path.exists(paths.db_path):
        found = backup_files.problems(paths.db_path, quick=True)
        if found:
            raise damaged_database(paths.db_path, paths.backups_dir, found)
        return None
    for candidate in backup_files.listing(paths.backups_dir, with_versions=False):
        if candidate.ok:
            return candidate.name
    return None


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of a file, None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _with_socket(paths: Paths, socket_path: str) -> Paths:
    return msgspec.structs.replace(paths, socket_path=socket_path)


def logging_flush() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
