"""Finding a project's coverage reports and choosing the one whose total counts.

Reports are looked for at a fixed list of places the usual tools write to (plus a few folder
listings: coverage/*.info, TestResults/*/, *.coverprofile at the root), never by walking the
tree: a scan must not pay for reading a project. The newest report by mtime wins, since two
formats side by side usually mean an old run of one tool and a fresh run of another.
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from daemon.domain.quality.files import printable
from daemon.domain.quality.model import Coverage
from daemon.domain.quality.reports import parse
from daemon.platform import untrusted
from daemon.store.clock import iso

STALE_AFTER = timedelta(days=30)
_MAX_PARSED = 4  # broken reports tried before giving up on a usable total
_LIST_MAX = 200  # entries read from a listed folder

# (path relative to the project, the format its name promises), most specific first: on an
# mtime tie the earlier one wins.
CANDIDATES: tuple[tuple[str, str], ...] = (
    ("coverage.json", "coverage.py-json"),
    ("coverage/coverage-summary.json", "istanbul-summary"),
    ("coverage-summary.json", "istanbul-summary"),
    ("coverage/.last_run.json", "simplecov"),
    ("coverage.xml", "cobertura"),
    ("cobertura.xml", "cobertura"),
    ("cobertura-coverage.xml", "cobertura"),
    ("coverage/cobertura-coverage.xml", "cobertura"),
    ("coverage.cobertura.xml", "cobertura"),  # coverlet (.NET)
    ("target/site/cobertura/coverage.xml", "cobertura"),
    ("coverage/lcov.info", "lcov"),
    ("lcov.info", "lcov"),
    ("coverage.lcov", "lcov"),  # `coverage lcov`'s default name
    ("target/site/jacoco/jacoco.xml", "jacoco"),
    ("target/site/jacoco-aggregate/jacoco.xml", "jacoco"),
    ("build/reports/jacoco/test/jacocoTestReport.xml", "jacoco"),
    ("build/reports/kover/report.xml", "jacoco"),  # Kover writes JaCoCo's format
    ("clover.xml", "clover"),
    ("coverage/clover.xml", "clover"),
    ("build/logs/clover.xml", "clover"),  # PHPUnit's usual place
    ("coverage.out", "go-profile"),
    ("cover.out", "go-profile"),
    ("c.out", "go-profile"),
    ("coverage.txt", "go-profile"),  # codecov's Go example; only when it starts with "mode:"
    ("profile.cov", "go-profile"),
)
_SNIFFED = frozenset({"coverage.txt"})  # names other tools use too: kept only if they look right
_KNOWN = {path: kind for path, kind in CANDIDATES}


class _Report(NamedTuple):
    path: str  # relative, "/"-separated
    location: str  # resolved, inside the project: what is parsed
    kind: str
    mtime: float
    order: int


def find_coverage(
    project: str,
    *,
    last_worked_on: str | None,
    root_names: Iterable[str] | None = None,
) -> tuple[Coverage | None, list[str]]:
    """The report whose total counts, and every report found (relative paths, newest first).

    The newest report that yields a total is chosen; when none does, the newest one with its
    error (a report being rewritten while we read it should not hide an older good one).
    `root_names`, the root's listing if the caller has it, saves listing the root again.
    """
    reports = _existing(project, root_names)
    if not reports:
        return None, []
    reports.sort(key=lambda report: (-report.mtime, report.order))
    chosen: Coverage | None = None
    for report in reports[:_MAX_PARSED]:
        result = parse(report.location, report.kind)
        coverage = Coverage(
            percent=round(result.percent, 2) if result.percent is not None else None,
            source=result.source,
            path=printable(report.path),  # JSON cannot carry undecodable bytes
            measured_at=iso(datetime.fromtimestamp(report.mtime, UTC)),
            stale=is_stale(report.mtime, last_worked_on),
            error=result.error,
        )
        if chosen is None:
            chosen = coverage
        if coverage.percent is not None:
            chosen = coverage
            break
    return chosen, [printable(report.path) for report in reports]


def candidate_paths(project: str, root_names: Iterable[str] | None = None) -> list[str]:
    """Every place a report may be (relative): the fixed list plus the listed folders'
    matches. For `fingerprint`, which stats them all."""
    return [path for path, _ in CANDIDATES] + [path for path, _ in _listed(project, root_names)]


def is_stale(mtime: float, last_worked_on: str | None) -> bool:
    """More than STALE_AFTER older than the last work on the project."""
    if not last_worked_on:
        return False
    try:
        worked = datetime.fromisoformat(last_worked_on)
    except ValueError:
        return False
    worked = worked if worked.tzinfo is not None else worked.replace(tzinfo=UTC)
    return datetime.fromtimestamp(mtime, UTC) < worked - STALE_AFTER


def _existing(project: str, root_names: Iterable[str] | None) -> list[_Report]:
    found: list[_Report] = []
    candidates = list(CANDIDATES) + _listed(project, root_names)
    for order, (path, kind) in enumerate(candidates):
        try:
            # A report linked from outside the project is not this project's report.
            location = untrusted.resolve_within(os.path.join(project, *path.split("/")), project)
            st = os.stat(location)
        except (OSError, ValueError):
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if path in _SNIFFED and not _looks_like_go(location, project):
            continue
        found.append(_Report(path, location, kind, st.st_mtime, order))
    return found


def _listed(project: str, root_names: Iterable[str] | None) -> list[tuple[str, str]]:
    """Reports whose names vary: *.coverprofile at the root, coverage/*.info (lcov per
    package or per run), TestResults/<run id>/coverage.cobertura.xml (dotnet test)."""
    names = list(root_names) if root_names is not None else _names(project)
    found = [(name, "go-profile") for name in names if name.endswith(".coverprofile")]
    for name in _names(os.path.join(project, "coverage")):
        path = f"coverage/{name}"
        if name.endswith(".info") and path not in _KNOWN:
            found.append((path, "lcov"))
    if "TestResults" in names:
        for run in _names(os.path.join(project, "TestResults")):
            found.append((f"TestResults/{run}/coverage.cobertura.xml", "cobertura"))
    return sorted(found)


def _names(folder: str) -> list[str]:
    try:
        with os.scandir(folder) as listing:
            return [entry.name for entry in itertools.islice(listing, _LIST_MAX)]
    except (OSError, ValueError):
        return []


def _looks_like_go(location: str, project: str) -> bool:
    try:
        return untrusted.read(location, within=project, max_bytes=5, whole=False) == b"mode:"
    except OSError:
        return False
