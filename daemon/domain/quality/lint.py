"""Linting: a linter 35, a formatter 25, a type checker 15, git hooks 15, .editorconfig 10.

A tool counts when its config is at the top of the project, or when pre-commit or CI runs it
(a `ruff check` in CI with ruff's defaults is linting all the same). Language defaults:
gofmt needs no config, so Go has a formatter; rustfmt's defaults are half the formatter item
until a rustfmt.toml or `cargo fmt --check` in CI enforces a style. The type-checker item is
for the gradually typed languages (Python, JavaScript/TypeScript, PHP, Ruby); for the others
the compiler checks types, or there is no common checker, so the item is given: a hint to
"add mypy" to a Go project would be noise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import product

from daemon.domain.quality.ci import CI
from daemon.domain.quality.files import ProjectFiles, toml_has_value, tool_tables
from daemon.domain.quality.items import Item, item


def _names(stems: tuple[str, ...], extensions: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{stem}{extension}" for stem, extension in product(stems, extensions))


_JS = (".js", ".cjs", ".mjs", ".ts", ".cts", ".mts")
# Root file → tool.
LINTER_FILES: dict[str, str] = {
    **dict.fromkeys(("ruff.toml", ".ruff.toml"), "ruff"),
    ".flake8": "flake8",
    **dict.fromkeys((".pylintrc", "pylintrc"), "pylint"),
    **dict.fromkeys(
        _names((".eslintrc",), ("", ".js", ".cjs", ".json", ".yaml", ".yml")), "eslint"
    ),
    **dict.fromkeys(_names(("eslint.config",), _JS), "eslint"),
    **dict.fromkeys(("biome.json", "biome.jsonc"), "biome"),
    **dict.fromkeys((".oxlintrc.json",), "oxlint"),
    **dict.fromkeys(_names((".golangci",), (".yml", ".yaml", ".toml", ".json")), "golangci-lint"),
    **dict.fromkeys(("clippy.toml", ".clippy.toml"), "clippy"),
    **dict.fromkeys((".rubocop.yml", ".standard.yml"), "rubocop"),
    ".shellcheckrc": "shellcheck",
    **dict.fromkeys(("phpcs.xml", "phpcs.xml.dist", ".phpcs.xml", ".phpcs.xml.dist"), "phpcs"),
    ".swiftlint.yml": "swiftlint",
    "detekt.yml": "detekt",
    ".credo.exs": "credo",
    "analysis_options.yaml": "dart analyze",
    ".scalafix.conf": "scalafix",
    "checkstyle.xml": "checkstyle",
}
FORMATTER_FILES: dict[str, str] = {
    **dict.fromkeys(
        _names((".prettierrc",), ("", ".json", ".json5", ".yaml", ".yml", ".toml", *_JS)),
        "prettier",
    ),
    **dict.fromkeys(_names(("prettier.config",), _JS), "prettier"),
    **dict.fromkeys(("biome.json", "biome.jsonc"), "biome"),
    **dict.fromkeys(("rustfmt.toml", ".rustfmt.toml"), "rustfmt"),
    ".clang-format": "clang-format",
    ".style.yapf": "yapf",
    **dict.fromkeys((".php-cs-fixer.php", ".php-cs-fixer.dist.php"), "php-cs-fixer"),
    ".scalafmt.conf": "scalafmt",
    ".swiftformat": "swiftformat",
    ".formatter.exs": "mix format",
    **dict.fromkeys(("dprint.json", ".dprint.json"), "dprint"),
    # RuboCop's Layout cops are how Ruby code is formatted
    **dict.fromkeys((".rubocop.yml", ".standard.yml"), "rubocop"),
}
TYPE_CHECKER_FILES: dict[str, str] = {
    **dict.fromkeys(("mypy.ini", ".mypy.ini"), "mypy"),
    "pyrightconfig.json": "pyright",
    ".pyre_configuration": "pyre",
    ".flowconfig": "flow",
    **dict.fromkeys(("phpstan.neon", "phpstan.neon.dist", "phpstan.dist.neon"), "phpstan"),
    **dict.fromkeys(("psalm.xml", "psalm.xml.dist"), "psalm"),
    "Steepfile": "steep",
}
HOOK_FILES: dict[str, str] = {
    **dict.fromkeys((".pre-commit-config.yaml", ".pre-commit-config.yml"), "pre-commit"),
    **dict.fromkeys(
        _names(("lefthook", ".lefthook"), (".yml", ".yaml", ".toml", ".json")), "lefthook"
    ),
    ".overcommit.yml": "overcommit",
    **dict.fromkeys((".simple-git-hooks.json", ".simple-git-hooks.js"), "simple-git-hooks"),
}
HOOK_DIRS = {".husky": "husky"}
TSCONFIGS = ("tsconfig.json", "tsconfig.base.json")

# pre-commit hook id → (kind, tool)
_HOOK_IDS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(("ruff", "ruff-check"), ("lint", "ruff")),
    "ruff-format": ("format", "ruff-format"),
    **dict.fromkeys(("black", "black-jupyter"), ("format", "black")),
    **{tool: ("lint", tool) for tool in ("flake8", "pylint", "eslint", "rubocop", "shellcheck")},
    **dict.fromkeys(("golangci-lint", "golangci-lint-full"), ("lint", "golangci-lint")),
    **dict.fromkeys(("clippy", "cargo-clippy"), ("lint", "clippy")),
    **dict.fromkeys(("biome-check", "biome-ci", "biome-lint"), ("lint", "biome")),
    "prettier": ("format", "prettier"),
    "biome-format": ("format", "biome"),
    **dict.fromkeys(("fmt", "rustfmt", "cargo-fmt"), ("format", "rustfmt")),
    **{tool: ("format", tool) for tool in ("clang-format", "yapf")},
    **{tool: ("types", tool) for tool in ("mypy", "pyright", "basedpyright")},
}
_HOOK_ID = re.compile(r"^\s*(?:-\s*)?id:\s*['\"]?([\w.+-]+)", re.MULTILINE)
_CI_LINTERS = {"ruff", "flake8", "pylint", "eslint", "golangci-lint", "rubocop", "shellcheck"}
_CI_LINTERS |= {"phpcs", "swiftlint", "credo", "clippy", "biome", "staticcheck"}
_CI_FORMATTERS = {"ruff-format", "black", "prettier", "rustfmt", "clang-format"}
_CI_TYPE_CHECKERS = {"mypy", "pyright", "phpstan", "psalm"}
_STRICT = re.compile(r'"strict"\s*:\s*true|"extends"\s*:\s*"[^"]*strict', re.IGNORECASE)

GRADUAL = frozenset({"Python", "Jupyter Notebook", "JavaScript", "TypeScript", "PHP", "Ruby"})
GRADUAL_WEB = frozenset({"Vue", "Svelte", "Astro"})  # TypeScript's checkers cover these
_COMPILED = frozenset({"Go", "Rust", "Java", "Kotlin", "C", "C++", "C#", "F#", "Swift"})
_COMPILED |= {"Objective-C", "Scala", "Haskell", "OCaml", "Dart", "Zig", "Nim", "Solidity"}

# Hints by main language: (linter, formatter, type checker)
_HINTS: dict[str, tuple[str, str, str]] = {
    "Python": (
        "a ruff or flake8 config (ruff.toml, [tool.ruff])",
        "a formatter config (black, or [tool.ruff.format])",
        "a mypy or pyright config ([tool.mypy])",
    ),
    "JavaScript": (
        "an ESLint or Biome config (eslint.config.js, biome.json)",
        "a Prettier or Biome config (.prettierrc)",
        "TypeScript with a strict tsconfig.json",
    ),
    "TypeScript": (
        "an ESLint or Biome config (eslint.config.js, biome.json)",
        "a Prettier or Biome config (.prettierrc)",
        '"strict": true in tsconfig.json',
    ),
    "Go": ("a .golangci.yml", "", ""),
    "Rust": ("clippy in CI (cargo clippy) or a clippy.toml", "a rustfmt.toml", ""),
    "Ruby": ("a .rubocop.yml", "a .rubocop.yml (RuboCop formats too)", "Sorbet or Steep"),
    "PHP": ("a phpcs.xml", "a .php-cs-fixer.dist.php", "a phpstan.neon or psalm.xml"),
    "Shell": ("a .shellcheckrc or shellcheck in CI", "a formatter config", ""),
    "C": ("a linter config", "a .clang-format", ""),
    "C++": ("a linter config (clang-tidy)", "a .clang-format", ""),
}
_DEFAULT_HINTS = ("a linter config", "a formatter config", "a type checker config")


@dataclass(slots=True)
class Lint:
    items: list[Item] = field(default_factory=list)
    linters: list[str] = field(default_factory=list)
    formatters: list[str] = field(default_factory=list)
    type_checkers: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    editorconfig: bool = False

    @property
    def anything(self) -> bool:
        """Any tool at all: linting is measurable even where no source file was seen."""
        return bool(self.linters or self.formatters or self.type_checkers or self.hooks)


def detect_lint(files: ProjectFiles, ci: CI, language: str | None) -> Lint:
    lint = Lint()
    _from_files(files, lint)
    _from_manifests(files, lint)
    _from_hooks(files, lint)
    _add(lint.linters, *(ci.tools.get("lint", set()) & _CI_LINTERS))
    _add(lint.formatters, *(ci.tools.get("format", set()) & _CI_FORMATTERS))
    _add(lint.type_checkers, *(ci.tools.get("types", set()) & _CI_TYPE_CHECKERS))
    lint.editorconfig = ".editorconfig" in files.files

    go = language == "Go" or "go.mod" in files.files
    rust = language == "Rust" or "Cargo.toml" in files.files
    formatter: float = 1.0 if lint.formatters else 0.0
    if go and not lint.formatters:
        lint.formatters.append("gofmt (built in)")
        formatter = 1.0
    elif rust and not lint.formatters:
        lint.formatters.append("rustfmt (defaults)")
        formatter = 0.5  # rustfmt works without a config, but nothing enforces it
    types: float = 1.0 if lint.type_checkers else 0.0
    if not types and language is not None and language not in GRADUAL | GRADUAL_WEB:
        lint.type_checkers.append(
            f"{language} compiler" if language in _COMPILED else f"n/a ({language})"
        )
        types = 1.0
    key = {"Jupyter Notebook": "Python"}.get(language or "", language or "")
    key = "TypeScript" if key in GRADUAL_WEB else key
    linter_hint, formatter_hint, types_hint = _HINTS.get(key, _DEFAULT_HINTS)
    lint.items = [
        item("lint", 35, bool(lint.linters), linter_hint or _DEFAULT_HINTS[0]),
        item("lint", 25, formatter, formatter_hint or _DEFAULT_HINTS[1]),
        item("lint", 15, types, types_hint or _DEFAULT_HINTS[2]),
        item(
            "lint", 15, bool(lint.hooks), "git hooks: a .pre-commit-config.yaml, husky or lefthook"
        ),
        item("lint", 10, lint.editorconfig, "an .editorconfig"),
    ]
    return lint


def _from_files(files: ProjectFiles, lint: Lint) -> None:
    for name in sorted(files.files):
        _add(lint.linters, LINTER_FILES.get(name))
        _add(lint.formatters, FORMATTER_FILES.get(name))
        _add(lint.type_checkers, TYPE_CHECKER_FILES.get(name))
        _add(lint.hooks, HOOK_FILES.get(name))
    for name, tool in HOOK_DIRS.items():
        if name in files.dirs:
            _add(lint.hooks, tool)
    if "sorbet" in files.dirs and files.is_file("sorbet/config"):
        _add(lint.type_checkers, "sorbet")
    for name in TSCONFIGS:
        text = files.text(name) if name in files.files else None
        if text and any(_uncommented(text, match.start()) for match in _STRICT.finditer(text)):
            _add(lint.type_checkers, "tsc --strict")


def _from_manifests(files: ProjectFiles, lint: Lint) -> None:
    if "pyproject.toml" in files.files:
        tables = files.toml_tables("pyproject.toml")
        tools = tool_tables(tables)
        _add(lint.linters, *(name for name in ("ruff", "flake8", "pylint") if name in tools))
        if "tool.ruff.format" in tables:
            _add(lint.formatters, "ruff-format")
        _add(lint.formatters, *(name for name in ("black", "yapf") if name in tools))
        _add(lint.type_checkers, *(n for n in ("mypy", "pyright", "basedpyright") if n in tools))
    for name in ("setup.cfg", "tox.ini"):
        if name in files.files:
            sections = files.ini_sections(name)
            _add(lint.linters, "flake8" if "flake8" in sections else None)
            _add(lint.type_checkers, "mypy" if "mypy" in sections else None)
    package = files.json("package.json")
    if isinstance(package, dict):
        _add(lint.linters, "eslint" if "eslintConfig" in package else None)
        _add(lint.formatters, "prettier" if "prettier" in package else None)
        _add(lint.hooks, *(name for name in ("husky", "simple-git-hooks") if name in package))
    if "Cargo.toml" in files.files:
        tables = files.toml_tables("Cargo.toml")
        lints = tables.get("lints", "") + tables.get("workspace.lints", "")
        if {"lints.clippy", "workspace.lints.clippy"} & tables.keys() or toml_has_value(
            lints, "clippy"
        ):
            _add(lint.linters, "clippy")


def _from_hooks(files: ProjectFiles, lint: Lint) -> None:
    """What the pre-commit hooks run: a hook running ruff is a linter setup like a config."""
    targets = {"lint": lint.linters, "format": lint.formatters, "types": lint.type_checkers}
    for name in (".pre-commit-config.yaml", ".pre-commit-config.yml"):
        if name not in files.files:
            continue
        for hook in _HOOK_ID.findall(files.text(name) or ""):
            if hook in _HOOK_IDS:
                kind, tool = _HOOK_IDS[hook]
                _add(targets[kind], tool)


def _uncommented(text: str, at: int) -> bool:
    line_start = text.rfind("\n", 0, at) + 1
    return "//" not in text[line_start:at]


def _add(found: list[str], *tools: str | None) -> None:
    for tool in sorted(tool for tool in tools if tool):
        if tool not in found:
            found.append(tool)
