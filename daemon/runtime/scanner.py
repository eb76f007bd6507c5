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
from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime
from functools import partial

import structlog

from daemon.domain.projects import discovery, gitmeta, merge, metadata, sql
from daemon.domain.projects.model import Candidate, Discovery, GitInfo
from daemon.domain.projects.row import Project
from daemon.domain.projects.scanning import Report, ScanIssue, ScanSummary
from daemon.platform import untrusted
from daemon.runtime.scan_plan import Planner, Result, under
from daemon.runtime.scan_pool import PoolExhausted, ScanPool
from daemon.store.database import Database

log = structlog.get_logger("pm.scanner")

_CHUNK = 16  # candidates per thread-pool task: enough to amortise the hand-off
# One project's fingerprint, or its analysis, must end within this; a read that does not (a
# FIFO, a network mount that stopped answering) is given up and the project recorded as failed.
PROJECT_TIME_BOUND_S = 10.0
# One discovery walk (a whole root, or a folder that changed) must end within this.
WALK_TIME_BOUND_S = 120.0


def _light_git(path: str) -> GitInfo | None:
    """Where the repository is and what HEAD names: enough for the fingerprint."""
    located = gitmeta.locate(path)
    if located is None:
        return None
    kind, git_dir, common_dir = located
    head_ref = None
    try:
        head = untrusted.read_text(
            os.path.join(git_dir, "HEAD"),
            within=git_dir,
            max_bytes=gitmeta.REF_MAX_BYTES,
            whole=False,
        ).strip()
        if head.startswith("ref:"):
            head_ref = head[4:].strip()
    except OSError:
        pass  # absent, refused (a link out, a FIFO): the analysis says what is wrong
    return GitInfo(kind=kind, git_dir=git_dir, common_dir=common_dir, head_ref=head_ref)


def _unchanged(cand: Candidate, known: dict[str, str | None]) -> Result | None:
    """On a pool thread: a Result when the candidate still matches its stored fingerprint,
    None when it must be read. A few stat calls each, pure Python in between: the pool runs
    all of them on one thread, since spread over threads they only fight for the GIL."""
    stored = known.get(cand.path)
    if stored is None:
        return None
    try:
        fp = metadata.fingerprint(cand.path, _light_git(cand.path))
    except Exception:
        return None  # let the analysis say what is wrong
    return Result(cand, fp, None) if fp == stored else None


def _analyze(
    cand: Candidate, now: datetime, own_handles: Sequence[str], env: dict[str, str]
) -> Result:
    """On a pool thread: read everything about a project that changed (or is new)."""
    try:
        git = gitmeta.read_git(cand.path, env=env)
        facts = metadata.analyze(cand, git, now=now, own_handles=own_handles)
        return Result(cand, facts.fingerprint, facts)
    except Exception as e:  # a folder vanishing mid-scan, or a bug: one project only
        return Result(cand, None, None, f"{type(e).__name__}: {e}")


def _overran(cand: Candidate, bound: float) -> Result:
    return Result(
        cand,
        None,
        None,
        f"reading the project took longer than {bound:g} s and was given up (a file that "
        "blocks, or a disk that stopped answering?); it is read again at the next scan",
    )


def _still_stuck(cand: Candidate) -> Result:
    # The same words at every scan while it lasts: one change event, not one per scan.
    return Result(
        cand,
        None,
        None,
        "an earlier read of the project has not returned (a file that blocks, or a disk that "
        "stopped answering?); it is skipped until that read ends",
    )


def _path_of(cand: Candidate) -> Hashable:
    return cand.path


def _gone(row: Project) -> bool:
    """On a pool thread: the stored folder is no longer where it was (gone, or another folder
    in its place)."""
    try:
        st = os.stat(row.path)
    except OSError:
        return True
    return row.inode is not None and (st.st_dev, st.st_ino) != (row.device, row.inode)


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


