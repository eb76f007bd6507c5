"""A generated Dev folder for the scan and watch benchmarks: 1,000 real git repositories, fast.

Layout: `<tmp>/dev/<group>/<project>` over 20 grouping folders. Two template repositories (a
Node and a Python one, two commits each) are made with git once; every project starts as a
copy of one and is made its own: its reflog's first line is rewritten (the daemon identifies
a repository by it, so copies must not share it), its README and manifest name it, and a real
`git commit -a` with its own date (spread over two years, so statuses vary) moves its HEAD.
Most get an `origin` remote. Every third project has a node_modules of ~2,000 small files and
50 have a virtualenv, all git-ignored; a few virtualenvs and one node_modules also lie loose
in grouping folders, where discovery must not take them (or anything inside) for projects.
Projects are made in a process pool; the tree lives in one temp folder, removed by `close`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

GROUPS = (
    *("work", "clients", "oss", "experiments", "archive", "learning", "tools", "games"),
    *("infra", "data", "mobile", "web", "scripts", "forks", "hackathons", "research"),
    *("personal", "sandbox", "libs", "talks"),
)
WORDS = ("api", "web", "cli", "lib", "bot", "app", "sdk", "tool", "site", "sync", "core", "kit")
AUTHOR = ("Bench Person", "bench@example.com")
DAY = 86_400
OLD = 1_600_000_000  # the templates' commits (2020-09): older than every project's own commit
IGNORE = "node_modules/\n.venv/\nvenv/\nenv/\n__pycache__/\n*.pyc\ndist/\n"


@dataclass(frozen=True)
class Spec:
    projects: int = 1000
    groups: int = 20
    node_modules_every: int = 3  # every third project has its dependencies installed
    node_modules_files: int = 2000
    venvs: int = 50
    venv_files: int = 300
    loose_venvs: int = 3  # virtualenvs straight in grouping folders (not in a project)
    remote_share: float = 0.9


@dataclass(frozen=True)
class Project:
    path: Path
    kind: str  # "node" or "python"
    manifest: str  # package.json or pyproject.toml
    node_modules: bool
    venv: str | None  # the virtualenv's folder name


def git_env(home: Path, when: int | None = None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": AUTHOR[0],
        "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_COMMITTER_NAME": AUTHOR[0],
        "GIT_COMMITTER_EMAIL": AUTHOR[1],
        "GIT_TERMINAL_PROMPT": "0",
    }
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"{when} +0000"
    return env


def git(cwd: Path, *args: str, home: Path, when: int | None = None) -> str:
    done = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        env=git_env(home, when),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {done.stderr}")
    return done.stdout


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _manifest(kind: str, name: str, description: str) -> str:
    if kind == "node":
        body = {"name": name, "version": "1.0.0", "description": description, "main": "index.js"}
        return json.dumps(body, indent=2) + "\n"
    return (
        f'[project]\nname = "{name}"\nversion = "0.1.0"\ndescription = "{description}"\n'
        'requires-python = ">=3.11"\n'
    )


def write_manifest(project: Project, description: str) -> None:
    """Give the project's manifest a new description (what a user editing it does)."""
    (project.path / project.manifest).write_text(
        _manifest(project.kind, project.path.name, description)
    )


def _template(root: Path, kind: str, home: Path) -> Path:
    path = root / f"template-{kind}"
    path.mkdir(parents=True)
    git(path, "init", "-q", home=home)
    _write(path / "README.md", "# template\n\nA template.\n")
    _write(path / ".gitignore", IGNORE)
    manifest = "package.json" if kind == "node" else "pyproject.toml"
    _write(path / manifest, _manifest(kind, "template", "A template."))
    git(path, "add", "-A", home=home)
    git(path, "commit", "-q", "-m", "initial", home=home, when=OLD)
    if kind == "node":
        sources = {f"src/{n}.js": f"export function {n}() {{ return 1; }}\n" for n in WORDS[:6]}
        sources["test/index.test.js"] = "import { api } from '../src/api.js';\n"
    else:
        sources = {f"src/pkg/{n}.py": f"def {n}() -> int:\n    return 1\n" for n in WORDS[:6]}
        sources["src/pkg/__init__.py"] = ""
        sources["tests/test_api.py"] = "from pkg.api import api\n"
    for name, text in sources.items():
        _write(path / name, text)
    git(path, "add", "-A", home=home)
    git(path, "commit", "-q", "-m", "add sources", home=home, when=OLD + DAY)
    return path


