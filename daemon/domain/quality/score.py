"""The quality score: five components from a project's files and its last activity.

T tests, C CI, D documentation, L linting, M maintenance, each 0-100 or None when it cannot
be measured; quality_score = round(Σ wᵢ·xᵢ / Σ wᵢ) over the components that are not None, so
an unmeasurable component leaves the denominator instead of counting as 0 (QUALITY.md).

A score needs evidence from the files (`verdict`). T, C, D and L are read from the files; M is
activity, which says nothing of quality by itself. So a project is scored only when every
file-based component that has weight was measured, and it is "n/a" otherwise, with the reason
(`Detected.unscored`): never a score made of what little was left. This is what keeps the
ranking sensible: a README alone once scored 50 (D 25 and M 100 over a denominator of 0.3)
while the same README beside one source file scored 15, and a bare repository scored 100 from
M alone. Only M leaves the denominator of a scored project (no last_worked_on).

When components cannot be measured (decided here):
- no work tree (a bare repository): T, C, D and L; n/a.
- no code (`Findings.code`: no source or test file in the walk, no build manifest, no test
  runner, no coverage figure, and a walk not cut short by its budget): T, C and L. Tests, CI
  and linters are for code; a folder of notes or documents is n/a, its README still
  measured as D.
- no last_worked_on (or one that is not a timestamp): M.

A failed assessment (an unreadable root, an unexpected exception) measures nothing and has no
score: `error` says why, and it is tried again by the next scan.

`fingerprint` is the cheap check before `assess` (stat calls and a few folder listings), and
`rescore` refreshes what depends on time and weights alone, for a project it skipped.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from datetime import UTC, datetime

import msgspec

from daemon.domain.quality.ci import CI_FOLDERS
from daemon.domain.quality.coverage import candidate_paths, find_coverage, is_stale
from daemon.domain.quality.detect import Findings, detect
from daemon.domain.quality.docs import DOC_FOLDERS
from daemon.domain.quality.files import ProjectFiles, printable
from daemon.domain.quality.items import Item, total
from daemon.domain.quality.model import (
    METRICS_VERSION,
    Assessment,
    Coverage,
    Detected,
    Gain,
    Weights,
)
from daemon.domain.quality.walk import PRUNED

ACTIVE_DAYS = 30  # M is 100 up to here…
INACTIVE_DAYS = 365  # …and falls linearly to 0 here
T_WITHOUT_COVERAGE_MAX = 80  # without a report, T cannot claim more than this
FINGERPRINT_VERSION = b"qfp1"  # bump when the fingerprint's inputs change
# Folders below the root whose files the assessment reads or lists (CI, hooks, docs, .github's
# README and policies); .circleci and .semaphore hold CI files at fixed names.
_READ_FOLDERS = (".github", *CI_FOLDERS, ".circleci", ".semaphore", ".husky", *DOC_FOLDERS)
_READ_FOLDERS += ("sorbet",)
# Root entries whose mtime moves with work the assessment does not read: .git's with every
# commit or status, node_modules' with every install, a build folder's with every build
# (coverage reports inside them are stat'ed one by one).
_UNREAD = frozenset({".git"}) | PRUNED
_ORDER: dict[str, int] = {"tests": 0, "ci": 1, "docs": 2, "lint": 3, "maintenance": 4}
# The components measured from the files: the evidence a score needs (M is activity).
EVIDENCE: tuple[str, ...] = ("tests", "ci", "docs", "lint")


def assess(
    project: str,
    *,
    last_worked_on: str | None,
    now: datetime,
    weights: Weights = Weights(),  # noqa: B008 - frozen, so one shared default is safe
    description: str | None = None,
) -> Assessment:
    """The assessment of one project; never raises (the first problem goes to `error`).

    `description`: the project's description as the caller already knows it (metadata's
    chain: manifests, README, .git/description). Any self-description earns the docs item
    "manifest description"; without one, the manifests are read here.
    """
    try:
        return _assess(project, last_worked_on, now, weights, description)
    except Exception as exc:  # a last guard: one odd project must not stop a scan
        # an empty fingerprint never matches, so the next scan tries again
        return failed(f"assess: {exc!r}", fingerprint="")


def failed(error: str, *, fingerprint: str) -> Assessment:
    """An assessment that could not be made: nothing measured, no score, `error` says why."""
    return Assessment(
        quality_score=None,
        test_coverage=None,
        has_tests=False,
        has_ci_cd=False,
        has_documentation=False,
        documentation_score=None,
        linting_score=None,
        tests=None,
        ci=None,
        docs=None,
        lint=None,
        maintenance=None,
        metrics_version=METRICS_VERSION,
        coverage=None,
        detected=Detected(),
        gains=[],
        fingerprint=fingerprint,
        error=printable(error)[:160],
    )


def maintenance(last_worked_on: str | None, now: datetime) -> float | None:
    """100 within ACTIVE_DAYS of the last work, falling linearly to 0 at INACTIVE_DAYS."""
    if not last_worked_on:
        return None
    try:
        worked = _aware(datetime.fromisoformat(last_worked_on))
    except ValueError:
        return None
    days = (_aware(now) - worked).total_seconds() / 86_400
    if days <= ACTIVE_DAYS:
        return 100.0  # also a timestamp in the future (clock skew): recent work
    if days >= INACTIVE_DAYS:
        return 0.0
    return round(100 * (INACTIVE_DAYS - days) / (INACTIVE_DAYS - ACTIVE_DAYS), 2)


def combine(components: Mapping[str, float | None], weights: Weights) -> int | None:
    """The score of `verdict`, without the reason."""
    return verdict(components, weights)[0]


def verdict(
    components: Mapping[str, float | None], weights: Weights
) -> tuple[int | None, str | None]:
    """(score, None), or (None, why it is n/a).

    A score needs evidence: every file-based component (T, C, D, L) that has weight must be
    measured, and at least one must have weight. Then it is round(Σ wᵢ·xᵢ / Σ wᵢ) over the
    measured components (negative weights count as 0); only M may be missing from it.
    """
    weight = _weights(weights)
    weighed = [name for name in EVIDENCE if weight[name] > 0]
    missing = [name for name in weighed if components.get(name) is None]
    if not weighed:
        return None, "no weight on any component measured from the files"
    if missing:
        return None, _unscored(missing)
    pairs = [(weight[k], v) for k, v in components.items() if v is not None]
    denominator = sum(w for w, _ in pairs)
    score = round_half_up(sum(w * v for w, v in pairs) / denominator)
    return _clamp(score), None


def rescore(
    assessment: Assessment,
    *,
    last_worked_on: str | None,
    now: datetime,
    weights: Weights = Weights(),  # noqa: B008 - frozen, so one shared default is safe
) -> Assessment:
    """The assessment with M, the coverage's staleness and the score brought up to date:
    what changes with time, activity and weights while the files (the fingerprint) do not."""
    coverage = assessment.coverage
    try:
        if coverage is not None:
            measured = _aware(datetime.fromisoformat(coverage.measured_at)).timestamp()
            coverage = msgspec.structs.replace(coverage, stale=is_stale(measured, last_worked_on))
    except ValueError:
        pass  # a stored row with an odd timestamp keeps its flag
    if assessment.error is not None:
        return assessment  # a failed assessment has nothing to bring up to date
    m = maintenance(last_worked_on, now)
    components = _components(assessment.tests, assessment.ci, assessment.docs, assessment.lint, m)
    score, unscored = verdict(components, weights)
    return msgspec.structs.replace(
        assessment,
        maintenance=m,
        coverage=coverage,
        quality_score=score,
        detected=msgspec.structs.replace(assessment.detected, unscored=unscored),
    )


def fingerprint(project: str) -> str:
    """A short hash of the stats of what `assess` reads; no file is opened.

    Covers every root entry (name, mtime, size: the configs, manifests and READMEs there, and
    the top folders, whose mtime moves when files come or go in them), the files in the CI,
    hooks and docs folders, and every coverage report candidate. Changes deeper in the tree
    (a test file added three levels down) wait for something here to change.
    """
    parts: list[object] = [FINGERPRINT_VERSION, METRICS_VERSION, os.fsencode(project)]
    names = _stats(project, parts, skip=_UNREAD)
    for folder in _READ_FOLDERS:
        if folder.split("/")[0] in names:
            _stats(os.path.join(project, *folder.split("/")), parts)
    for rel in candidate_paths(project, names):
        parts.append((rel, _stat(os.path.join(project, *rel.split("/")))))
    return hashlib.blake2b(repr(parts).encode(), digest_size=10).hexdigest()


def round_half_up(value: float) -> int:
    """72.5 → 73 (Python's round() would give 72: banker's rounding surprises people)."""
    return math.floor(value + 0.5)


def _assess(
    project: str,
    last_worked_on: str | None,
    now: datetime,
    weights: Weights,
    description: str | None,
) -> Assessment:
    files = ProjectFiles(project)
    if not files.listed:  # missing or unreadable: nothing can be measured
        return failed(files.problems[0], fingerprint=fingerprint(project))
    findings = detect(project, description=description, files=files)
    coverage: Coverage | None = None
    reports: list[str] = []
    if findings.work_tree:
        root = files.files | files.dirs
        coverage, reports = find_coverage(project, last_worked_on=last_worked_on, root_names=root)
    t, c, d, lint = _measured(findings, coverage)
    m = maintenance(last_worked_on, now)
    components = _components(t, c, d, lint, m)
    measured = coverage if coverage is not None and coverage.percent is not None else None
    score, unscored = verdict(components, weights)
    detected = msgspec.structs.replace(
        findings.detected, reports=reports, problems=findings.problems, unscored=unscored
    )
    return Assessment(
        quality_score=score,
        test_coverage=_percent(measured),
        has_tests=findings.tree.has_tests,
        has_ci_cd=findings.ci.present,
        has_documentation=findings.has_documentation,
        documentation_score=round_half_up(d) if d is not None else None,
        linting_score=round_half_up(lint) if lint is not None else None,
        tests=t,
        ci=c,
        docs=d,
        lint=lint,
        maintenance=m,
        metrics_version=METRICS_VERSION,
        coverage=coverage,
        detected=detected,
        gains=gains(findings.items, components, measured),
        fingerprint=fingerprint(project),
    )


def _measured(
    findings: Findings, coverage: Coverage | None
) -> tuple[float | None, float | None, float | None, float | None]:
    """T, C, D, L, or None where the module docstring says they cannot be measured."""
    if not findings.work_tree:
        return None, None, None, None
    items = findings.items
    d = total(items, "docs")
    percent = coverage.percent if coverage is not None else None
    if not (findings.code or percent is not None):
        return None, None, d, None
    t = percent if percent is not None else min(total(items, "tests"), T_WITHOUT_COVERAGE_MAX)
    return t, total(items, "ci"), d, round(total(items, "lint"), 2)


def gains(
    items: list[Item], components: dict[str, float | None], coverage: Coverage | None
) -> list[Gain]:
    """The unearned items of the measured components, most points first. With a coverage
    figure, T is that figure: the one gain for tests is raising it."""
    found: list[Gain] = []
    for one in items:
        if components.get(one.component) is None or one.earned >= one.points:
            continue
        if one.component == "tests" and coverage is not None:
            continue
        found.append(Gain(component=one.component, points=one.points - one.earned, hint=one.hint))
    if coverage is not None and coverage.percent is not None and coverage.percent < 100:
        points = round(100 - coverage.percent, 2)
        hint = f"raise test coverage from {coverage.percent:.0f}% ({coverage.path})"
        found.append(Gain(component="tests", points=points, hint=hint))
    return sorted(found, key=lambda gain: (-gain.points, _ORDER[gain.component], gain.hint))


def _percent(coverage: Coverage | None) -> int | None:
    return round_half_up(coverage.percent) if coverage and coverage.percent is not None else None


def _weights(weights: Weights) -> dict[str, float]:
    return {name: max(getattr(weights, name), 0.0) for name in (*EVIDENCE, "maintenance")}


def _unscored(missing: list[str]) -> str:
    if "docs" in missing:
        return "no work tree to read (a bare repository)"
    return "no code to assess: no source, test or build files found"


def _components(
    t: float | None, c: float | None, d: float | None, lint: float | None, m: float | None
) -> dict[str, float | None]:
    return {"tests": t, "ci": c, "docs": d, "lint": lint, "maintenance": m}


def _stats(folder: str, parts: list[object], skip: frozenset[str] = frozenset()) -> set[str]:
    """Append (name, mtime, size) of each entry of `folder` but `skip`; the names."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except (OSError, ValueError):
        parts.append((os.fsencode(folder), ()))
        return set()
    for entry in entries[:1000]:
        if entry.name in skip:
            continue
        try:
            st = entry.stat()
            parts.append((os.fsencode(entry.name), st.st_mtime_ns, st.st_size))
        except OSError:
            parts.append((os.fsencode(entry.name), ()))
    return {entry.name for entry in entries}


def _stat(location: str) -> tuple[int, ...]:
    try:
        st = os.stat(location)
    except (OSError, ValueError):
        return ()
    return (st.st_mtime_ns, st.st_size)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _clamp(value: int) -> int:
    return min(max(value, 0), 100)
