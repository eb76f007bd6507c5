"""Tests without a coverage report: are there tests, is a runner configured, are there enough.

T = 50·has_tests + 15·runner configured + 15·(test files ÷ source files ≥ 0.1), capped at 80
(QUALITY.md). A runner counts when its config is at the top of the project, or when the
ecosystem's runner needs none: `go test` once there is a *_test.go, `cargo test` for any crate
(Rust tests live inline in the sources, which this scan does not open), Maven, Gradle, mix
and dart/flutter once there is a test folder.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from daemon.domain.quality.files import ProjectFiles, nested, tool_tables
from daemon.domain.quality.items import Item, item
from daemon.domain.quality.walk import Tree

TEST_RATIO = 0.1

# Root files that configure a runner → the runner.
_CONFIGS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("pytest.ini", "conftest.py"), "pytest"),
    (("tox.ini",), "tox"),
    (("noxfile.py",), "nox"),
    (tuple(f"jest.config.{ext}" for ext in ("js", "ts", "mjs", "cjs", "json")), "jest"),
    (
        tuple(
            f"vitest.{k}.{e}" for k in ("config", "workspace") for e in ("ts", "js", "mts", "mjs")
        ),
        "vitest",
    ),
    (("karma.conf.js", "karma.conf.ts", "karma.conf.cjs"), "karma"),
    (tuple(f".mocharc.{ext}" for ext in ("js", "cjs", "json", "jsonc", "yaml", "yml")), "mocha"),
    (("ava.config.js", "ava.config.cjs", "ava.config.mjs"), "ava"),
    (("playwright.config.ts", "playwright.config.js"), "playwright"),
    (("cypress.config.ts", "cypress.config.js", "cypress.json"), "cypress"),
    (("phpunit.xml", "phpunit.xml.dist", "phpunit.dist.xml"), "phpunit"),
    ((".rspec",), "rspec"),
    (("Cargo.toml",), "cargo test"),
)
# A manifest whose build tool runs tests without configuration, once tests exist.
_BUILT_IN = (
    ("pom.xml", "maven"),
    ("build.gradle", "gradle"),
    ("build.gradle.kts", "gradle"),
    ("mix.exs", "mix test"),
    ("pubspec.yaml", "dart test"),
)
_JS_RUNNERS = ("vitest", "jest", "mocha", "ava", "tap", "karma", "jasmine", "playwright", "cypress")
_NPM_PLACEHOLDER = "no test specified"  # `npm init`'s "test" script, which only fails
_PYTEST_REQUIREMENT = re.compile(r"^\s*pytest\b", re.MULTILINE | re.IGNORECASE)
# "pytest>=8" in an array, or `pytest = "^8"` as a Poetry key
_PYTEST_DEPENDENCY = re.compile(r"""(["']|^[ \t]*)pytest\b(?![-.\w])""", re.MULTILINE)
_REQUIREMENT_FILES = ("requirements-dev.txt", "requirements-test.txt", "dev-requirements.txt")
_MAKE_TARGET = re.compile(r"^(test|tests|check)\s*:", re.MULTILINE)
_CTEST = re.compile(r"\b(enable_testing|add_test)\s*\(", re.IGNORECASE)

# What to add, by the project's main language: a person should see their own tools named.
_HINTS: dict[str, tuple[str, str]] = {  # language → (tests, runner)
    "Python": (
        "tests with pytest (tests/test_*.py)",
        "a pytest config ([tool.pytest] in pyproject)",
    ),
    "JavaScript": (
        "tests (*.test.js with Vitest or Jest)",
        'a test runner (vitest.config.js, a "test" script)',
    ),
    "TypeScript": (
        "tests (*.test.ts with Vitest or Jest)",
        'a test runner (vitest.config.ts, a "test" script)',
    ),
    "Go": ("tests (*_test.go)", "*_test.go files (go test runs them)"),
    "Rust": ("integration tests (tests/*.rs)", "a Cargo.toml (cargo test)"),
    "Ruby": ("specs (spec/*_spec.rb) or tests (test/*_test.rb)", "an RSpec setup (.rspec)"),
    "PHP": ("tests (tests/*Test.php)", "a phpunit.xml"),
    "Java": ("tests (src/test/java)", "a test task (Maven or Gradle)"),
}
_DEFAULT_HINTS = ("tests (a tests/ folder)", "a test runner config")


@dataclass(slots=True)
class Tests:
    items: list[Item] = field(default_factory=list)
    runners: list[str] = field(default_factory=list)


def detect_tests(files: ProjectFiles, tree: Tree) -> Tests:
    runners = test_runners(files, tree)
    ratio = tree.test_files > 0 and tree.test_files >= TEST_RATIO * tree.source_files
    tests_hint, runner_hint = _HINTS.get(tree.main_language() or "", _DEFAULT_HINTS)
    shares = f"{tree.test_files} test files for {tree.source_files} source files"
    return Tests(
        items=[
            item("tests", 50, tree.has_tests, f"add {tests_hint}"),
            item("tests", 15, bool(runners), runner_hint),
            item("tests", 15, ratio, f"more tests: at least 1 test file per 10 ({shares})"),
        ],
        runners=runners,
    )


def test_runners(files: ProjectFiles, tree: Tree) -> list[str]:
    found: list[str] = []

    def add(name: str) -> None:
        if name not in found:
            found.append(name)

    for names, runner in _CONFIGS:
        if any(name in files.files for name in names):
            add(runner)
    _python(files, add)
    _package_json(files.json("package.json"), add)
    if tree.go_tests:
        add("go test")
    if tree.has_tests:
        for manifest, runner in _BUILT_IN:
            if manifest in files.files:
                add(runner)
    for name in ("Makefile", "makefile", "GNUmakefile", "justfile", "Justfile"):
        if name in files.files and _MAKE_TARGET.search(files.text(name) or ""):
            add("just test" if name.lower() == "justfile" else "make test")
    if "CMakeLists.txt" in files.files and _CTEST.search(files.text("CMakeLists.txt") or ""):
        add("ctest")
    return found


def _python(files: ProjectFiles, add: Callable[[str], None]) -> None:
    tables = files.toml_tables("pyproject.toml") if "pyproject.toml" in files.files else {}
    tools = tool_tables(tables)
    if "pytest" in tools or _pytest_dependency(tables):
        add("pytest")
    if "tox" in tools:
        add("tox")
    if "setup.cfg" in files.files:
        sections = files.ini_sections("setup.cfg")
        if "tool:pytest" in sections:
            add("pytest")
        if "tox:tox" in sections:
            add("tox")
    if "tox.ini" in files.files and "pytest" in files.ini_sections("tox.ini"):
        add("pytest")
    for name in _REQUIREMENT_FILES:
        if name in files.files and _PYTEST_REQUIREMENT.search(files.text(name) or ""):
            add("pytest")


def _pytest_dependency(tables: dict[str, str]) -> bool:
    """pytest among the dev/test dependencies: pytest needs no config, so this is its setup.
    (In [project] itself it is a main dependency: a pytest plugin, which surely has tests.)"""
    bodies = [
        body
        for name, body in tables.items()
        if name in ("project", "project.optional-dependencies", "dependency-groups")
        or (name.startswith("tool.poetry.") and name.endswith("dependencies"))
    ]
    return any(_PYTEST_DEPENDENCY.search(body) for body in bodies)


def _package_json(package: Any, add: Callable[[str], None]) -> None:
    if not isinstance(package, dict):
        return
    if "jest" in package:
        add("jest")
    script = nested(package, "scripts", "test")
    if isinstance(script, str) and script.strip() and _NPM_PLACEHOLDER not in script:
        named = [runner for runner in _JS_RUNNERS if re.search(rf"\b{runner}\b", script)]
        if "node --test" in script:
            named.append("node --test")
        for runner in named or ["npm test"]:
            add(runner)
