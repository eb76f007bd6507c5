"""CI steps read one level down: does what a CI step runs run the tests or a linter?

Real project trees in tmp_path, each with a CI file whose step runs the project's own entry
point (a script, a Makefile target, a package.json script, a just recipe, a Taskfile task,
the Rakefile, a pyproject script), judged by `detect` as the daemon does. Before, only
commands named in the CI file itself counted: `scripts/test`, `bundle exec rake` and
`python runtests.py` ran no checks.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.domain.quality import steps
from daemon.domain.quality.detect import Findings, detect
from daemon.domain.quality.files import ProjectFiles
from daemon.domain.quality.items import total


def make(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def workflow(*commands: str) -> str:
    runs = "".join(f"      - run: {command}\n" for command in commands)
    return f"on: push\njobs:\n  ci:\n    runs-on: ubuntu-latest\n    steps:\n{runs}"


def found(root: Path, files: dict[str, str]) -> Findings:
    return detect(str(make(root, {"app.py": "", **files})))


HTTPX_SCRIPTS_TEST = """#!/bin/sh
export PREFIX=""
if [ -d 'venv' ] ; then
    export PREFIX="venv/bin/"
fi
set -ex
${PREFIX}coverage run -m pytest "$@"
"""
RAKEFILE = """require "bundler/gem_tasks"
require "rspec/core/rake_task"

RSpec::Core::RakeTask.new(:spec)

task default: :spec
"""
DJANGO_RUNTESTS = """#!/usr/bin/env python
import django
from django.conf import settings
from django.test.utils import get_runner

if __name__ == "__main__":
    TestRunner = get_runner(settings)
    failures = TestRunner().run_tests(["tests"])
"""
MAKEFILE = """VENV := .venv
.PHONY: ci lint test unit

ci: lint test

lint:
\t@ruff check .
\tmypy src

test:
\t$(MAKE) unit

unit:
\tpytest -q