def _own_reflog(git_dir: Path, started: int, message: str) -> None:
    """Make the first reflog line (HEAD's and the branch's) this repository's own."""
    for log in (git_dir / "logs" / "HEAD", git_dir / "logs" / "refs" / "heads" / "main"):
        lines = log.read_text().splitlines(keepends=True)
        ident, _, _ = lines[0].partition("\t")
        head, _, _ = ident.rpartition(f" {OLD} ")
        lines[0] = f"{head} {started} +0000\t{message}\n"
        log.write_text("".join(lines))


def _remote(git_dir: Path, owner: str, name: str) -> None:
    with open(git_dir / "config", "a", encoding="utf-8") as f:
        f.write(
            f'[remote "origin"]\n\turl = git@github.com:{owner}/{name}.git\n'
            "\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
        )


def write_node_modules(folder: Path, files: int) -> None:
    per_package = 20
    for p in range((files + per_package - 1) // per_package):
        package = folder / f"pkg-{p:03d}"
        (package / "lib").mkdir(parents=True)
        names = ["package.json", "index.js", "README.md", "LICENSE"]
        names += [f"lib/m{i}.js" for i in range(per_package - len(names))]
        for name in names[: max(0, files - p * per_package)]:
            text = (
                json.dumps({"name": f"pkg-{p:03d}", "version": "1.0.0"})
                if name == "package.json"
                else f"// {name} of pkg-{p:03d}\nmodule.exports = {p};\n"
            )
            _raw_write(package / name, text)


def write_venv(folder: Path, files: int) -> None:
    folder.mkdir()
    _raw_write(folder / "pyvenv.cfg", "home = /usr/bin\nversion = 3.11.2\n")
    site = folder / "lib" / "python3.11" / "site-packages"
    per_package = 10
    for p in range((files + per_package - 1) // per_package):
        package = site / f"dep{p:03d}"
        package.mkdir(parents=True)
        # Manifests inside site-packages: discovery must never take these for projects.
        names = ["__init__.py", "setup.py", "pyproject.toml", "core.py", "util.py"]
        names += [f"m{i}.py" for i in range(per_package - len(names))]
        for name in names:
            _raw_write(package / name, f"# {name} of dep{p:03d}\nVALUE = {p}\n")


def _raw_write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Job:
    index: int
    path: Path
    kind: str
    node_modules: bool
    venv: str | None
    remote: bool
    when: int


def make_project(job: _Job, template: Path, home: Path, spec: Spec) -> None:
    """One project: a copy of a template made its own with a real commit."""
    shutil.copytree(template, job.path, symlinks=True)
    name = job.path.name
    clone = job.remote and job.index % 4 == 0  # a quarter of those with a remote were cloned
    started = job.when - 30 * DAY - job.index  # unique even for equal dates
    message = (
        f"clone: from https://github.com/upstream/{name}.git"
        if clone
        else f"commit (initial): start {name}"
    )
    _own_reflog(job.path / ".git", started, message)
    project = Project(job.path, job.kind, _manifest_name(job.kind), job.node_modules, job.venv)
    description = f"{name}: a {job.kind} project in {job.path.parent.name}"
    write_manifest(project, description)
    _write(job.path / "README.md", f"# {name}\n\n{description}.\n")
    git(job.path, "commit", "-q", "-a", "-m", f"describe {name}", home=home, when=job.when)
    if job.remote:
        _remote(job.path / ".git", "upstream" if clone else "bench-person", name)
    if job.node_modules:
        write_node_modules(job.path / "node_modules", spec.node_modules_files)
    if job.venv:
        write_venv(job.path / job.venv, spec.venv_files)


def _manifest_name(kind: str) -> str:
    return "package.json" if kind == "node" else "pyproject.toml"


def _make_many(jobs: Sequence[_Job], templates: dict[str, Path], home: Path, spec: Spec) -> int:
    for job in jobs:
        make_project(job, templates[job.kind], home, spec)
    return len(jobs)


def _jobs(dev: Path, spec: Spec, now: int) -> list[_Job]:
    groups = [dev / GROUPS[g % len(GROUPS)] for g in range(spec.groups)]
    python_count = spec.projects - (spec.projects + 1) // 3 - (spec.projects + 1) // 3
    venv_every = max(1, python_count // max(1, spec.venvs))
    jobs, pythons, venvs = [], 0, 0
    for i in range(spec.projects):
        kind = "python" if i % 3 == 2 else "node"
        venv = None
        if kind == "python":
            if pythons % venv_every == 0 and venvs < spec.venvs:
                venv = (".venv", "venv", ".venv", "env")[venvs % 4]
                venvs += 1
            pythons += 1
        # Ages: 40% worked on this month, 30% within half a year, the rest older.
        age = (i * 7919) % 1000
        days = age * 30 / 400 if age < 400 else 30 + (age - 400) * 150 / 300
        if age >= 700:
            days = 180 + (age - 700) * 2
        jobs.append(
            _Job(
                index=i,
                path=groups[i % len(groups)] / f"{WORDS[i % len(WORDS)]}-{i:04d}",
                kind=kind,
                node_modules=i % spec.node_modules_every == 0,
                venv=venv,
                remote=(i * 37) % 100 < spec.remote_share * 100,
                when=int(now - days * DAY - i),
            )
        )
    return jobs


class DevTree:
    """The generated folder; `close` removes it."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.root = Path(tempfile.mkdtemp(prefix="pm-bench-dev-"))
        self.dev = self.root / "dev"
        self.home = self.root / "home"
        self.staging = self.root / "staging"  # outside the Dev folder
        self.templates: dict[str, Path] = {}
        self.projects: list[Project] = []
        self.loose: list[Path] = []  # folders in groups that are not projects
        self.build_s = 0.0
        self._made = 0
        self._files: int | None = None

    def build(self) -> DevTree:
        started = time.monotonic()
        for folder in (self.dev, self.home, self.staging):
            folder.mkdir()
        for kind in ("node", "python"):
            self.templates[kind] = _template(self.root / "templates", kind, self.home)
        jobs = _jobs(self.dev, self.spec, int(time.time()))
        for group in {job.path.parent for job in jobs}:
            group.mkdir()
        workers = (os.cpu_count() or 1) + 1
        chunks = [jobs[i :: workers * 4] for i in range(workers * 4)]
        with ProcessPoolExecutor(workers) as pool:
            for made in pool.map(
                _make_many,
                chunks,
                [self.templates] * len(chunks),
                [self.home] * len(chunks),
                [self.spec] * len(chunks),
            ):
                self._made += made
        self.projects = [
            Project(j.path, j.kind, _manifest_name(j.kind), j.node_modules, j.venv) for j in jobs
        ]
        groups = sorted({job.path.parent for job in jobs})
        for i in range(self.spec.loose_venvs):
            loose = groups[i % len(groups)] / f"py311-tools-{i}"  # no pruned name: pyvenv.cfg
            write_venv(loose, self.spec.venv_files)
            self.loose.append(loose)
        if groups:
            stray = groups[-1] / "node_modules"  # an npm install run in the wrong folder
            write_node_modules(stray, 500)
            self.loose.append(stray)
        self.build_s = time.monotonic() - started
        return self

    def new_project(self, name: str, kind: str, when: int | None = None) -> Project:
        """A fresh project made in the staging folder (outside the Dev folder), to be moved in."""
        self._made += 1
        job = _Job(
            index=self._made,
            path=self.staging / name,
            kind=kind,
            node_modules=False,
            venv=None,
            remote=True,
            when=when or int(time.time()),
        )
        make_project(job, self.templates[kind], self.home, self.spec)
        return Project(job.path, kind, _manifest_name(kind), False, None)

    def describe(self) -> str:
        s = self.spec
        with_nm = sum(p.node_modules for p in self.projects)
        with_venv = sum(p.venv is not None for p in self.projects)
        if self._files is None:
            self._files = count_files(self.dev)
        return (
            f"{len(self.projects):,} git repositories in {s.groups} grouping folders; "
            f"{with_nm} with a node_modules of {s.node_modules_files:,} files, {with_venv} with "
            f"a virtualenv of {s.venv_files} files; {len(self.loose)} loose virtualenvs/"
            f"node_modules in grouping folders; {self._files:,} files in all "
            f"(generated in {self.build_s:.1f} s)"
        )

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


@contextmanager
def generated(spec: Spec) -> Iterator[DevTree]:
    """Build the tree once for all the runs of one benchmark; always remove it."""
    tree = DevTree(spec)
    try:
        yield tree.build()
    finally:
        tree.close()
