"""Scanning: find projects on disk, read their facts, and bring the database up to date.

One scan walks some roots (the Dev root, a grouping folder that changed, or single project
folders), compares what it finds with the stored projects in that scope, and writes the
differences through the writer — one operation per project, so one failing project fails
alone. A project whose fingerprint (a few stat calls) is unchanged is not analysed again.
Vanished projects are marked missing, never deleted; a new folder that carries the identity
of a vanished or missing project is that project, moved (its id and history are kept).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import structlog

from daemon.db import projects as projects_db
from daemon.db.database import Database
from daemon.db.projects import ScanRow
from daemon.projects import discovery, gitmeta, metadata
from daemon.projects.model import Candidate, Discovery, GitInfo
from daemon.services.scan_plan import Planner, Result, ScanIssue, ScanSummary, under

log = structlog.get_logger("pm.scanner")

Report = Callable[[str, int | None], None]  # message, percentage
_CHUNK = 16  # candidates per thread-pool task: enough to amortise the hand-off


def _light_git(path: str) -> GitInfo | None:
    """Where the repository is and what HEAD names: enough for the fingerprint."""
    located = gitmeta.locate(path)
    if located is None:
        return None
    kind, git_dir, common_dir = located
    head_ref = None
    try:
        with open(os.path.join(git_dir, "HEAD"), encoding="utf-8", errors="replace") as f:
            head = f.read(256).strip()
        if head.startswith("ref:"):
            head_ref = head[4:].strip()
    except OSError:
        pass
    return GitInfo(kind=kind, git_dir=git_dir, common_dir=common_dir, head_ref=head_ref)


def _unchanged(
    candidates: Sequence[Candidate], known: dict[str, str | None]
) -> tuple[list[Result], list[Candidate]]:
    """On one thread: which candidates still match their stored fingerprint. A few stat calls
    each, pure Python in between: spread over threads it only fights for the GIL."""
    same: list[Result] = []
    changed: list[Candidate] = []
    for cand in candidates:
        stored = known.get(cand.path)
        if stored is not None:
            try:
                fp = metadata.fingerprint(cand.path, _light_git(cand.path))
            except Exception:
                fp = None  # let the analysis say what is wrong
            if fp == stored:
                same.append(Result(cand, fp, None))
                continue
        changed.append(cand)
    return same, changed


def _analyze(
    candidates: Sequence[Candidate],
    now: datetime,
    own_handles: Sequence[str],
    env: dict[str, str],
) -> list[Result]:
    """On a pool thread: read everything about projects that changed (or are new)."""
    out = []
    for cand in candidates:
        try:
            git = gitmeta.read_git(cand.path, env=env)
            facts = metadata.analyze(cand, git, now=now, own_handles=own_handles)
            out.append(Result(cand, facts.fingerprint, facts))
        except Exception as e:  # a folder vanishing mid-scan, or a bug: one project only
            out.append(Result(cand, None, None, f"{type(e).__name__}: {e}"))
    return out


def _utf8(path: str) -> bool:
    """Paths are stored and sent as UTF-8; a folder name that is not (an old Latin-1 name,
    read back with surrogate escapes) cannot be, so it is reported instead of crashing."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _walk_projects(paths: Sequence[str], registered: set[str]) -> Discovery:
    """Each path as a project of its own (depth 0). A registered folder stays a project even
    when it holds neither git nor a manifest: the user said it is one."""
    found = discovery.walk(paths, max_depth=0, follow_symlinks=True, exclude=())
    have = {c.path for c in found.candidates}
    extra = []
    for path in paths:
        if path in registered and path not in have:
            try:
                st = os.stat(path)
            except OSError:
                continue  # gone: the scan marks it missing
            if os.path.isdir(path):
                extra.append(
                    Candidate(
                        path=path,
                        root=os.path.dirname(path),
                        reason="registered",
                        device=st.st_dev,
                        inode=st.st_ino,
                    )
                )
    return Discovery(
        candidates=sorted([*found.candidates, *extra], key=lambda c: c.path),
        groups=[],
        # A folder that vanished is a missing project, not a scan error.
        errors=[e for e in found.errors if os.path.lexists(e.path)],
    )


def _normal(paths: Sequence[str]) -> list[str]:
    return [os.path.normpath(p) for p in paths]  # pure string work: paths are absolute