build:
\tpython -m build
"""


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {
                ".github/workflows/ci.yml": workflow("scripts/test"),
                "scripts/test": HTTPX_SCRIPTS_TEST,
            },
            "scripts/test (runs pytest)",
            id="scripts-test",
        ),
        pytest.param(
            {
                ".travis.yml": "language: ruby\nscript: bundle exec rake\n",
                "Rakefile": RAKEFILE,
                "Gemfile": "",
            },
            "rake (runs rspec)",
            id="bundle-exec-rake",
        ),
        pytest.param(
            {
                ".github/workflows/ci.yml": workflow("python runtests.py"),
                "runtests.py": DJANGO_RUNTESTS,
            },
            "runtests.py (by its name)",
            id="python-runtests",
        ),
        pytest.param(
            {
                ".gitlab-ci.yml": "build:\n  script:\n    - ./script/cibuild\n",
                "script/cibuild": "#!/bin/sh\nset -e\nbundle install\nbundle exec rspec\n",
            },
            "script/cibuild (runs rspec)",
            id="cibuild-judged-by-what-it-runs",
        ),
        pytest.param(
            {".github/workflows/ci.yml": workflow("make ci"), "Makefile": MAKEFILE},
            "make ci (runs mypy, pytest, ruff)",
            id="make-target-and-its-prerequisites",
        ),
        pytest.param(
            {
                ".github/workflows/ci.yml": workflow("npm ci", "npm run verify"),
                "package.json": '{"scripts": {"verify": "npm run lint && run-s test:*",'
                ' "lint": "eslint .", "test:unit": "vitest run", "build": "tsc"}}',
            },
            "npm run verify (runs eslint, npm run lint, vitest)",
            id="package-json-scripts",
        ),
        pytest.param(
            {
                ".github/workflows/ci.yml": workflow("just"),
                "justfile": "set shell := ['bash', '-c']\n\ndefault: check\n\ncheck:\n"
                "    cargo clippy -- -D warnings\n    cargo test\n",
            },
            "just (runs cargo test, clippy)",
            id="just-default-recipe",
        ),
        pytest.param(
            {
                ".github/workflows/ci.yml": workflow("task ci"),
                "Taskfile.yml": "version: '3'\ntasks:\n  ci:\n    deps: [vet]\n    cmds:\n"
                "      - task: unit\n  unit:\n    cmds:\n      - go test ./...\n"
                "  vet:\n    cmds:\n      - go vet ./...\n",
            },
            "task ci (runs go, go test)",
            id="taskfile",
        ),
        pytest.param(
            {
                ".github/workflows/ci.yml": workflow("hatch run dev:check"),
                "pyproject.toml": '[project]\nname = "x"\n\n[tool.hatch.envs.dev.scripts]\n'
                'check = [\n  "ruff check .",\n  "mypy src",\n]\nfmt = "ruff format ."\n',
            },
            "hatch run dev:check (runs mypy, ruff)",
            id="hatch-script",
        ),
        pytest.param(
            {
                "Jenkinsfile": "pipeline {\n  stages {\n    stage('t') {\n      steps {\n"
                "        sh './ci/run-tests.sh'\n      }\n    }\n  }\n}\n",
                "ci/run-tests.sh": "#!/bin/sh\nexec node --test\n",
            },
            "ci/run-tests.sh (runs node --test)",
            id="jenkins-sh-step",
        ),
        pytest.param(
            {
                ".github/workflows/ci.yml": workflow("make ci"),
                "Makefile": "ci:\n\t./scripts/test\n",
                "scripts/test": "echo\n",
            },
            "make ci (runs scripts/test)",
            id="a-test-named-script-one-level-below",
        ),
        pytest.param(
            {
                ".circleci/config.yml": "version: 2.1\njobs:\n  test:\n    steps:\n"
                "      - checkout\n      - run:\n          name: Test\n"
                "          command: ./scripts/test\n",
                "scripts/test": "#!/bin/bash\nbundle exec rspec\n",
            },
            "scripts/test (runs rspec)",
            id="circleci-run-command",
        ),
        pytest.param(
            {
                "azure-pipelines.yml": "steps:\n- script: make ci\n  displayName: CI\n",
                "Makefile": MAKEFILE,
            },
            "make ci (runs mypy, pytest, ruff)",
            id="azure-script",
        ),
        pytest.param(
            {
                ".buildkite/pipeline.yml": 'steps:\n  - label: ":test_tube:"\n'
                '    command: "npm run check"\n',
                "package.json": '{"scripts": {"check": "tsc --noEmit && node scripts/run.js"}}',
            },
            "npm run check (by its name)",
            id="buildkite-command",
        ),
        pytest.param(
            {".github/workflows/ci.yml": workflow("python manage.py test --parallel")},
            "manage.py test",
            id="django-manage-py-test",
        ),
        pytest.param(
            {".github/workflows/ci.yml": workflow("pip install -e .[test] && pytest")},
            "pytest",
            id="installing-then-testing",
        ),
        pytest.param(
            {".github/workflows/ci.yml": workflow("bash -c 'make check'"), "Makefile": ""},
            "make check (by its name)",
            id="gnu-make-check",
        ),
    ],
)
def test_ci_steps_are_followed_one_level(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    findings = found(tmp_path, files)
    assert findings.detected.ci_runs_checks
    assert expected in findings.detected.ci_checks, findings.detected.ci_checks
    assert total(findings.items, "ci") == 100


def test_tools_run_through_make_feed_linting(tmp_path: Path) -> None:
    findings = found(
        tmp_path, {".github/workflows/ci.yml": workflow("make lint"), "Makefile": MAKEFILE}
    )
    assert findings.detected.linters == ["ruff"] and findings.detected.type_checkers == ["mypy"]


@pytest.mark.parametrize(
    "files",
    [
        pytest.param(
            {".github/workflows/ci.yml": workflow("make build"), "Makefile": MAKEFILE},
            id="a-target-that-builds",
        ),
        pytest.param(
            {
                ".github/workflows/ci.yml": workflow("./scripts/deploy"),
                "scripts/deploy": "#!/bin/sh\nrsync -a dist/ host:/srv/\n",
            },
            id="a-script-that-deploys",
        ),
        pytest.param(
            {
                ".github/workflows/ci.yml": workflow("npm ci", "npm run build"),
                "package.json": '{"scripts": {"build": "tsc", "test": "vitest"}}',
            },
            id="an-npm-build",
        ),
        pytest.param(
            # two levels down: make ci → scripts/all → pytest is not read (one level only)
            {
                ".github/workflows/ci.yml": workflow("make ci"),
                "Makefile": "ci:\n\tscripts/all\n",
                "scripts/all": "pytest\n",
            },
            id="two-levels-down",
        ),
        pytest.param(
            {
                ".github/workflows/ci.yml": "jobs:\n  a:\n    steps:\n      - uses: actions/upload"
                "-artifact@v4\n        with:\n          path: scripts/test\n",
                "scripts/test": "pytest\n",
            },
            id="a-path-that-is-not-a-command",
        ),
        pytest.param(
            {
                ".github/workflows/ci.yml": workflow("scripts/bootstrap"),
                "scripts/bootstrap": "#!/bin/sh\npip install pytest ruff\n"
                "npm install --save-dev jest\n",
            },
            id="a-script-that-installs-test-tools",
        ),
        pytest.param(
            {
                ".github/workflows/ci.yml": workflow("python setup.py sdist"),
                "setup.py": "setup(name='x', extras_require={'test': ['pytest']})\n",
            },
            id="setup-py-builds",
        ),
        pytest.param(
            {
                ".github/workflows/ci.yml": workflow(
                    "uv pip install pytest", "cargo install nextest"
                )
            },
            id="installing-in-the-ci-file",
        ),
    ],
)
def test_steps_that_run_no_checks(tmp_path: Path, files: dict[str, str]) -> None:
    findings = found(tmp_path, files)
    assert not findings.detected.ci_runs_checks, findings.detected.ci_checks
    assert findings.detected.ci_checks == []


@pytest.mark.parametrize(
    "path", ["../outside/cibuild", "/tmp/cibuild", "scripts/../../outside/cibuild"]
)
def test_a_script_outside_the_project_is_not_read(tmp_path: Path, path: str) -> None:
    make(tmp_path, {"outside/cibuild": "pytest\n"})
    project = tmp_path / "project"
    findings = found(project, {".github/workflows/ci.yml": workflow(f"bash {path}")})
    assert not findings.detected.ci_runs_checks


def test_shell_in_shell_is_looked_into_once(tmp_path: Path) -> None:
    """`bash -c 'bash -c …'` nested thousands deep ends (it once could recurse without end)."""
    nested = "bash -c " * 5000 + "make test"
    findings = found(tmp_path, {".github/workflows/ci.yml": workflow(nested), "Makefile": ""})
    assert findings.problems == []
    assert steps.targets(["bash", "-c", "make", "test"], ProjectFiles(str(tmp_path)))


def test_hostile_files_cost_no_time(tmp_path: Path) -> None:
    """Long lines that made regexes backtrack: 64 KB of "mvn " in a CI file took ~16 s, a
    Makefile or justfile line of 64 KB without a colon ~6 s and minutes. Now linear: well
    under a second for all of them together (3 s allows for a loaded machine)."""
    spaces = "a" + " " * 64_000 + "b\n"
    files = {".github/workflows/ci.yml": workflow("make ci", "just ci") + "mvn " * 15_000}
    files |= {".gitlab-ci.yml": "script: gradle " * 4_000, "Makefile": spaces}
    files |= {"justfile": spaces + "x" * 64_000 + "\n"}
    started = time.monotonic()
    found(tmp_path, files)
    assert time.monotonic() - started < 3


def test_a_fifo_named_like_a_script_does_not_hang_the_scan(tmp_path: Path) -> None:
    make(tmp_path, {".github/workflows/ci.yml": workflow("./scripts/cibuild"), "app.py": ""})
    (tmp_path / "scripts").mkdir()
    os.mkfifo(tmp_path / "scripts" / "cibuild")
    findings = detect(str(tmp_path))  # would block for ever on a blocking open
    assert not findings.detected.ci_runs_checks


def test_what_is_read_is_bounded(tmp_path: Path) -> None:
    """Forty scripts in one workflow: the first FOLLOW_MAX are read, the rest are not."""
    names = [f"scripts/step{i:02}" for i in range(40)]
    files = {name: "echo step\n" for name in names[:-1]} | {names[-1]: "pytest\n"}
    findings = found(tmp_path, {".github/workflows/ci.yml": workflow(*names), **files})
    assert not findings.detected.ci_runs_checks
    budget = steps.Budget()
    project = ProjectFiles(str(tmp_path))
    read = [t for name in names for t in steps.targets([name], project, budget) if t.body]
    assert len(read) == steps.FOLLOW_MAX


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("make test", [["make", "test"]]),
        ("FOO=1 sudo -E make test", [["make", "test"]]),
        (
            "poetry run pytest -q && uv run --frozen ruff check .",
            [["pytest", "-q"], ["ruff", "check", "."]],
        ),
        ('${PREFIX}coverage run -m pytest "$@"', [["coverage", "run", "-m", "pytest", "$@"]]),
        ("bundle exec rake # the default task", [["rake"]]),
        ("(cd web; npm test) | tee log", [["cd", "web"], ["npm", "test"], ["tee", "log"]]),
        ("bundle install", [["bundle", "install"]]),
    ],
)
def test_commands_of_a_line(line: str, expected: list[list[str]]) -> None:
    assert steps.commands(line) == expected


def test_command_lines_of_a_ci_file() -> None:
    text = (
        "name: CI\non: push\njobs:\n  t:\n    steps:\n      - uses: actions/checkout@v4\n"
        "      - name: Test\n        run: |\n          make ci\n          # make deploy\n"
        "      - run: 'scripts/test'\n  gitlab:\n    script:\n      - tox -e lint\n"
        "stage('x') { sh \"./ci/run\" }\n"
    )
    assert list(steps.command_lines(text)) == [
        "|",
        "make ci",
        "scripts/test",
        "tox -e lint",
        "./ci/run",
    ]


CHECK_NAMES = ["test", "tests", "runtests", "run_tests", "test:unit", "unit-test", "spec", "check"]
CHECK_NAMES += ["lint:js", "typecheck"]
OTHER_NAMES = ["latest", "contest", "build", "cibuild", "deploy"]


@pytest.mark.parametrize(
    ("name", "check"), [(n, True) for n in CHECK_NAMES] + [(n, False) for n in OTHER_NAMES]
)
def test_names_that_say_tests_or_lint(name: str, check: bool) -> None:
    assert steps.named_check(name) is check


_TOKENS = [*"abcmnpst -_./:;&|()'\"$={}[]#@\t\n*\\~", "make", "npm run", "yarn", "just"]
_TOKENS += ["task", "rake", "bundle exec", "hatch run", "bash -c", "python", "scripts/test"]
_TOKENS += [
    "ci",
    "- run: ",
    "script:",
    "$(MAKE)",
    "pre",
    "test",
    "lint",
    "tasks:",
    "deps:",
    "..",
    "/",
]
_SHELLISH = st.lists(st.sampled_from(_TOKENS), max_size=120).map("".join)


@settings(max_examples=150, deadline=None, database=None)
@given(ci=_SHELLISH, makefile=_SHELLISH, justfile=_SHELLISH, taskfile=_SHELLISH, package=_SHELLISH)
def test_following_never_raises(
    ci: str, makefile: str, justfile: str, taskfile: str, package: str
) -> None:
    """Whatever the CI file and the files it names hold, detection ends with an answer."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        files = {".github/workflows/ci.yml": ci, "Makefile": makefile, "justfile": justfile}
        scripts = {"ci": package, "test": ci, "lint": makefile, "pretest": justfile}
        files |= {"Taskfile.yml": taskfile, "scripts/test": ci}
        files |= {"package.json": json.dumps({"scripts": scripts})}
        files |= {"pyproject.toml": "[tool.hatch.envs.default.scripts]\n" + package}
        make(root, files)
        findings = detect(str(root))
        assert isinstance(findings.detected.ci_runs_checks, bool)
        assert len(findings.detected.ci_checks) <= 12
