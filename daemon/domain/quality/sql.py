"""SQL for quality_metrics: a row per scan; the latest per project is the `quality_latest` view."""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from daemon.domain.quality.model import Assessment, Detected, Gain
from daemon.store.paging import fetch_page

_ROW_COLUMNS = (
    "id", "project_id", "quality_score", "test_coverage", "has_tests", "has_ci_cd",
    "has_documentation", "documentation_score", "linting_score", "calculated_at",
    "tests_component", "ci_component", "docs_component", "lint_component",
    "maintenance_component", "metrics_version", "coverage_source", "coverage_path",
    "coverage_measured_at", "coverage_stale", "detected", "gains", "fingerprint", "error",
)  # fmt: skip
_BOOLS = frozenset({"has_tests", "has_ci_cd", "has_documentation", "coverage_stale"})
_detected = msgspec.json.Decoder(Detected)
_gains = msgspec.json.Decoder(list[Gain])
_encode = msgspec.json.Encoder().encode


class QualityRow(msgspec.Struct, kw_only=True):
    id: int
    project_id: int
    quality_score: int | None
    test_coverage: int | None
    has_tests: bool
    has_ci_cd: bool
    has_documentation: bool
    documentation_score: int | None
    linting_score: int | None
    calculated_at: str
    tests_component: float | None
    ci_component: float | None
    docs_component: float | None
    lint_component: float | None
    maintenance_component: float | None
    metrics_version: int
    coverage_source: str | None
    coverage_path: str | None
    coverage_measured_at: str | None
    coverage_stale: bool
    detected: Detected
    gains: list[Gain]
    fingerprint: str | None
    error: str | None


def _row(values: tuple[Any, ...]) -> QualityRow:
    v = dict(zip(_ROW_COLUMNS, values, strict=True))
    for name in _BOOLS:
        v[name] = bool(v[name])
    v["detected"] = _detected.decode(v["detected"])
    v["gains"] = _gains.decode(v["gains"])
    return QualityRow(**v)


_SELECT = f"SELECT {', '.join(_ROW_COLUMNS)} FROM"


def insert(conn: sqlite3.Connection, project_id: int, a: Assessment, now: str) -> int:
    cov = a.coverage
    values: dict[str, Any] = {
        "project_id": project_id,
        "quality_score": a.quality_score,
        "test_coverage": a.test_coverage,
        "has_tests": int(a.has_tests),
        "has_ci_cd": int(a.has_ci_cd),
        "has_documentation": int(a.has_documentation),
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
        "coverage_stale": int(bool(cov and cov.stale)),
        "detected": _encode(a.detected).decode(),
        "gains": _encode(a.gains).decode(),
        "fingerprint": a.fingerprint,
        "error": a.error,
    }
    row = conn.execute(
        f"INSERT INTO quality_metrics ({', '.join(values)}) "
        f"VALUES ({', '.join('?' for _ in values)}) RETURNING id",
        list(values.values()),
    ).fetchone()
    return int(row[0])


def latest(conn: sqlite3.Connection, project_id: int) -> QualityRow | None:
    row = conn.execute(
        f"{_SELECT} quality_metrics WHERE project_id = ? ORDER BY id DESC LIMIT 1", (project_id,)
    ).fetchone()
    return _row(row) if row else None


def history(
    conn: sqlite3.Connection, project_id: int, limit: int, offset: int
) -> tuple[list[QualityRow], int]:
    rows = fetch_page(
        conn.execute(
            f"{_SELECT} quality_metrics WHERE project_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            (project_id, limit, offset),
        )
    )
    total = conn.execute(
        "SELECT count(*) FROM quality_metrics WHERE project_id = ?", (project_id,)
    ).fetchone()[0]
    return [_row(r) for r in rows], int(total)


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


def ranked(
    conn: sqlite3.Connection, week_ago: str, limit: int, offset: int
) -> tuple[list[Ranked], int]:
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
    return items, int(total)
