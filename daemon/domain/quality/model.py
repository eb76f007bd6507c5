"""What a quality assessment yields: plain msgspec types, no I/O here.

Every figure is 0-100 or None when it cannot be measured; `METRICS_VERSION` changes whenever
the formula does, and every stored row carries it.
"""

from __future__ import annotations

import msgspec

# 2: a score needs evidence from the files (no score from maintenance alone, none for a project
#    without code: "n/a" with a reason); a failed assessment has no score; CI steps are read
#    through one level of scripts, Makefile targets, package.json scripts, recipes…
METRICS_VERSION = 2


class Weights(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    tests: float = 0.30
    ci: float = 0.20
    docs: float = 0.20
    lint: float = 0.20
    maintenance: float = 0.10


class Coverage(msgspec.Struct, frozen=True, kw_only=True):
    percent: float | None  # None: a report was found but holds no usable total
    source: str  # "coverage.py-json", "cobertura", "istanbul-summary", "lcov", "jacoco",
    #             "clover", "go-profile"
    path: str  # relative to the project
    measured_at: str  # the report file's mtime, ISO 8601 UTC
    stale: bool  # more than 30 days older than last_worked_on
    error: str | None = None


class Detected(msgspec.Struct, frozen=True, kw_only=True):
    """What was found, so a person can see why the score is what it is."""

    test_dirs: list[str] = msgspec.field(default_factory=list)
    test_files: int = 0
    source_files: int = 0
    test_runners: list[str] = msgspec.field(default_factory=list)  # pytest, jest, vitest…
    ci: list[str] = msgspec.field(default_factory=list)  # github-actions, gitlab-ci…
    ci_runs_checks: bool = False  # a CI file runs tests or lint
    # what CI was seen to run: "pytest", "scripts/test (runs pytest)", "make ci (runs ruff)"…
    ci_checks: list[str] = msgspec.field(default_factory=list)
    docs: list[str] = msgspec.field(default_factory=list)  # README, LICENSE, docs/…
    linters: list[str] = msgspec.field(default_factory=list)
    formatters: list[str] = msgspec.field(default_factory=list)
    type_checkers: list[str] = msgspec.field(default_factory=list)
    hooks: list[str] = msgspec.field(default_factory=list)  # pre-commit, husky, lefthook
    editorconfig: bool = False
    reports: list[str] = msgspec.field(default_factory=list)  # every coverage report found
    # files that could not be read or parsed: each cost its points, not the assessment
    problems: list[str] = msgspec.field(default_factory=list)
    # why quality_score is n/a although the assessment ran: too little to measure
    unscored: str | None = None


class Gain(msgspec.Struct, frozen=True, kw_only=True):
    """Something missing, and how many points of its component it would add."""

    component: str  # tests, ci, docs, lint, maintenance
    points: float
    hint: str  # "add a LICENSE file"


class Assessment(msgspec.Struct, frozen=True, kw_only=True):
    quality_score: int | None
    test_coverage: int | None
    has_tests: bool
    has_ci_cd: bool
    has_documentation: bool
    documentation_score: int | None
    linting_score: int | None
    tests: float | None  # T
    ci: float | None  # C
    docs: float | None  # D
    lint: float | None  # L
    maintenance: float | None  # M
    metrics_version: int
    coverage: Coverage | None
    detected: Detected
    gains: list[Gain]
    fingerprint: str
    error: str | None = None  # the assessment failed: nothing measured, no score
