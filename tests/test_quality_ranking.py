"""The score ranks projects the way a developer would: property tests over generated projects.

Each example is a real folder made in tmp_path from a generated shape (sources, tests, README,
LICENSE, CI with or without a test step, linter and hook configs, a runner config, a manifest,
a coverage report, notes, a bare repository, the age of the last work) and assessed by
`score.assess`; rankings come from the real `quality_db.ranked` query over a real SQLite file.

The rules asserted (QUALITY.md, issue 13 §6):
- too little to measure (no code, no work tree) is n/a: no score, a reason, and it never ranks
  above a project with evidence; a project with evidence always has a score;
- adding code without tests may lower a score (the test-ratio item, 0.3 x 15 points at most),
  never below a project that has no code at all;
- adding something good (a test, a README, a LICENSE, CI, a CI test step, a linter, hooks…)
  never lowers a score;
- the score is a weighted mean of the measured components, and time alone (`rescore`) gives
  what a fresh assessment gives.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.domain.quality import sql as quality_db
from daemon.domain.quality.model import Assessment, Weights
from daemon.domain.quality.score import assess, rescore
from daemon.domain.quality.sql import QUALITY
from daemon.store import connection, migrations
from daemon.store.batch import Tx
from daemon.store.clock import iso

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
WEIGHTS = Weights()
RATIO_ITEM = WEIGHTS.tests * 15  # what adding untested code can cost: T's test-ratio item
LONG_README = (
    "# Tool\n\nTool keeps a memory of every project in a folder, answered by a small daemon.\n\n"
    "## Install\n\n    pip install tool\n\n## Usage\n\n" + "Run the tool. " * 80 + "\n"
)
CI_TEXT = {
    "plain": "on: push\njobs:\n  build:\n    steps:\n      - run: echo building\n",
    "checks": "on: push\njobs:\n  test:\n    steps:\n      - run: python -m pytest -q\n",
}
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis folder in the working directory
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Shape:
    sources: int = 0
    tests: int = 0
    readme: str | None = None  # None, "short", "long"
    license: bool = False
    ci: str | None = None  # None, "plain", "checks"
    linter: bool = False
    hooks: bool = False
    editorconfig: bool = False
    runner: bool = False  # pytest.ini
    manifest: bool = False  # pyproject.toml
    coverage: float | None = None
    notes: int = 0
    bare: bool = False
    days: float | None = 3.0  # since the last work; None: unknown

    @property
    def code(self) -> bool:
        """What the rule calls evidence of code."""
        evidence = self.sources or self.tests or self.runner or self.manifest
        return not self.bare and bool(evidence or self.coverage is not None)

    def files(self) -> dict[str, str]:
        if self.bare:
            return {"HEAD": "ref: refs/heads/main\n", "config": "", "objects/x": "", "refs/y": ""}
        files: dict[str, str] = {}
        files |= {f"pkg/mod{i}.py": "x = 1\n" for i in range(self.sources)}
        files |= {f"tests/test_mod{i}.py": "def test(): pass\n" for i in range(self.tests)}
        files |= {f"notes/day{i}.md": "thoughts\n" for i in range(self.notes)}
        if self.readme:
            files["README.md"] = LONG_README if self.readme == "long" else "# x\n\nA thing.\n"
        if self.license:
            files["LICENSE"] = "MIT\n"
        if self.ci:
            files[".github/workflows/ci.yml"] = CI_TEXT[self.ci]
        if self.linter:
            files["ruff.toml"] = "line-length = 100\n"
        if self.hooks:
            files[".pre-commit-config.yaml"] = "repos: []\n"
        if self.editorconfig:
            files[".editorconfig"] = "root = true\n"
        if self.runner:
            files["pytest.ini"] = "[pytest]\n"
        if self.manifest:
            files["pyproject.toml"] = '[project]\nname = "x"\n'
        if self.coverage is not None:
            files["coverage.json"] = f'{{"totals": {{"percent_covered": {self.coverage}}}}}'
        return files


_with_files = st.builds(
    Shape,
    sources=st.integers(0, 12),
    tests=st.integers(0, 2),
    readme=st.sampled_from([None, "short", "long"]),
    license=st.booleans(),
    ci=st.sampled_from([None, "plain", "checks"]),
    linter=st.booleans(),
    hooks=st.booleans(),
    editorconfig=st.booleans(),
    runner=st.booleans(),
    manifest=st.booleans(),
    coverage=st.one_of(st.none(), st.floats(0, 100).map(lambda x: round(x, 1))),
    notes=st.integers(0, 2),
    days=st.one_of(st.none(), st.floats(0, 400)),
)
# A bare repository now and then (one in ten), whatever else the shape says.
shapes = st.tuples(_with_files, st.integers(0, 9)).map(lambda t: replace(t[0], bare=t[1] == 0))
documents_only = st.builds(  # no code at all: what a folder of notes or a README is
    Shape,
    readme=st.sampled_from([None, "short", "long"]),
    license=st.booleans(),
    ci=st.sampled_from([None, "plain"]),
    editorconfig=st.booleans(),
    notes=st.integers(0, 3),
    days=st.one_of(st.none(), st.floats(0, 400)),
)
# Each: (description, what it changes). Applied to a shape, it can only add something good.
Improvement = tuple[str, Callable[[Shape], Shape]]
IMPROVEMENTS: list[Improvement] = [
    ("a test file", lambda s: replace(s, tests=s.tests + 1)),
    ("a README", lambda s: replace(s, readme="short") if s.readme is None else s),
    ("a longer README", lambda s: replace(s, readme="long")),
    ("a LICENSE", lambda s: replace(s, license=True)),
    ("CI", lambda s: replace(s, ci="plain") if s.ci is None else s),
    ("a CI test step", lambda s: replace(s, ci="checks")),
    ("a linter config", lambda s: replace(s, linter=True)),
    ("git hooks", lambda s: replace(s, hooks=True)),
    ("an .editorconfig", lambda s: replace(s, editorconfig=True)),
    ("a test runner config", lambda s: replace(s, runner=True)),
]


@pytest.fixture
def folders(tmp_path: Path) -> Iterator[Folders]:
    made = Folders(tmp_path)
    yield made
    made.close()


class Folders:
    """A fresh folder per assessed shape (hypothesis runs many examples in one test)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: list[str] = []

    def assess(self, shape: Shape, **options: object) -> Assessment:
        folder = Path(tempfile.mkdtemp(dir=self.root))
        self._made.append(str(folder))
        for rel, text in shape.files().items():
            path = folder / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        worked = None if shape.days is None else iso(NOW - timedelta(days=shape.days))
        kwargs: dict[str, object] = {"last_worked_on": worked, "now": NOW} | options
        result = assess(str(folder), **kwargs)  # type: ignore[arg-type]
        shutil.rmtree(folder)
        return result

    def close(self) -> None:
        for folder in self._made:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connection.open_writer(
        str(tmp_path / "rank.db"), synchronous="OFF", busy_timeout_ms=1000
    )
    migrations.migrate(conn, migrations.load())
    yield conn
    conn.close()


