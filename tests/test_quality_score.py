"""The score: components, the formula, weights, gains, fingerprint and the never-raising guard.

Projects are real folders in tmp_path; `now` is fixed and last_worked_on is given, so
nothing depends on the clock.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from daemon.domain.quality import score as score_module
from daemon.domain.quality.model import METRICS_VERSION, Assessment, Weights
from daemon.domain.quality.score import (
    assess,
    combine,
    fingerprint,
    maintenance,
    rescore,
    round_half_up,
    verdict,
)
from daemon.store.clock import iso

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
RECENT = iso(NOW - timedelta(days=3))
LONG_README = (
    "# Tool\n\nTool keeps a memory of every project in a folder: what it is, how it is going "
    "and what to do next, answered by a small daemon over a local socket.\n\n"
    "## Install\n\n    pip install tool\n\n## Usage\n\n" + "Run the tool. " * 80 + "\n"
)


def make(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def run(root: Path, files: dict[str, str] | None = None, **kwargs: object) -> Assessment:
    options: dict[str, object] = {"last_worked_on": RECENT, "now": NOW} | kwargs
    return assess(str(make(root, files or {})), **options)  # type: ignore[arg-type]


ONLY_TESTS = Weights(tests=1, ci=0, docs=0, lint=0, maintenance=0)


def days_ago(days: float) -> str:
    return iso(NOW - timedelta(days=days))


# --- M ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [(0, 100.0), (30, 100.0), (197.5, 50.0), (365, 0.0), (1000, 0.0), (-5, 100.0)],
)
def test_maintenance(days: float, expected: float) -> None:
    assert maintenance(days_ago(days), NOW) == expected


def test_maintenance_unknown() -> None:
    assert maintenance(None, NOW) is None
    assert maintenance("", NOW) is None
    assert maintenance("not a date", NOW) is None
    assert maintenance("2025-06-14T12:00:00", NOW.replace(tzinfo=None)) == 100.0  # naive: UTC


# --- the formula -----------------------------------------------------------------------------


def test_formula_with_every_component() -> None:
    components = {"tests": 80.0, "ci": 100.0, "docs": 50.0, "lint": 25.0, "maintenance": 100.0}
    # 0.3·80 + 0.2·100 + 0.2·50 + 0.2·25 + 0.1·100 = 24 + 20 + 10 + 5 + 10 = 69
    assert combine(components, Weights()) == 69


def test_only_maintenance_leaves_the_denominator() -> None:
    components = {"tests": 50.0, "ci": 70.0, "docs": 60.0, "lint": 40.0, "maintenance": None}
    # (0.3·50 + 0.2·70 + 0.2·60 + 0.2·40) / 0.9 = 49 / 0.9 = 54.4…, not 49
    assert verdict(components, Weights()) == (54, None)


def test_a_score_needs_evidence_from_the_files() -> None:
    """A file-based component with weight that was not measured: n/a, with the reason. A
    README with recent activity used to score (0.2·60 + 0.1·90) / 0.3 = 70 this way."""
    no_code = {"tests": None, "ci": None, "docs": 60.0, "lint": None, "maintenance": 90.0}
    score, why = verdict(no_code, Weights())
    assert score is None and why == "no code to assess: no source, test or build files found"
    bare = dict.fromkeys(no_code) | {"maintenance": 100.0}  # maintenance alone scores nothing
    assert verdict(bare, Weights()) == (None, "no work tree to read (a bare repository)")
    assert combine(dict.fromkeys(no_code), Weights()) is None
    # what has no weight is not asked for: docs alone, weighed alone, is evidence enough
    assert verdict(no_code, Weights(tests=0, ci=0, docs=1, lint=0, maintenance=0)) == (60, None)
    nothing_weighed = Weights(tests=0, ci=0, docs=0, lint=0, maintenance=1)
    assert verdict(no_code, nothing_weighed)[0] is None


def test_weights() -> None:
    components = {"tests": 100.0, "ci": 0.0, "docs": 0.0, "lint": 0.0, "maintenance": 0.0}
    assert combine(components, ONLY_TESTS) == 100
    assert combine(components, Weights(tests=1, ci=1, docs=1, lint=1, maintenance=0)) == 25
    assert combine({"tests": None, "ci": 50.0}, ONLY_TESTS) is None  # Σw over measured: 0
    assert combine(components, Weights(tests=-1, ci=1)) == 0  # a negative weight is 0


def test_rounding_is_half_up() -> None:
    assert [round_half_up(x) for x in (72.5, 73.5, 0.49, 99.5)] == [73, 74, 0, 100]
    assert combine({"docs": 72.5}, Weights(tests=0, ci=0, docs=1, lint=0, maintenance=0)) == 73


# --- whole assessments -----------------------------------------------------------------------


def test_a_well_kept_python_project(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        {
            "pkg/core.py": "",
            "pkg/util.py": "",
            "tests/test_core.py": "",
            "pyproject.toml": (
                '[project]\nname = "pkg"\ndescription = "A package"\n\n'
                "[tool.pytest.ini_options]\n\n[tool.ruff]\n\n[tool.ruff.format]\n\n[tool.mypy]\n"
            ),
            ".github/workflows/ci.yml": "jobs:\n  t:\n    steps:\n      - run: pytest\n",
            ".pre-commit-config.yaml": "repos: []\n",
            ".editorconfig": "",
            "README.md": LONG_README,
            "LICENSE": "MIT",
            "docs/index.md": "",
            "CONTRIBUTING.md": "",
            "CHANGELOG.md": "",
            "SECURITY.md": "",
        },
    )
    assert (result.tests, result.ci, result.docs, result.lint) == (80, 100, 100, 100)
    assert result.maintenance == 100
    assert result.quality_score == round_half_up(0.3 * 80 + 0.2 * 300 + 0.1 * 100)  # 94
    assert (result.has_tests, result.has_ci_cd, result.has_documentation) == (True, True, True)
    assert (result.documentation_score, result.linting_score) == (100, 100)
    assert result.test_coverage is None and result.coverage is None
    assert result.metrics_version == METRICS_VERSION
    assert result.gains == []  # T's 80 is the cap without coverage: nothing item-shaped left
    assert result.error is None
    assert result.fingerprint == fingerprint(str(tmp_path))


def test_coverage_sets_tests(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        {"app.py": "", "coverage.json": '{"totals": {"percent_covered": 62.5}}'},
    )
    assert result.tests == 62.5 and result.test_coverage == 63
    assert result.coverage is not None and result.coverage.source == "coverage.py-json"
    assert result.detected.reports == ["coverage.json"]
    assert not result.has_tests  # no tests seen: coverage from running a script
    tests_gains = [g for g in result.gains if g.component == "tests"]
    assert [(g.points, g.hint) for g in tests_gains] == [
        (37.5, "raise test coverage from 62% (coverage.json)")
    ]


def test_zero_coverage_is_a_figure(tmp_path: Path) -> None:
    result = run(tmp_path, {"app.py": "", "lcov.info": "SF:app.py\nDA:1,0\nDA:2,0\n"})
    assert result.tests == 0 and result.test_coverage == 0
    assert result.gains[0].points == 100 and result.gains[0].component == "tests"


def test_a_broken_report_falls_back_to_the_heuristic(tmp_path: Path) -> None:
    result = run(tmp_path, {"app.py": "", "tests/test_app.py": "", "coverage.json": "{"})
    assert result.tests == 65  # 50 + 15 (ratio); no runner config
    assert result.test_coverage is None
    assert result.coverage is not None and result.coverage.error is not None


def test_a_folder_of_notes(tmp_path: Path) -> None:
    """No code: T, C and L are not measured, and there is no score (n/a, with the reason);
    D and M are still measured and shown."""
    result = run(
        tmp_path,
        {"README.md": LONG_README, "ideas.md": "", "2024/january.md": ""},
        last_worked_on=days_ago(197.5),
    )
    assert (result.tests, result.ci, result.lint) == (None, None, None)
    assert result.docs == 50 and result.maintenance == 50
    assert result.quality_score is None and result.error is None
    assert result.detected.unscored == "no code to assess: no source, test or build files found"
    assert result.linting_score is None and result.documentation_score == 50
    assert {gain.component for gain in result.gains} == {"docs"}


def test_notes_with_ci_are_still_not_code(tmp_path: Path) -> None:
    result = run(tmp_path, {"notes.md": "", ".github/workflows/pages.yml": "steps: []\n"})
    assert result.has_ci_cd and result.quality_score is None
    assert (result.tests, result.ci, result.lint) == (None, None, None)


@pytest.mark.parametrize(
    "evidence",
    [
        {"pom.xml": "<project/>", "src/main/java/com/example/app/App.java": ""},  # past the walk
        {"tools/pyproject.toml": "[project]\n"},  # a manifest below the top
        {"pytest.ini": "[pytest]\n"},  # a test runner configured
        {"coverage.json": '{"totals": {"percent_covered": 40}}'},  # a coverage figure
        {"lib.rs": ""},
    ],
)
def test_evidence_of_code(tmp_path: Path, evidence: dict[str, str]) -> None:
    result = run(tmp_path, {"README.md": "# x\n", **evidence})
    assert result.quality_score is not None and result.detected.unscored is None
    assert None not in (result.tests, result.ci, result.docs, result.lint)


def test_bare_repository(tmp_path: Path) -> None:
    files = {"HEAD": "ref: refs/heads/main\n", "config": "", "objects/pack/x": "", "refs/h": ""}
    result = run(tmp_path, files, last_worked_on=days_ago(10))
    assert (result.tests, result.ci, result.docs, result.lint) == (None, None, None, None)
    assert result.maintenance == 100 and result.quality_score is None  # never M alone
    assert result.detected.unscored == "no work tree to read (a bare repository)"
    assert result.error is None


def test_missing_project_is_a_failed_assessment(tmp_path: Path) -> None:
    result = assess(str(tmp_path / "gone"), last_worked_on=RECENT, now=NOW)
    assert result.error == "project: No such file or directory"
    assert result.quality_score is None  # not 100 from recent activity alone
    assert (result.docs, result.maintenance) == (None, None)


def test_an_unexpected_failure_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(score_module, "detect", broken)
    result = run(tmp_path, {"a.py": ""})
    assert result.error == "assess: RuntimeError('boom')"
    assert result.fingerprint == ""  # never matches: the next scan tries again
    assert result.quality_score is None and result.maintenance is None  # failed, not scored
    assert rescore(result, last_worked_on=RECENT, now=NOW).quality_score is None


def test_a_deeply_nested_manifest_does_not_fail_the_assessment(tmp_path: Path) -> None:
    """Issue 12: a package.json nested 100,000 levels raised RecursionError and the project
    scored 100 from maintenance alone. It is refused before decoding: a problem, not a
    failure, and every other file still counts."""
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000
    result = run(
        tmp_path,
        {
            "package.json": deep,
            "index.js": "",
            "README.md": LONG_README,
            "LICENSE": "MIT",
            ".github/workflows/ci.yml": "steps:\n  - run: npx eslint .\n",
        },
    )
    assert result.error is None
    assert result.detected.problems == ["package.json: nested deeper than 64 levels"]
    assert result.quality_score is not None and result.quality_score < 100
    assert result.docs == 65 and result.ci == 100 and result.detected.linters == ["eslint"]


def test_weights_change_the_score(tmp_path: Path) -> None:
    files = {"a.py": "", "README.md": LONG_README}
    default = run(tmp_path, files)
    docs_only = run(tmp_path, files, weights=Weights(tests=0, ci=0, docs=1, lint=0, maintenance=0))
    assert docs_only.quality_score == round_half_up(docs_only.docs or 0) == 50
    assert default.quality_score != docs_only.quality_score


def test_gains_sorted_by_points(tmp_path: Path) -> None:
    result = run(tmp_path, {"main.py": "", "README.md": "# x\n\nA small thing.\n"})
    pts = [gain.points for gain in result.gains]
    assert pts == sorted(pts, reverse=True)
    first = result.gains[0]
    assert (first.component, first.points) == ("ci", 70.0)
    assert (first.hint) == "a CI workflow (e.g. .github/workflows/ci.yml)"
    assert {gain.component for gain in result.gains} == {"tests", "ci", "docs", "lint"}
    hints = {gain.hint for gain in result.gains}
    assert {"add a LICENSE file", "a CI step that runs the tests or a linter"} <= hints
    assert "add tests with pytest (tests/test_*.py)" in hints
    # gained in full, every gain would take each component to 100 (T to its cap)
    by_component: dict[str, float] = {}
    for gain in result.gains:
        by_component[gain.component] = by_component.get(gain.component, 0) + gain.points
    assert result.tests is not None and result.tests + by_component["tests"] == 80
    for component in ("ci", "docs", "lint"):
        assert getattr(result, component) + by_component[component] == 100


def test_the_result_serialises(tmp_path: Path) -> None:
    result = run(tmp_path, {"a.py": "", "lcov.info": "SF:a\nDA:1,1\nDA:2,0\n"})
    again = msgspec.json.decode(msgspec.json.encode(result), type=Assessment)
    assert again == result


def test_stale_coverage_is_flagged(tmp_path: Path) -> None:
    make(tmp_path, {"a.py": "", "coverage.json": '{"totals": {"percent_covered": 90}}'})
    old = (NOW - timedelta(days=100)).timestamp()
    os.utime(tmp_path / "coverage.json", (old, old))
    result = run(tmp_path, last_worked_on=days_ago(10))
    assert result.coverage is not None and result.coverage.stale
    assert result.tests == 90  # still the figure, flagged


# --- rescore and fingerprint -----------------------------------------------------------------


def test_rescore_follows_time_and_weights(tmp_path: Path) -> None:
    make(tmp_path, {"a.py": "", "coverage.json": '{"totals": {"percent_covered": 90}}'})
    then = (NOW - timedelta(days=60)).timestamp()
    os.utime(tmp_path / "coverage.json", (then, then))
    first = run(tmp_path, last_worked_on=days_ago(50))
    assert first.coverage is not None and not first.coverage.stale
    later = rescore(first, last_worked_on=days_ago(5), now=NOW)
    assert later.maintenance == 100 and first.maintenance != 100
    assert later.coverage is not None and later.coverage.stale
    fresh = run(tmp_path, last_worked_on=days_ago(5))
    assert later == fresh
    weighted = rescore(first, last_worked_on=None, now=NOW, weights=ONLY_TESTS)
    assert weighted.maintenance is None and weighted.quality_score == 90


def test_fingerprint_is_stable_and_cheap_to_compare(tmp_path: Path) -> None:
    make(tmp_path, {"a.py": "", "README.md": "x", ".github/workflows/ci.yml": "x"})
    assert fingerprint(str(tmp_path)) == fingerprint(str(tmp_path))
    assert len(fingerprint(str(tmp_path))) == 20


@pytest.mark.parametrize(
    "change",
    [
        "LICENSE",  # a new root file
        "README.md",  # a rewritten one
        ".github/workflows/ci.yml",  # a CI file
        ".github/workflows/lint.yml",
        "coverage.json",  # a report appears
        "coverage/lcov.info",
        "target/site/jacoco/jacoco.xml",
        "docs/index.md",
        "tests/test_new.py",  # a top folder's listing
    ],
)
def test_fingerprint_changes_with_what_assess_reads(tmp_path: Path, change: str) -> None:
    make(
        tmp_path,
        {
            "a.py": "",
            "README.md": "x",
            ".github/workflows/ci.yml": "x",
            "docs/a.md": "",
            "tests/t.py": "",
        },
    )
    (tmp_path / "target/site/jacoco").mkdir(parents=True)
    (tmp_path / "coverage").mkdir()
    before = fingerprint(str(tmp_path))
    path = tmp_path / change
    old = path.read_text() if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(old + "changed, longer than before\n")
    assert fingerprint(str(tmp_path)) != before


def test_fingerprint_ignores_what_assess_does_not_read(tmp_path: Path) -> None:
    make(tmp_path, {"a.py": "", ".git/HEAD": "x", "node_modules/x/index.js": ""})
    before = fingerprint(str(tmp_path))
    (tmp_path / ".git" / "index.lock").write_text("")  # .git's mtime moves with every commit
    (tmp_path / "node_modules" / "y").mkdir()
    assert fingerprint(str(tmp_path)) == before


def test_undecodable_names_still_serialise(tmp_path: Path) -> None:
    """A non-UTF-8 folder or report name must not break the JSON a row is stored as."""
    root = os.fsencode(tmp_path)
    os.makedirs(os.path.join(root, b"pkg\xff", b"tests"))
    with open(os.path.join(root, b"pkg\xff", b"tests", b"test_a.py"), "w") as handle:
        handle.write("")
    os.makedirs(os.path.join(root, b"coverage"))
    with open(os.path.join(root, b"coverage", b"run\xff.info"), "w") as handle:
        handle.write("SF:a\nDA:1,1\n")
    result = run(tmp_path, {"app.py": ""})
    assert result.detected.test_dirs == ["pkg\ufffd/tests"]
    assert result.detected.reports == ["coverage/run\ufffd.info"]
    assert result.coverage is not None and result.coverage.percent == 100
    assert b"pkg\xef\xbf\xbd/tests" in msgspec.json.encode(result)
