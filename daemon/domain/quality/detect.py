"""What a project's files show about tests, CI, documentation and linting (QUALITY.md).

`detect` lists the root once, walks the tree once (bounded), reads a few small files, and
returns a `Detected` for people plus the scoring items for score.py. It never raises: an
unreadable file costs its points, and the problem is noted in `Findings.problems`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from daemon.domain.quality.ci import CI, detect_ci
from daemon.domain.quality.docs import Docs, detect_docs
from daemon.domain.quality.files import ProjectFiles, printable
from daemon.domain.quality.items import Item, item
from daemon.domain.quality.lint import Lint, detect_lint
from daemon.domain.quality.model import Detected
from daemon.domain.quality.runners import Tests, detect_tests
from daemon.domain.quality.walk import Tree, walk


@dataclass(slots=True)
class Findings:
    detected: Detected  # without `reports`: coverage is found separately
    # the items of T's formula without coverage, then C's, D's and L's
    items: list[Item] = field(default_factory=list)
    tree: Tree = field(default_factory=Tree)
    ci: CI = field(default_factory=CI)
    lint: Lint = field(default_factory=Lint)
    has_documentation: bool = False
    work_tree: bool = True  # False: a bare repository or an unreadable root, nothing to see
    code: bool = False  # code was seen (or may lie past the walk): T, C and L can be measured
    problems: list[str] = field(default_factory=list)


def detect(
    project: str, *, description: str | None = None, files: ProjectFiles | None = None
) -> Findings:
    """Everything but coverage. `description`: as for `score.assess` (it earns the docs
    item for a description); `files`: the root already listed, to share its reads."""
    files = files if files is not None else ProjectFiles(project)
    if not files.listed or is_bare(files):
        return Findings(detected=Detected(), work_tree=False, problems=files.problems)
    tree = walk(project)
    language = tree.main_language()
    ci = detect_ci(files)
    tests: Tests = detect_tests(files, tree)
    docs: Docs = detect_docs(files, description=description)
    lint = detect_lint(files, ci, language)
    detected = Detected(
        # names from the disk may hold undecodable bytes, which JSON cannot carry
        test_dirs=[printable(rel) for rel in tree.test_dirs],
        test_files=tree.test_files,
        source_files=tree.source_files,
        test_runners=tests.runners,
        ci=ci.services,
        ci_runs_checks=ci.runs_checks,
        ci_checks=ci.checks,
        docs=[printable(name) for name in docs.found],
        linters=lint.linters,
        formatters=lint.formatters,
        type_checkers=lint.type_checkers,
        hooks=lint.hooks,
        editorconfig=lint.editorconfig,
    )
    return Findings(
        detected=detected,
        items=[*tests.items, *_ci_items(ci), *docs.items, *lint.items],
        tree=tree,
        ci=ci,
        lint=lint,
        has_documentation=docs.has_documentation,
        code=tree.has_code or bool(tests.runners),
        problems=files.problems,
    )


def is_bare(files: ProjectFiles) -> bool:
    """A bare repository: git's files and no work tree, so no README, CI or source to read."""
    return ".git" not in files.dirs and "HEAD" in files.files and {"objects", "refs"} <= files.dirs


def _ci_items(ci: CI) -> list[Item]:
    return [
        item("ci", 70, ci.present, "a CI workflow (e.g. .github/workflows/ci.yml)"),
        item("ci", 30, ci.runs_checks, "a CI step that runs the tests or a linter"),
    ]
