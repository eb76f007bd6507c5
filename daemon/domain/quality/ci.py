"""CI: which services are configured, and whether a CI file runs the tests or a linter.

"Runs checks" is judged from the first 64 KB of each CI file by the commands it names
(pytest, npm test, cargo clippy, …), comment lines left out, and by what its steps run one
level down (steps.py): a script in the project (`scripts/test`, `python runtests.py`), a
Makefile target, a package.json script, a just recipe, a Taskfile task, the Rakefile, a
pyproject script. Such a target runs checks when what it runs names a test or lint command,
or runs something named like one (`./scripts/test` inside `make ci`), or when its own name
says so (`make check`, `npm run test:unit`). The same pass notes which linters, formatters
and type checkers CI runs, for the linting component, and what was seen (`CI.checks`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from daemon.domain.quality import steps
from daemon.domain.quality.files import ProjectFiles, printable

CI_FILES_READ = 20  # a project with more CI files than this is judged on the first ones
CHECKS_KEPT = 12  # CI.checks is for a person to read

# A fixed file → the service.
_FILES: tuple[tuple[str, str], ...] = (
    (".gitlab-ci.yml", "gitlab-ci"),
    (".gitlab-ci.yaml", "gitlab-ci"),
    (".circleci/config.yml", "circleci"),
    (".circleci/config.yaml", "circleci"),
    ("Jenkinsfile", "jenkins"),
    ("azure-pipelines.yml", "azure-pipelines"),
    ("azure-pipelines.yaml", "azure-pipelines"),
    (".travis.yml", "travis"),
    (".drone.yml", "drone"),
    ("bitbucket-pipelines.yml", "bitbucket-pipelines"),
    ("appveyor.yml", "appveyor"),
    (".appveyor.yml", "appveyor"),
    (".cirrus.yml", "cirrus"),
    (".woodpecker.yml", "woodpecker"),
    (".woodpecker.yaml", "woodpecker"),
    (".semaphore/semaphore.yml", "semaphore"),
)
# A folder of CI files → the service, and the suffixes that count (None: any file).
_FOLDERS: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    (".github/workflows", "github-actions", (".yml", ".yaml")),
    (".gitea/workflows", "gitea-actions", (".yml", ".yaml")),
    (".forgejo/workflows", "forgejo-actions", (".yml", ".yaml")),
    (".buildkite", "buildkite", None),
    (".woodpecker", "woodpecker", (".yml", ".yaml")),
    (".azure-pipelines", "azure-pipelines", (".yml", ".yaml")),
    (".ci", "ci-scripts", None),  # scripts a CI service calls (this project's own .ci/run)
)
CI_FOLDERS = tuple(folder for folder, _, _ in _FOLDERS)
CI_FILES = tuple(path for path, _ in _FILES)

# (words, pattern, tool, kind). The words are where the pattern can start: they are found with
# str.find and the pattern is tried there only (one big alternation scanned at every offset
# took milliseconds per file; this takes tens of microseconds).
# Any match makes the file one that runs checks (a type check or a format check is linting);
# "lint", "format" and "types" also tell the linting component which tools are enforced.
# Tool "" is the command's first word, "*" the command itself.
_JS_PM = ("npm", "pnpm", "yarn", "bun")
_COMMANDS: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    (("pytest", "py.test"), r"pytest|py\.test", "pytest", "test"),
    (("tox", "nox"), r"tox|nox", "tox", "test"),
    (_JS_PM, r"(npm|pnpm|yarn|bun)( run)? test(:\S+)?", "*", "test"),
    (
        ("go", "cargo", "swift", "mix", "flutter", "dart", "deno", "dotnet", "bun"),
        r"(go|cargo|swift|mix|flutter|dart|deno|dotnet|bun) test",
        "*",
        "test",
    ),
    (
        ("cargo", "node", "ctest", "unittest", "hatch"),
        r"cargo nextest|node --test|ctest|unittest|hatch (run )?test",
        "*",
        "test",
    ),
    (
        (
            "bazel",
            "bazelisk",
            "stack",
            "cabal",
            "dune",
            "zig",
            "sbt",
            "lein",
            "meson",
            "xcodebuild",
        ),
        r"(bazel|bazelisk|stack|cabal|dune|zig build|sbt|lein|meson|xcodebuild) (test|runtest)",
        "*",
        "test",
    ),
    (
        ("nosetests", "nose2", "behave", "cucumber", "prove", "busted", "bats"),
        r"nosetests|nose2|behave|cucumber|prove|busted|bats",
        "",
        "test",
    ),
    # a Rakefile's test tasks (`rake` runs them: `task default: :spec`)
    (("rake::testtask", "minitest::testtask"), r"(rake|minitest)::testtask", "rake test", "test"),
    # the goal within a line's reach ([^\n]* backtracked quadratically over "mvn mvn mvn…")
    (("mvn",), r"mvnw?\b[^\n]{0,160}?\b(test|verify|install|package)", "maven", "test"),
    (("gradle",), r"gradlew?\b[^\n]{0,160}?\b(test|check|build)", "gradle", "test"),
    (("make", "just", "task"), r"(make|just|task) (test|check)", "make test", "test"),
    (
        ("jest", "vitest", "mocha", "karma", "phpunit", "pest", "rspec", "playwright", "cypress"),
        r"jest|vitest|mocha|karma|phpunit|pest|rspec|playwright test|cypress run",
        "*",
        "test",
    ),
    (("rake", "test.sh", "tests.sh"), r"rake (test|spec)|tests?\.sh", "*", "test"),
    (("setup.py", "manage.py"), r"(setup|manage)\.py test", "*", "test"),  # setuptools, Django
    (("ruff format",), r"ruff format", "ruff-format", "format"),
    (("ruff",), r"ruff(?! format)", "ruff", "lint"),
    (
        ("flake8", "pylint", "eslint", "golangci-lint", "rubocop", "shellcheck", "phpcs"),
        r"flake8|pylint|eslint|golangci-lint|rubocop|shellcheck|phpcs",
        "",
        "lint",
    ),
    (("swiftlint", "credo"), r"swiftlint|credo", "", "lint"),
    (("clippy",), r"(cargo )?clippy", "clippy", "lint"),
    (
        ("biome", "deno", "go", "staticcheck"),
        r"biome (ci|check|lint)|deno lint|go vet|staticcheck",
        "",
        "lint",
    ),
    (
        (*_JS_PM, "make", "just", "task"),
        r"(npm|pnpm|yarn|bun)( run)? lint(:\S+)?|(make|just|task) lint",
        "*",
        "lint",
    ),
    (("pre-commit",), r"pre-commit run|pre-commit/action", "pre-commit", "lint"),
    (
        ("black", "prettier", "gofmt", "clang-format"),
        r"black|prettier|gofmt|clang-format",
        "",
        "format",
    ),
    (("cargo", "rustfmt"), r"cargo fmt|rustfmt", "rustfmt", "format"),
    (("mypy", "pyright", "phpstan", "psalm"), r"mypy|pyright|phpstan|psalm", "", "types"),
)
_MATCHERS: tuple[tuple[tuple[str, ...], re.Pattern[str], str, str], ...] = tuple(
    (words, re.compile(rf"(?:{pattern})(?![\w-])"), tool, kind)
    for words, pattern, tool, kind in _COMMANDS
)
_WORDISH = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_COMMAND_START = re.compile(r"&&|\|\||[;|]")
_INSTALLING = re.compile(r"\b(?:install|add)\s")


@dataclass(slots=True)
class CI:
    services: list[str] = field(default_factory=list)  # github-actions, gitlab-ci…
    files: list[str] = field(default_factory=list)  # relative paths of the CI files read
    runs_checks: bool = False
    tools: dict[str, set[str]] = field(default_factory=dict)  # kind → tools CI runs
    checks: list[str] = field(default_factory=list)  # what was seen to run them, for people

    @property
    def present(self) -> bool:
        return bool(self.services)

    def saw(self, found: dict[str, set[str]], what: str | None = None) -> None:
        """Checks found: `what` names how they ran (a followed target), else their tools."""
        for kind, tools in found.items():
            self.tools.setdefault(kind, set()).update(tools)
        if not found and what is None:
            return
        self.runs_checks = True
        shown = [what] if what else sorted(set().union(*found.values()))
        for one in shown:
            if one not in self.checks and len(self.checks) < CHECKS_KEPT:
                self.checks.append(printable(one)[:100])


def detect_ci(files: ProjectFiles) -> CI:
    ci = CI()
    found = _ci_files(files)
    for _, service in found:
        if service not in ci.services:
            ci.services.append(service)
    budget = steps.Budget()
    for path, _ in found[:CI_FILES_READ]:
        text = files.text(path)
        if text is None:
            continue
        ci.files.append(path)
        ci.saw(checks_in(text))
        for line in steps.command_lines(text):
            for words in steps.commands(line):
                for target in steps.targets(words, files, budget):
                    _follow(target, files, ci)
    return ci


def _ci_files(files: ProjectFiles) -> list[tuple[str, str]]:
    """(relative path, service) of every CI file, fixed names first."""
    found = [(path, service) for path, service in _FILES if files.is_file(path)]
    for folder, service, suffixes in _FOLDERS:
        if folder.split("/")[0] not in files.dirs:
            continue
        for name in files.listdir(folder):
            path = f"{folder}/{name}"
            if (suffixes is None or name.endswith(suffixes)) and files.is_file(path):
                found.append((path, service))
    return found


def checks_in(text: str) -> dict[str, set[str]]:
    """kind ("test", "lint", "format", "types") → the tools the commands in `text` run."""
    found: dict[str, set[str]] = {}
    lowered = text.lower()
    for words, pattern, tool, kind in _MATCHERS:
        for word in words:
            at = lowered.find(word)
            while at != -1:
                match = pattern.match(lowered, at)
                if match and (at == 0 or lowered[at - 1] not in _WORDISH) and _live(lowered, at):
                    parts = match.group(0).split()
                    name = parts[0] if tool == "" else " ".join(parts) if tool == "*" else tool
                    found.setdefault(kind, set()).add(name)
                at = lowered.find(word, at + 1)
    return found


def _follow(target: steps.Target, files: ProjectFiles, ci: CI) -> None:
    """A target a CI step runs: does what it runs (or its name) say tests or linting?"""
    found = checks_in(target.body) if target.body else {}
    ran = sorted(set().union(*found.values())) or _named_below(target, files)
    if ran:
        ci.saw(found, f"{target.label} (runs {', '.join(ran[:4])})")
    elif any(steps.named_check(name) for name in target.names):
        ci.saw(found, f"{target.label} (by its name)")


def _named_below(target: steps.Target, files: ProjectFiles) -> list[str]:
    """What the target's commands run that is named like tests or linting, not read."""
    if not target.shell:
        return []
    named: list[str] = []
    for line in steps.command_lines(target.body):
        for words in steps.commands(line):
            for below in steps.targets(words, files):
                if any(map(steps.named_check, below.names)) and below.label not in named:
                    named.append(below.label)
    return named


def _live(text: str, at: int) -> bool:
    """Not on a comment line (YAML's #, a Jenkinsfile's //): "# TODO: run pytest" runs nothing.
    Nor an argument of an install: `pip install pytest ruff` runs neither."""
    line = text[text.rfind("\n", 0, at) + 1 : at]
    if line.lstrip().startswith(("#", "//")):
        return False
    command = _COMMAND_START.split(line)[-1]
    return _INSTALLING.search(command) is None