class Scanner:
    def __init__(
        self,
        db: Database,
        *,
        roots: Sequence[str],
        exclude: Sequence[str],
        max_depth: int,
        follow_symlinks: bool,
        threads: int,
        own_handles: Sequence[str],
    ) -> None:
        self._db = db
        self.roots = [os.path.abspath(r) for r in roots]
        self._exclude = list(exclude)
        self._max_depth = max_depth
        self._follow = follow_symlinks
        self._own_handles = list(own_handles)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="pm-scan")
        self._lock = asyncio.Lock()
        self.groups: list[str] = []  # every grouping folder known from the scans (the watcher's)
        self.last_full_scan: ScanSummary | None = None
        self._now = datetime.now(UTC)  # the current scan's clock, for status by age
        self.listeners: list[Callable[[ScanSummary], None]] = []

    @property
    def follow_symlinks(self) -> bool:
        return self._follow

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def announce(self, summary: ScanSummary) -> None:
        """Tell listeners (the watcher) the set of projects changed outside a scan."""
        for listener in self.listeners:
            listener(summary)

    # --- scopes ---------------------------------------------------------------------------
    async def scan_all(self, report: Report | None = None) -> ScanSummary:
        """Every root, and every registered project."""
        summary = await self._scan(None, report)
        self.last_full_scan = summary
        return summary

    async def scan_folders(
        self, folders: Sequence[str], report: Report | None = None
    ) -> ScanSummary:
        """Grouping folders (or roots) that changed: what is below them, to the depth left."""
        return await self._scan(_normal(folders), report)

    async def scan_projects(
        self, paths: Sequence[str], report: Report | None = None
    ) -> ScanSummary:
        """Single project folders (depth 0): still a project, changed, or gone."""
        return await self._scan(_normal(paths), report, projects_only=True)

    # --- the scan -------------------------------------------------------------------------
    async def _scan(
        self, scope: list[str] | None, report: Report | None, *, projects_only: bool = False
    ) -> ScanSummary:
        async with self._lock:
            started = time.perf_counter()
            summary = ScanSummary(scope=scope or self.roots)
            say = report or (lambda message, pct: None)
            loop = asyncio.get_running_loop()
            rows = await self._db.read(projects_db.scan_rows)
            ignored = await self._db.read(projects_db.ignored_paths)
            found = await loop.run_in_executor(
                self._pool, self._discover, scope, projects_only, rows
            )
            in_scope = [r for r in rows if self._in_scope(r, scope, projects_only)]
            candidates = [c for c in found.candidates if c.path not in ignored and _utf8(c.path)]
            summary.errors += [
                ScanIssue(c.path.encode("utf-8", "replace").decode(), "the folder name is not "
                          "valid UTF-8; rename it to track it")
                for c in found.candidates if not _utf8(c.path)
            ]  # fmt: skip
            summary.found = len(candidates)
            summary.errors += [ScanIssue(e.path, e.error) for e in found.errors]
            say(f"found {len(candidates)} projects", 5)
            self._now = datetime.now(UTC)
            results = await self._analyze_all(candidates, rows, say)
            actions = Planner(self.roots, self._now).plan(results, in_scope, rows, summary)
            say(f"writing {len(actions)} changes", 90)
            outcomes = await asyncio.gather(
                *(self._db.write(a) for a in actions), return_exceptions=True
            )
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    summary.errors.append(ScanIssue("", f"could not store a change: {outcome}"))
            summary.duration_ms = round((time.perf_counter() - started) * 1000, 1)
            say("done", 100)
        for listener in self.listeners:
            listener(summary)
        return summary

    def _discover(
        self, scope: list[str] | None, projects_only: bool, rows: list[ScanRow]
    ) -> Discovery:
        registered = {r.path for r in rows if r.source == "registered"}
        if projects_only:
            return _walk_projects(scope or [], registered)
        if scope is None:
            found = discovery.walk(
                self.roots,
                max_depth=self._max_depth,
                follow_symlinks=self._follow,
                exclude=self._exclude,
            )
            self.groups = sorted(found.groups)
        else:
            parts = [
                discovery.walk(
                    [folder], max_depth=depth, follow_symlinks=self._follow, exclude=self._exclude
                )
                for folder in scope
                if (depth := self._depth_left(folder)) is not None
            ]
            found = Discovery(
                candidates=[c for d in parts for c in d.candidates],
                groups=[g for d in parts for g in d.groups],
                errors=[e for d in parts for e in d.errors if os.path.lexists(e.path)],
            )
            # What is known below the rescanned folders is replaced by what was found there.
            kept = [g for g in self.groups if not any(under(g, f) for f in scope)]
            self.groups = sorted({*kept, *found.groups})
        # Registered projects in scope that the walk did not find (outside the roots, or
        # folders with neither git nor a manifest) are looked at one by one.
        have = {c.path for c in found.candidates}
        extra = sorted(
            p for p in registered
            if p not in have and (scope is None or any(under(p, f) for f in scope))
        )  # fmt: skip
        if not extra:
            return found
        more = _walk_projects(extra, registered)
        return Discovery(
            candidates=found.candidates + more.candidates,
            groups=found.groups,
            errors=found.errors + more.errors,
        )

    def _depth_left(self, folder: str) -> int | None:
        for root in self.roots:
            if under(folder, root):
                below = os.path.relpath(folder, root)
                depth = 0 if below == "." else below.count(os.sep) + 1
                return max(0, self._max_depth - depth)
        return None

    def _in_scope(self, row: ScanRow, scope: list[str] | None, projects_only: bool) -> bool:
        if scope is None:
            return True
        if projects_only:
            return row.path in scope
        return any(under(row.path, folder) for folder in scope)

    async def _analyze_all(
        self, candidates: list[Candidate], rows: list[ScanRow], say: Report
    ) -> list[Result]:
        loop = asyncio.get_running_loop()
        known = {r.path: r.fingerprint for r in rows if r.present}
        results, changed = await loop.run_in_executor(self._pool, _unchanged, candidates, known)
        if not changed:
            return results
        env = dict(os.environ)
        chunks = [changed[i : i + _CHUNK] for i in range(0, len(changed), _CHUNK)]
        futures = [
            loop.run_in_executor(self._pool, _analyze, chunk, self._now, self._own_handles, env)
            for chunk in chunks
        ]
        for done, future in enumerate(asyncio.as_completed(futures), 1):
            results += await future
            if len(chunks) > 1:
                read = min(done * _CHUNK, len(changed))
                say(f"read {read} of {len(changed)} changed", 5 + 80 * done // len(chunks))
        return results