def ranked(conn: sqlite3.Connection, assessments: list[Assessment]) -> list[int]:
    """The order `quality.list` shows these projects in: their indexes, best first."""
    conn.execute("BEGIN")
    tx = Tx(conn, iso(NOW))  # the writer's transaction, as the daemon's scan writes in
    try:
        for index, assessment in enumerate(assessments):
            project = conn.execute(
                "INSERT INTO projects (name, path, created_at, updated_at) "
                "VALUES (?, ?, ?, ?) RETURNING id",
                (f"p{index:03}", f"/dev/p{index:03}", iso(NOW), iso(NOW)),
            ).fetchone()[0]
            QUALITY.insert(tx, quality_db.values(project, assessment, tx.now))
        page = quality_db.ranked(conn, iso(NOW - timedelta(days=7)), 100, 0)
        return [int(item.name[1:]) for item in page.items]
    finally:
        conn.execute("ROLLBACK")


# --- the rules ---------------------------------------------------------------------------------


@SETTINGS
@given(shape=shapes)
def test_too_little_to_measure_is_na_and_evidence_is_scored(folders: Folders, shape: Shape) -> None:
    result = folders.assess(shape)
    assert result.error is None
    if shape.code:
        assert result.quality_score is not None and 0 <= result.quality_score <= 100
        assert result.detected.unscored is None
    else:
        assert result.quality_score is None, f"{shape} scored {result.quality_score}"
        assert result.detected.unscored  # n/a says why


