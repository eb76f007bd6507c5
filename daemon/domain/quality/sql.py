"""quality_metrics: one row per assessment of a project (the latest per project is the
`quality_latest` view) — the row, its table, and the queries a scan and the ranking need.

A new assessment is a new row: `quality.created` carries it whole, with `previous_score` (the
score of the project's assessment before it) to say how it moved.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any

import msgspec

from daemon.domain.quality.model import Assessment, Detected, Gain
from daemon.store.table import Page, Row, Table, Where

Score = Annotated[int, msgspec.Meta(ge=0, le=100)]
Component = Annotated[float, msgspec.Meta(ge=0, le=100)]


class QualityRow(Row, kw_only=True):
    project_id: int
    quality_score: Score | None = None
    test_coverage: Score | None = None
    has_tests: bool = False
    has_ci_cd: bool = False
    has_documentation: bool = False
    documentation_score: Score | None = None
    linting_score: Score | None = None
    calculated_at: str
    tests_component: Component | None = None
    ci_component: Component | None = None
    docs_component: Component | None = None
    lint_component: Component | None = None
    maintenance_component: Component | None = None
    metrics_version: int
    coverage_source: str | None = None
    coverage_path: str | None = None
    coverage_measured_at: str | None = None
    coverage_stale: bool = False
    detected: Detected = msgspec.field(default_factory=Detected)
    gains: list[Gain] = msgspec.field(default_factory=list)
    fingerprint: str | None = None
    error: str | None = None
    previous_score: int | None = None  # the project's assessment before this one (computed)


QUALITY = Table(
    "quality_metrics",
    QualityRow,
    namespace="quality",
    orders={"newest": "t.id DESC"},
    computed={
        "previous_score": "(SELECT o.quality_score FROM quality_metrics AS o "
        "WHERE o.project_id = t.project_id AND o.id < t.id ORDER BY o.id DESC LIMIT 1)"
    },
)


def values(project_id: int, a: Assessment, now: str) -> dict[str, Any]:
    """The columns of a new row for an assessment."""
    cov = a.coverage
    return {
        "project_id": project_id,
        "quality_score": a.quality_score,
        "test_coverage": a.test_coverage,
        "has_tests": a.has_tests,
        "has_ci_cd": a.has_ci_cd,
        "has_documentation": a.has_documentation,
        "documentation_score": a.documentation_score,
        "linting_score": a.linting_score,
        "calculated_at": now,
        "tests_component": a.tests,
        "ci_component": a.ci,
        "docs_component": a.docs,
        "lint_component": a.lint,
        "maintenance_component": a.maintenance,
        "metrics_version": a.metrics_version,
        "coverage_source": cov.source if cov else None,
        "coverage_path": cov.path if cov else None,
        "coverage_measured_at": cov.measured_at if cov else None,
        "coverage_stale": bool(cov and cov.stale),
        "detected": a.detected,
        "gains": a.gains,
        "fingerprint": a.fingerprint,
        "error": a.error,
    }


def _of(project_id: int) -> Where:
    return Where(QUALITY).eq("project_id", project_id)


def latest(conn: sqlite3.Connection, project_id: int) -> QualityRow | None:
    found = QUALITY.rows(conn, _of(project_id), "newest", limit=1)
    return found[0] if found else None


def history(
    conn: sqlite3.Connection, project_id: int, limit: int, offset: int
) -> tuple[list[QualityRow], int]:
    """One project's assessments, newest first, and how many there are."""
    page = QUALITY.page(conn, _of(project_id), "newest", limit, offset)
    return page.items, page.total


class ScanState(msgspec.Struct, frozen=True, kw_only=True):
    """What a quality scan needs to decide whether a project must be read again."""

    project_id: int
    path: str
    last_worked_on: str | None
    description: str | None
    fingerprint: str | None  # of the latest assessment
    maintenance: float | None  # the latest M (time moves it without any file changing)
    metrics_version: int | None
    failed: bool  # the latest assessment failed: time alone changes nothing about it


def scan_states(conn: sqlite3.Connection, project_ids: list[int] | None) -> list[ScanState]:
    where = "p.present = 1"
    args: list[Any] = []
    if project_ids is not None:
        where += f" AND p.id IN ({', '.join('?' for _ in project_ids)})"
        args += project_ids
    rows = conn.execute(
        "SELECT p.id, p.path, p.last_worked_on, p.description, q.fingerprint, "
        "q.maintenance_component, q.metrics_version, q.error IS NOT NULL "
        f"FROM projects AS p LEFT JOIN quality_latest AS q ON q.project_id = p.id WHERE {where} "
        "ORDER BY p.id",
        args,
    ).fetchall()
    return [
        ScanState(
            project_id=r[0],
            path=r[1],
            last_worked_on=r[2],
            description=r[3],
            fingerprint=r[4],
            maintenance=r[5],
            metrics_version=r[6],
            failed=bool(r[7]),
        )
        for r in rows
    ]


class Ranked(msgspec.Struct, kw_only=True):
    project_id: int
    name: str
    path: str
    quality_score: int | None
    trend: int | None  # points since the last assessment at least a week old
    calculated_at: str


def ranked(conn: sqlite3.Connection, week_ago: str, limit: int, offset: int) -> Page[Ranked]:
    rows = conn.execute(
        "SELECT p.id, p.name, p.path, q.quality_score, q.calculated_at, "
        "  (SELECT o.quality_score FROM quality_metrics AS o WHERE o.project_id = p.id "
        "   AND o.calculated_at <= ? ORDER BY o.id DESC LIMIT 1) "
        "FROM projects AS p JOIN quality_latest AS q ON q.project_id = p.id "
        "WHERE p.present = 1 "
        "ORDER BY q.quality_score DESC NULLS LAST, p.name COLLATE NOCASE LIMIT ? OFFSET ?",
        (week_ago, limit, offset),
    ).fetchall()
    total = conn.execute(
        "SELECT count(*) FROM projects AS p JOIN quality_latest AS q ON q.project_id = p.id "
        "WHERE p.present = 1"
    ).fetchone()[0]
    items = [
        Ranked(
            project_id=r[0],
            name=r[1],
            path=r[2],
            quality_score=r[3],
            calculated_at=r[4],
            trend=None if r[3] is None or r[5] is None else r[3] - r[5],
        )
        for r in rows
    ]
    return Page(items=items, total=int(total))