def _outermost(folders: Sequence[str]) -> list[str]:
    """The folders not inside another one of them: a walk covers what is below it, and a
    project met by two overlapping walks would be counted (and inserted) twice."""
    unique = sorted(set(folders))
    return [f for f in unique if not any(f != g and under(f, g) for g in unique)]


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
        project_time_bound_s: float | None = None,
        walk_time_bound_s: float | None = None,
    ) -> None:
        self._db = db
        self.roots = [os.path.abspath(r) for r in roots]
        self._exclude = list(exclude)
        self._max_depth = max_depth
        self._follow = follow_symlinks
        self._own_handles = list(own_handles)
        self._pool = ScanPool(threads, name="pm-scan")
        # Read when built, not when defined: a test harness may lower the module's bounds.
        self._project_bound = project_time_bound_s or PROJECT_TIME_BOUND_S
        self._walk_bound = walk_time_bound_s or WALK_TIME_BOUND_S
        self._lock = asyncio.Lock()
        self.groups: list[str] = []  # every grouping folder known from the scans (the watcher's)
        self.last_full_scan: ScanSummary | None = None
        self._now = datetime.now(UTC)  # the current scan's clock, for status by age
        self.listeners: list[Callable[[ScanSummary], None]] = []

    @property
    def follow_symlinks(self) -> bool:
        return self._follow

    def close(self) -> None:
        """Stop the scan threads; one stuck in a read is left behind (a daemon thread)."""
        self._pool.close()

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
        return await self._scan(_outermost(_normal(folders)), report)

    async def scan_projects(
        self, paths: Sequence[str], report: Report | None = None
    ) -> ScanSummary:
        """Single project folders (depth 0): still a project, changed, or gone."""
        return await self._scan(sorted(set(_normal(paths))), report, projects_only=True)

    # --- the scan -------------------------------------------------------------------------
    async def _scan(
        self, scope: list[str] | None, report: Report | None, *, projects_only: bool = False
    ) -> ScanSummary:
        async with self._lock:
            started = time.perf_counter()
            summary = ScanSummary(scope=scope or self.roots)
            try:
                await self._scan_locked(scope, projects_only, report, summary)
            except PoolExhausted as e:
                summary.errors.append(ScanIssue("", str(e)))
            summary.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        for listener in self.listeners:
            listener(summary)
        return summary

    async def _scan_locked(
        self,
        scope: list[str] | None,
        projects_only: bool,
        report: Report | None,
        summary: ScanSummary,
    ) -> None:
        say = report or (lambda message, pct: None)
        rows = await self._db.read(sql.every)
        ignored = await self._db.read(sql.ignored_paths)
        # An ignored folder is not even listed: forgotten, or imported and not yet confirmed.
        if projects_only and scope is not None:
            scope = [path for path in scope if path not in ignored]
        walkable = [r for r in rows if r.path not in ignored]
        walked = await self._walk(scope, projects_only, walkable)
        if walked is None:
            where = ", ".join(scope or self.roots)
            summary.errors.append(
                ScanIssue(
                    "", f"listing {where} took longer than {self._walk_bound:g} s and was given "
                    "up (a disk that stopped answering?); nothing was changed"
                )
            )  # fmt: skip
            return
        found, groups = walked
        if groups is not None:
            self.groups = groups
        in_scope = [r for r in rows if self._in_scope(r, scope, projects_only)]
        candidates = [c for c in found.candidates if c.path not in ignored and _utf8(c.path)]
        summary.errors += [
            ScanIssue(c.path.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                      "the folder name is not valid UTF-8; rename it to track it")
            for c in found.candidates if not _utf8(c.path)
        ]  # fmt: skip
        summary.found = len(candidates)
        summary.errors += [ScanIssue(e.path, e.error) for e in found.errors]
        say(f"found {len(candidates)} projects", 5)
        self._now = datetime.now(UTC)
        results = await self._analyze_all(candidates, rows, say)
        gone = await self._gone_elsewhere(results, rows, in_scope)
        planner = Planner(self.roots, self._now)
        actions = planner.plan(results, in_scope, rows, summary, gone_elsewhere=gone)
        say(f"writing {len(actions)} changes", 90)
        outcomes = await asyncio.gather(
            *(self._db.write(a) for a in actions), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                summary.errors.append(ScanIssue("", f"could not store a change: {outcome}"))
        await self._merge_duplicates(summary)
        say("done", 100)

    async def _walk(
        self, scope: list[str] | None, projects_only: bool, rows: list[Project]
    ) -> tuple[Discovery, list[str] | None] | None:
        """The discovery walk on a pool thread, under its time bound (None when it overran)."""
        walk_key = ("walk", tuple(scope or self.roots), projects_only)
        if walk_key in self._pool.stuck():
            return None  # the same walk is still stuck: do not send another thread after it
        [walked] = await self._pool.map(
            lambda _: self._discover(scope, projects_only, rows),
            [walk_key],
            time_bound_s=self._walk_bound,
            key=lambda k: k,
            on_overrun=lambda _k, _bound: None,
        )
        return walked

    def _discover(
        self, scope: list[str] | None, projects_only: bool, rows: list[Project]
    ) -> tuple[Discovery, list[str] | None]:
        """On a pool thread: the candidates, and the grouping folders known afterwards (None:
        unchanged). The groups are handed back, not set here: a walk that overran and was
        given up must not overwrite what later scans found."""
        registered = {r.path for r in rows if r.source == "registered"}
        groups: list[str] | None = None
        if projects_only:
            return _walk_projects(scope or [], registered), None
        if scope is None:
            found = discovery.walk(
                self.roots,
                max_depth=self._max_depth,
                follow_symlinks=self._follow,
                exclude=self._exclude,
            )
            groups = sorted(found.groups)
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
            groups = sorted({*kept, *found.groups})
        # Registered projects in scope that the walk did not find (outside the roots, or
        # folders with neither git nor a manifest) are looked at one by one.
        have = {c.path for c in found.candidates}
        extra = sorted(
            p for p in registered
            if p not in have and (scope is None or any(under(p, f) for f in scope))
        )  # fmt: skip
        if not extra:
            return found, groups
        more = _walk_projects(extra, registered)
        return (
            Discovery(
                candidates=found.candidates + more.candidates,
                groups=found.groups,
                errors=found.errors + more.errors,
            ),
            groups,
        )

    def _depth_left(self, folder: str) -> int | None:
        for root in self.roots:
            if under(folder, root):
                below = os.path.relpath(folder, root)
                depth = 0 if below == "." else below.count(os.sep) + 1
                return max(0, self._max_depth - depth)
        return None

    def _in_scope(self, row: Project, scope: list[str] | None, projects_only: bool) -> bool:
        if scope is None:
            return True
        if projects_only:
            return row.path in scope
        return any(under(row.path, folder) for folder in scope)

    async def _analyze_all(
        self, candidates: list[Candidate], rows: list[Project], say: Report
    ) -> list[Result]:
        """Fingerprints first (all on one thread), then what changed is read in chunks across
        the pool; every project under the time bound. A project an earlier read is still stuck
        in is not sent after it again."""
        stuck = self._pool.stuck()
        results = [_still_stuck(c) for c in candidates if c.path in stuck]
        todo = [c for c in candidates if c.path not in stuck]
        known = {r.path: r.fingerprint for r in rows if r.present}
        checked = await self._pool.map(
            partial(_unchanged, known=known),
            todo,
            time_bound_s=self._project_bound,
            key=_path_of,
            on_overrun=_overran,
        )
        results += [r for r in checked if r is not None]
        changed = [c for c, r in zip(todo, checked, strict=True) if r is None]
        if not changed:
            return results
        analyze = partial(
            _analyze, now=self._now, own_handles=self._own_handles, env=dict(os.environ)
        )
        chunks = [changed[i : i + _CHUNK] for i in range(0, len(changed), _CHUNK)]
        tasks = [
            asyncio.ensure_future(
                self._pool.map(
                    analyze,
                    chunk,
                    time_bound_s=self._project_bound,
                    key=_path_of,
                    on_overrun=_overran,
                )
            )
            for chunk in chunks
        ]
        try:
            for done, task in enumerate(asyncio.as_completed(tasks), 1):
                results += await task
                if len(chunks) > 1:
                    read = min(done * _CHUNK, len(changed))
                    say(f"read {read} of {len(changed)} changed", 5 + 80 * done // len(chunks))
        finally:
            for task in tasks:
                task.cancel()  # when one failed: the others stop at their next project
        return results

    async def _gone_elsewhere(
        self, results: list[Result], rows: list[Project], in_scope: list[Project]
    ) -> set[int]:
        """Stored projects outside this scan's scope that a new folder found here may be,
        moved, and that are really gone from where they were. (The watcher rescans the folder
        a project moved into, which need not hold the one it left.)"""
        by_path = {r.path for r in rows}
        new = [r.facts for r in results if r.facts is not None and r.candidate.path not in by_path]
        if not new:
            return set()
        identities = {f.identity for f in new}
        inodes = {(f.device, f.inode) for f in new}
        scoped = {r.id for r in in_scope}
        suspects = [
            r for r in rows
            if r.present and r.id not in scoped
            and (r.identity in identities or (r.device, r.inode) in inodes)
        ]  # fmt: skip
        if not suspects:
            return set()
        gone = await self._pool.map(
            _gone,
            suspects,
            time_bound_s=self._project_bound,
            key=lambda r: r.path,
            on_overrun=lambda _r, _bound: False,  # cannot tell: leave it where it is
        )
        return {r.id for r, is_gone in zip(suspects, gone, strict=True) if is_gone}

    async def _merge_duplicates(self, summary: ScanSummary) -> None:
        """Records of one checkout made by older versions, which took a project that moved
        into another folder for a new one: merged into the oldest (see projects/merge.py)."""
        identities = await self._db.read(sql.duplicated_identities)
        for identity in identities:
            try:
                merged = await self._db.write(merge.merge_op(identity))
            except Exception as e:  # one merge failing leaves both records as they were
                summary.errors.append(ScanIssue("", f"could not merge duplicates: {e}"))
                continue
            summary.merged += merged
