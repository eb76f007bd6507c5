"""The detectors on real folders in tmp_path: tests, runners, CI, documentation, linting."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from daemon.domain.quality import walk as walk_module
from daemon.domain.quality.detect import Findings, detect
from daemon.domain.quality.docs import headings
from daemon.domain.quality.files import ProjectFiles
from daemon.domain.quality.items import total
from daemon.domain.quality.walk import walk


def make(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def found(root: Path, files: dict[str, str] | None = None) -> Findings:
    return detect(str(make(root, files or {})))


def points(findings: Findings, component: str) -> float:
    return total(findings.items, component)  # type: ignore[arg-type]


def hints(findings: Findings, component: str) -> list[str]:
    return [i.hint for i in findings.items if i.component == component and i.earned < i.points]


LONG_README = (
    "# Tool\n\nTool turns project folders into a memory a person can search, with a daemon "
    "that watches the folders and a small command line client that asks it questions.\n\n"
    "## Installation\n\n```sh\n# not a heading: a shell comment in a fence\npip install tool\n"
    "```\n\n## Usage\n\n" + "Run `tool scan` to index every project under ~/Dev. " * 20 + "\n"
)


# --- the walk: tests and sources -----------------------------------------------------------


def test_test_folder_and_counts(tmp_path: Path) -> None:
    make(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/core.py": "",
            "pkg/util.py": "",
            "tests/test_core.py": "",
            "tests/conftest.py": "",  # test code too, though not test-named
            "tests/data/sample.json": "{}",  # not code
            "README.md": "x",
        },
    )
    tree = walk(str(tmp_path))
    assert tree.test_dirs == ["tests"]
    assert (tree.test_files, tree.source_files) == (2, 3)
    assert tree.has_tests and tree.main_language() == "Python"


@pytest.mark.parametrize(
    "name",
    [
        "test_core.py",
        "core_test.py",
        "src/app.test.ts",
        "src/app.spec.jsx",
        "src/app.test.mjs",
        "pkg/core_test.go",
        "lib/user_spec.rb",
        "src/main/java/AppTest.java",
    ],
)
def test_test_named_files(tmp_path: Path, name: str) -> None:
    tree = walk(str(make(tmp_path, {name: "", "src/main.c": ""})))
    assert tree.test_files == 1 and tree.has_tests and tree.test_dirs == []
    assert tree.go_tests == name.endswith("_test.go")


@pytest.mark.parametrize("folder", ["tests", "test", "spec", "__tests__", "src/test"])
def test_test_folders(tmp_path: Path, folder: str) -> None:
    tree = walk(str(make(tmp_path, {f"{folder}/helpers.js": "", "index.js": ""})))
    assert tree.test_dirs == [folder]
    assert tree.test_files == 1 and tree.source_files == 1


def test_rust_integration_tests(tmp_path: Path) -> None:
    tree = walk(str(make(tmp_path, {"tests/cli.rs": "", "src/main.rs": "", "Cargo.toml": ""})))
    assert tree.test_dirs == ["tests"] and tree.test_files == 1 and tree.source_files == 1


def test_an_empty_scaffolded_test_folder_is_no_tests(tmp_path: Path) -> None:
    tree = walk(str(make(tmp_path, {"tests/__init__.py": "", "app.py": ""})))
    assert tree.test_dirs == [] and not tree.has_tests


def test_walk_prunes_dependencies_envs_and_build_output(tmp_path: Path) -> None:
    files = {"app.py": ""}
    for folder in ("node_modules/x", ".venv/lib", "build", "dist", ".git", "target", "vendor/x"):
        files[f"{folder}/test_thing.py"] = ""
        files[f"{folder}/mod.py"] = ""
    files["my-env/pyvenv.cfg"] = "home = /usr\n"  # a virtualenv with a custom name
    files["my-env/lib/test_site.py"] = ""
    tree = walk(str(make(tmp_path, files)))
    assert (tree.source_files, tree.test_files) == (1, 0)


def test_walk_is_bounded_in_depth(tmp_path: Path) -> None:
    tree = walk(str(make(tmp_path, {"a/b/c/shallow.py": "", "a/b/c/d/deep.py": ""})))
    assert tree.source_files == 1  # a/b/c is listed (depth 3), a/b/c/d is not


def test_walk_is_bounded_in_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walk_module, "WALK_MAX_ENTRIES", 50)
    make(tmp_path, {f"m{i}.py": "" for i in range(40)} | {f"sub/n{i}.py": "" for i in range(40)})
    tree = walk(str(tmp_path))
    assert tree.source_files <= 50 and tree.truncated


def test_walk_never_follows_symlinks(tmp_path: Path) -> None:
    make(tmp_path, {"real/a.py": ""})
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert walk(str(tmp_path)).source_files == 1


# --- test runners and the tests items ------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "runner"),
    [
        ({"pyproject.toml": "[tool.pytest.ini_options]\naddopts = '-q'\n"}, "pytest"),
        ({"pyproject.toml": '[tool.pytest]\nminversion = "9"\n'}, "pytest"),
        ({"pyproject.toml": '[dependency-groups]\ndev = ["pytest>=8", "ruff"]\n'}, "pytest"),
        ({"pyproject.toml": '[tool.poetry.group.dev.dependencies]\npytest = "^8"\n'}, "pytest"),
        ({"setup.cfg": "[metadata]\nname = x\n\n[tool:pytest]\naddopts = -q\n"}, "pytest"),
        ({"tox.ini": "[tox]\nenvlist = py\n\n[pytest]\naddopts = -q\n"}, "pytest"),
        ({"pytest.ini": "[pytest]\n"}, "pytest"),
        ({"requirements-dev.txt": "ruff\npytest==8.0\n"}, "pytest"),
        ({"noxfile.py": ""}, "nox"),
        ({"package.json": '{"jest": {"testEnvironment": "node"}}'}, "jest"),
        ({"package.json": '{"scripts": {"test": "vitest run"}}'}, "vitest"),
        ({"package.json": '{"scripts": {"test": "node --test"}}'}, "node --test"),
        ({"package.json": '{"scripts": {"test": "./run-tests.sh"}}'}, "npm test"),
        ({"vitest.config.ts": ""}, "vitest"),
        ({"jest.config.js": ""}, "jest"),
        ({".mocharc.yml": ""}, "mocha"),
        ({"karma.conf.js": ""}, "karma"),
        ({"phpunit.xml.dist": ""}, "phpunit"),
        ({".rspec": ""}, "rspec"),
        ({"Cargo.toml": "[package]\nname = 'x'\n"}, "cargo test"),
        ({"main.go": "", "main_test.go": ""}, "go test"),
        ({"pom.xml": "", "src/test/java/AppTest.java": ""}, "maven"),
        ({"Makefile": "all:\n\tcc x.c\n\ntest: all\n\t./t\n"}, "make test"),
        ({"CMakeLists.txt": "enable_testing()\nadd_test(NAME t COMMAND t)\n"}, "ctest"),
    ],
)
def test_runner_configs(tmp_path: Path, files: dict[str, str], runner: str) -> None:
    assert runner in found(tmp_path, files).detected.test_runners


@pytest.mark.parametrize(
    "files",
    [
        {"package.json": '{"scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'},
        {"pyproject.toml": '[project]\nname = "x"\n\n[tool.ruff]\nline-length = 100\n'},
        {"pyproject.toml": '[dependency-groups]\ndev = ["pytest-cov"]\n'},  # a plugin alone
        {"pom.xml": ""},  # Maven, but no tests for it to run
        {"Makefile": "build:\n\tcc x.c\n"},
    ],
)
def test_no_runner(tmp_path: Path, files: dict[str, str]) -> None:
    assert found(tmp_path, files).detected.test_runners == []


def test_tests_items(tmp_path: Path) -> None:
    findings = found(tmp_path, {"app.py": "", "tests/test_app.py": "", "pytest.ini": ""})
    assert points(findings, "tests") == 80  # 50 + 15 + 15: the cap is reached exactly
    few = found(tmp_path / "few", {**{f"m{i}.py": "" for i in range(11)}, "test_m.py": ""})
    assert points(few, "tests") == 50  # 1 test file for 11 sources: under 1 in 10
    assert hints(few, "tests") == [
        "a pytest config ([tool.pytest] in pyproject)",
        "more tests: at least 1 test file per 10 (1 test files for 11 source files)",
    ]
    none = found(tmp_path / "none", {"main.go": ""})
    assert points(none, "tests") == 0
    assert hints(none, "tests")[0] == "add tests (*_test.go)"


# --- CI --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "service"),
    [
        (".github/workflows/ci.yml", "github-actions"),
        (".github/workflows/ci.yaml", "github-actions"),
        (".gitlab-ci.yml", "gitlab-ci"),
        (".circleci/config.yml", "circleci"),
        ("Jenkinsfile", "jenkins"),
        ("azure-pipelines.yml", "azure-pipelines"),
        (".travis.yml", "travis"),
        (".buildkite/pipeline.yml", "buildkite"),
        (".drone.yml", "drone"),
        ("bitbucket-pipelines.yml", "bitbucket-pipelines"),
        ("appveyor.yml", "appveyor"),
        (".cirrus.yml", "cirrus"),
        (".woodpecker.yml", "woodpecker"),
        (".woodpecker/test.yml", "woodpecker"),
        (".ci/run", "ci-scripts"),
        (".gitea/workflows/ci.yml", "gitea-actions"),
    ],
)
def test_ci_services(tmp_path: Path, rel: str, service: str) -> None:
    findings = found(tmp_path, {rel: "steps:\n  - run: echo deploy\n", "app.py": ""})
    assert findings.detected.ci == [service]
    assert findings.ci.present and not findings.detected.ci_runs_checks
    assert points(findings, "ci") == 70


def test_workflows_folder_without_workflows_is_no_ci(tmp_path: Path) -> None:
    findings = found(tmp_path, {".github/workflows/README.md": "x", ".github/FUNDING.yml": ""})
    assert findings.detected.ci == [] and points(findings, "ci") == 0


@pytest.mark.parametrize(
    "command",
    [
        "python -m pytest -q",
        "uv run pytest",
        "tox -e py312",
        "npm test",
        "npm run test:unit",
        "yarn test",
        "pnpm run lint",
        "go test ./...",
        "cargo test --all",
        "cargo clippy -- -D warnings",
        "./mvnw -B verify",
        "./gradlew check",
        "make test",
        "ruff check .",
        "flake8 src",
        "npx eslint .",
        "mypy daemon",
        "golangci-lint run",
        "bundle exec rubocop",
        "bash scripts/test.sh",
        "pre-commit run --all-files",
    ],
)
def test_ci_runs_checks(tmp_path: Path, command: str) -> None:
    workflow = f"on: push\njobs:\n  ci:\n    steps:\n      - run: {command}\n"
    findings = found(tmp_path, {".github/workflows/ci.yml": workflow, "app.py": ""})
    assert findings.detected.ci_runs_checks, command
    assert points(findings, "ci") == 100


@pytest.mark.parametrize(
    "command",
    [
        "npm ci && npm run build",  # installing is not testing
        "docker push example/app",
        "echo testing-the-waters",
        "./deploy --contest",  # "test" inside a word
    ],
)
def test_ci_without_checks(tmp_path: Path, command: str) -> None:
    workflow = f"jobs:\n  deploy:\n    steps:\n      - run: {command}\n"
    findings = found(tmp_path, {".github/workflows/deploy.yml": workflow, "app.py": ""})
    assert not findings.detected.ci_runs_checks, command


def test_commented_out_commands_do_not_count(tmp_path: Path) -> None:
    workflow = "jobs:\n  a:\n    steps:\n      # - run: pytest\n      - run: echo hi\n"
    jenkins = "pipeline {\n  // sh 'make test'\n  sh 'make deploy'\n}\n"
    findings = found(tmp_path, {".github/workflows/a.yml": workflow, "Jenkinsfile": jenkins})
    assert not findings.detected.ci_runs_checks


def test_ci_tools_feed_linting(tmp_path: Path) -> None:
    workflow = "steps:\n  - run: cargo clippy\n  - run: cargo fmt --check\n  - run: cargo test\n"
    findings = found(
        tmp_path, {".github/workflows/ci.yml": workflow, "Cargo.toml": "", "src/main.rs": ""}
    )
    assert findings.detected.linters == ["clippy"]
    assert findings.detected.formatters == ["rustfmt"]  # enforced: full formatter points
    assert points(findings, "lint") == 35 + 25 + 15


# --- documentation -------------------------------------------------------------------------


def test_documentation_items_all_present(tmp_path: Path) -> None:
    findings = found(
        tmp_path,
        {
            "README.md": LONG_README,
            "LICENSE": "MIT",
            "docs/index.md": "# Docs",
            ".github/CONTRIBUTING.md": "x",
            "CHANGELOG.md": "x",
            "package.json": '{"description": "A tool"}',
            "SECURITY.md": "x",
        },
    )
    assert points(findings, "docs") == 100
    assert findings.has_documentation
    assert findings.detected.docs == [
        "README.md",
        "LICENSE",
        "docs/",
        ".github/CONTRIBUTING.md",
        "CHANGELOG.md",
        "description (package.json)",
        "SECURITY.md",
    ]


def test_documentation_nothing(tmp_path: Path) -> None:
    findings = found(tmp_path, {"main.py": ""})
    assert points(findings, "docs") == 0 and not findings.has_documentation
    assert hints(findings, "docs")[0] == "add a README"


def test_short_readme(tmp_path: Path) -> None:
    findings = found(tmp_path, {"README.md": "# x\n\nA small tool that does one thing.\n"})
    assert points(findings, "docs") == 25
    assert not findings.has_documentation  # under 300 bytes of text


def test_readme_bonuses(tmp_path: Path) -> None:
    findings = found(tmp_path, {"README.md": LONG_README})
    assert points(findings, "docs") == 25 + 15 + 10
    assert findings.has_documentation


def test_readme_without_install_heading(tmp_path: Path) -> None:
    text = LONG_README.replace("## Installation", "## Internals").replace("## Usage", "## Why")
    assert points(found(tmp_path, {"README.md": text}), "docs") == 25 + 15


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("README.md", "", 0),  # empty: no README
        ("README.md", "  \n\n", 0),
        ("readme.MD", LONG_README, 50),
        (".github/README.md", LONG_README, 50),
        ("README.rst", "Tool\n====\n\nA tool.\n\nInstall\n-------\n\n" + "Text. " * 200, 50),
        ("README", "Plain text readme describing this program in a sentence or two.\n", 25),
    ],
)
def test_readme_variants(tmp_path: Path, name: str, text: str, expected: int) -> None:
    assert points(found(tmp_path, {name: text}), "docs") == expected


def test_scaffold_readme_earns_no_bonus(tmp_path: Path) -> None:
    cra = (
        "# Getting Started with Create React App\n\n"
        "This project was bootstrapped with [Create React App]"
        "(https://github.com/facebook/create-react-app).\n\n## Available Scripts\n\n"
        + "In the project directory, you can run `npm start` and `npm test`. "
        * 30
    )
    findings = found(tmp_path, {"README.md": cra})
    assert points(findings, "docs") == 25
    assert not findings.has_documentation


def test_readme_text_not_badges(tmp_path: Path) -> None:
    badges = "".join(
        f"[![b{i}](https://img.shields.io/badge/very-long-badge-{i}-green.svg)](https://x.io/{i})\n"
        for i in range(10)
    )
    findings = found(tmp_path, {"README.md": f"# Tool\n\n{badges}\nA tool.\n"})
    assert not findings.has_documentation  # over 300 bytes, but not of text


def test_headings() -> None:
    md = "# One\n\nText\n===\n\n```\n# not\n```\n~~~\n## not\n~~~\n<h2 align=center>Three</h2>\n"
    assert headings(md) == ["One", "Text", "Three"]
    rst = "=====\nTitle\n=====\n\nUsage\n-----\n\ntext\n"
    assert headings(rst) == ["Title", "Usage"]


def test_docs_site(tmp_path: Path) -> None:
    assert "docs/" in found(tmp_path / "a", {"docs/guide/intro.rst": ""}).detected.docs
    deep = found(tmp_path / "a2", {"docs/content/guides/intro.md": "", "docs/lib/x.js": ""})
    assert "docs/" in deep.detected.docs
    assert "mkdocs.yml" in found(tmp_path / "b", {"mkdocs.yml": ""}).detected.docs
    assert "docs/conf.py" in found(tmp_path / "c", {"docs/conf.py": ""}).detected.docs
    images = found(tmp_path / "d", {"docs/logo.png": "", "docs/shots/a.png": ""})
    assert points(images, "docs") == 0  # a docs/ of pictures is no docs site
    site = found(tmp_path / "e", {"mkdocs.yml": ""})
    assert site.has_documentation and points(site, "docs") == 15


def test_description_argument_and_manifests(tmp_path: Path) -> None:
    described = detect(str(make(tmp_path / "a", {"x.py": ""})), description="Does a thing")
    assert points(described, "docs") == 5
    for name, text in [
        ("pyproject.toml", '[project]\nname = "x"\ndescription = "A tool"\n'),
        ("pyproject.toml", '[tool.poetry]\ndescription = "A tool"\n'),
        ("Cargo.toml", '[package]\nname = "x"\ndescription = "A crate"\n'),
        ("setup.cfg", "[metadata]\ndescription = A tool\n"),
    ]:
        findings = found(tmp_path / name / str(len(text)), {name: text})
        assert f"description ({name})" in findings.detected.docs
    empty = found(tmp_path / "empty", {"package.json": '{"description": ""}'})
    assert points(empty, "docs") == 0
    assert hints(empty, "docs")[-2] == "a description in package.json"


def test_license_and_policy_spellings(tmp_path: Path) -> None:
    findings = found(tmp_path, {"LICENSE-MIT": "", "docs/CODE_OF_CONDUCT.md": "", "x.md": ""})
    assert findings.detected.docs == ["LICENSE-MIT", "docs/", "docs/CODE_OF_CONDUCT.md"]


# --- linting ---------------------------------------------------------------------------------


def lint(root: Path, files: dict[str, str]) -> tuple[Findings, float]:
    findings = found(root, files)
    return findings, points(findings, "lint")


@pytest.mark.parametrize(
    ("files", "linter"),
    [
        ({"ruff.toml": ""}, "ruff"),
        ({".ruff.toml": ""}, "ruff"),
        ({"pyproject.toml": "[tool.ruff.lint]\nselect = ['E']\n"}, "ruff"),
        ({".flake8": ""}, "flake8"),
        ({"setup.cfg": "[flake8]\nmax-line-length = 100\n"}, "flake8"),
        ({"tox.ini": "[flake8]\n"}, "flake8"),
        ({".pylintrc": ""}, "pylint"),
        ({".eslintrc.json": "{}"}, "eslint"),
        ({"eslint.config.mjs": ""}, "eslint"),
        ({"package.json": '{"eslintConfig": {}}'}, "eslint"),
        ({"biome.json": "{}"}, "biome"),
        ({".golangci.yml": ""}, "golangci-lint"),
        ({"clippy.toml": ""}, "clippy"),
        ({"Cargo.toml": "[lints.clippy]\npedantic = 'warn'\n"}, "clippy"),
        ({"Cargo.toml": "[workspace.lints.clippy]\nall = 'warn'\n"}, "clippy"),
        ({".rubocop.yml": ""}, "rubocop"),
        ({".pre-commit-config.yaml": "repos:\n- repo: x\n  hooks:\n  - id: ruff\n"}, "ruff"),
    ],
)
def test_linter_configs(tmp_path: Path, files: dict[str, str], linter: str) -> None:
    assert linter in found(tmp_path, {**files, "a.py": ""}).detected.linters


@pytest.mark.parametrize(
    ("files", "formatter"),
    [
        ({"pyproject.toml": "[tool.black]\nline-length = 100\n"}, "black"),
        ({"pyproject.toml": "[tool.ruff.format]\nquote-style = 'single'\n"}, "ruff-format"),
        ({".prettierrc": "{}"}, "prettier"),
        ({"prettier.config.js": ""}, "prettier"),
        ({"package.json": '{"prettier": {"semi": false}}'}, "prettier"),
        ({"rustfmt.toml": ""}, "rustfmt"),
        ({".clang-format": ""}, "clang-format"),
        ({".pre-commit-config.yaml": "  hooks:\n    - id: black\n"}, "black"),
        ({".pre-commit-config.yaml": "  hooks:\n    - id: ruff-format\n"}, "ruff-format"),
    ],
)
def test_formatter_configs(tmp_path: Path, files: dict[str, str], formatter: str) -> None:
    assert formatter in found(tmp_path, {**files, "a.py": ""}).detected.formatters


def test_python_fully_linted(tmp_path: Path) -> None:
    pyproject = "[tool.ruff]\nline-length = 100\n[tool.ruff.format]\n[tool.mypy]\nstrict = true\n"
    hooks = "repos:\n  - repo: https://github.com/astral-sh/ruff-pre-commit\n    hooks:\n"
    findings, score = lint(
        tmp_path,
        {
            "pyproject.toml": pyproject,
            ".pre-commit-config.yaml": hooks + "      - id: ruff\n",
            ".editorconfig": "root = true\n",
            "a.py": "",
        },
    )
    assert score == 100
    detected = findings.detected
    assert (detected.linters, detected.formatters) == (["ruff"], ["ruff-format"])
    assert (detected.type_checkers, detected.hooks) == (["mypy"], ["pre-commit"])
    assert detected.editorconfig


def test_python_nothing(tmp_path: Path) -> None:
    findings, score = lint(tmp_path, {"a.py": ""})
    assert score == 0
    assert hints(findings, "lint") == [
        "a ruff or flake8 config (ruff.toml, [tool.ruff])",
        "a formatter config (black, or [tool.ruff.format])",
        "a mypy or pyright config ([tool.mypy])",
        "git hooks: a .pre-commit-config.yaml, husky or lefthook",
        "an .editorconfig",
    ]


def test_go_has_gofmt_and_a_compiler(tmp_path: Path) -> None:
    findings, score = lint(tmp_path, {"go.mod": "module x\n", "main.go": ""})
    assert score == 25 + 15
    assert findings.detected.formatters == ["gofmt (built in)"]
    assert findings.detected.type_checkers == ["Go compiler"]
    assert hints(findings, "lint")[0] == "a .golangci.yml"


def test_rust_formatter_is_half_given(tmp_path: Path) -> None:
    findings, score = lint(tmp_path, {"Cargo.toml": "[package]\n", "src/main.rs": ""})
    assert score == 12.5 + 15
    gain = next(i for i in findings.items if i.component == "lint" and i.points == 25)
    assert gain.points - gain.earned == 12.5 and gain.hint == "a rustfmt.toml"
    assert findings.detected.formatters == ["rustfmt (defaults)"]
    _, with_config = lint(tmp_path / "b", {"Cargo.toml": "", "rustfmt.toml": "", "src/a.rs": ""})
    assert with_config == 25 + 15


@pytest.mark.parametrize(
    ("tsconfig", "strict"),
    [
        ('{\n  "compilerOptions": {\n    "strict": true\n  }\n}\n', True),
        ('{"compilerOptions": {"strict": false}}', False),
        (
            '{\n  "compilerOptions": {\n    // "strict": true,\n    "target": "es2022"\n  }\n}',
            False,
        ),
        ('{"extends": "@tsconfig/strictest/tsconfig.json"}', True),
    ],
)
def test_typescript_strict(tmp_path: Path, tsconfig: str, strict: bool) -> None:
    findings, _ = lint(tmp_path, {"tsconfig.json": tsconfig, "src/index.ts": ""})
    assert ("tsc --strict" in findings.detected.type_checkers) == strict


@pytest.mark.parametrize(
    ("files", "hook"),
    [
        ({".pre-commit-config.yaml": "repos: []\n"}, "pre-commit"),
        ({".husky/pre-commit": "npm test\n"}, "husky"),
        ({"lefthook.yml": ""}, "lefthook"),
        ({"package.json": '{"husky": {"hooks": {}}}'}, "husky"),
    ],
)
def test_git_hooks(tmp_path: Path, files: dict[str, str], hook: str) -> None:
    assert found(tmp_path, {**files, "a.js": ""}).detected.hooks == [hook]


def test_type_checker_not_asked_of_shell(tmp_path: Path) -> None:
    findings, score = lint(tmp_path, {"install.sh": "", ".shellcheckrc": ""})
    assert findings.detected.type_checkers == ["n/a (Shell)"]
    assert score == 35 + 15


# --- odd projects ----------------------------------------------------------------------------


def test_bare_repository_has_no_work_tree(tmp_path: Path) -> None:
    findings = found(tmp_path, {"HEAD": "ref: refs/heads/main\n", "objects/x": "", "refs/y": ""})
    assert not findings.work_tree and findings.items == []


def test_missing_project(tmp_path: Path) -> None:
    findings = detect(str(tmp_path / "gone"))
    assert not findings.work_tree
    assert findings.problems == ["project: No such file or directory"]


def test_broken_manifests_cost_points_not_the_assessment(tmp_path: Path) -> None:
    findings = found(
        tmp_path,
        {"package.json": '{"scripts": {', "pyproject.toml": "[tool.ruff\nbroken = ", "a.py": ""},
    )
    assert findings.problems == ["package.json: not valid JSON"]
    assert findings.detected.linters == []


def test_a_fifo_named_like_a_config_is_not_read(tmp_path: Path) -> None:
    make(tmp_path, {"a.py": ""})
    os.mkfifo(tmp_path / "package.json")
    os.mkfifo(tmp_path / "README.md")
    findings = detect(str(tmp_path))  # would block for ever if it opened them
    assert findings.work_tree and findings.detected.docs == []
    files = ProjectFiles(str(tmp_path))
    assert files.text("README.md") is None


def test_a_readme_line_of_html_heading_starts_costs_no_time(tmp_path: Path) -> None:
    """64 KB of "<h1>" on one line: each start rescanned the rest of the line (7 s)."""
    make(tmp_path, {"README.md": "# Tool\n\n" + "<h1>" * 16_000 + "\n", "a.py": ""})
    started = time.monotonic()
    findings = detect(str(tmp_path))
    assert time.monotonic() - started < 2  # ~0.1 s; before: 7 s
    assert points(findings, "docs") >= 25