@SETTINGS
@given(group=st.lists(shapes, min_size=2, max_size=6))
def test_na_never_ranks_above_a_project_with_evidence(
    folders: Folders, db: sqlite3.Connection, group: list[Shape]
) -> None:
    results = [folders.assess(shape) for shape in group]
    order = ranked(db, results)
    scores = [results[i].quality_score for i in order]
    scored = [s for s in scores if s is not None]
    assert scores == scored + [None] * (len(scores) - len(scored)), scores  # n/a last
    assert scored == sorted(scored, reverse=True)


@SETTINGS
@given(base=st.one_of(shapes, documents_only), more=st.integers(1, 30))
def test_code_without_tests_may_lower_a_score_but_not_below_no_code(
    folders: Folders, db: sqlite3.Connection, base: Shape, more: int
) -> None:
    """The example from the issue: a README alone scored 50, with one source file 15."""
    with_code = replace(base, sources=base.sources + more)
    before, after = folders.assess(base), folders.assess(with_code)
    if base.bare:
        return  # a bare repository has no files to add code to
    assert after.quality_score is not None
    if before.quality_score is None:  # no code before: n/a, now ranked above that
        assert ranked(db, [before, after]) == [1, 0]
    else:
        assert after.quality_score >= before.quality_score - RATIO_ITEM - 1  # rounding


@SETTINGS
@given(base=shapes, change=st.sampled_from(IMPROVEMENTS))
def test_something_good_never_lowers_the_score(
    folders: Folders, base: Shape, change: Improvement
) -> None:
    what, improve = change
    better = improve(base)
    before, after = folders.assess(base), folders.assess(better)
    if before.quality_score is None:
        return  # n/a: ranks below whatever `after` is
    assert after.quality_score is not None, what
    assert after.quality_score >= before.quality_score, (what, base)


@SETTINGS
@given(shape=shapes, later=st.one_of(st.none(), st.floats(0, 400)))
def test_the_score_is_a_weighted_mean_and_time_alone_matches_a_fresh_look(
    folders: Folders, shape: Shape, later: float | None
) -> None:
    result = folders.assess(shape)
    parts = [result.tests, result.ci, result.docs, result.lint, result.maintenance]
    measured = [part for part in parts if part is not None]
    if result.quality_score is not None:
        assert min(measured) - 0.5 <= result.quality_score <= max(measured) + 0.5
    worked = None if later is None else iso(NOW - timedelta(days=later))
    moved = rescore(result, last_worked_on=worked, now=NOW)
    fresh = folders.assess(replace(shape, days=later))
    assert (moved.quality_score, moved.detected.unscored) == (
        fresh.quality_score,
        fresh.detected.unscored,
    )


def test_the_examples_from_the_issue(folders: Folders, db: sqlite3.Connection) -> None:
    readme = Shape(readme="short")
    readme_and_code = Shape(readme="short", sources=1)
    kept = Shape(readme="long", license=True, sources=3, tests=1, ci="checks", linter=True)
    results = [folders.assess(shape) for shape in (readme, readme_and_code, kept)]
    assert results[0].quality_score is None  # was 50
    assert results[1].quality_score is not None  # was 15, below the README alone
    assert ranked(db, results) == [2, 1, 0]
    bare = folders.assess(Shape(bare=True, days=0))
    assert bare.quality_score is None and bare.maintenance == 100  # was 100 from M alone
