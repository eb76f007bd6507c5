"""Hostile repositories (issue 12, items 1 and 2): a repository's files never make the daemon
read, store or return anything from outside the project, and never hang it or exhaust memory.

The class test plants, for every file of a repository the code reads, a link to an outside
canary, a FIFO and a link to /dev/zero, and checks that nothing of the canary comes out; a
control plants the same canary through a link that stays inside, and checks that it does come
out (so every planted place is really read). Then the `.git` pointer itself, config includes,
huge files and the work tree's files; then the same through a real daemon: projects.scan,
projects.get/list, quality, db.export and its log, with the daemon's memory read from /proc.

A FIFO would block a plain open() for ever, so every read runs with a bounded wait.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from client.sync import Client
from daemon.domain.projects import discovery, gitmeta
from daemon.domain.projects.metadata import analyze
from daemon.domain.projects.model import Candidate, GitInfo, ProjectFacts
from daemon.domain.quality.score import assess
from tests.conftest import DaemonFactory
from tests.gitrepos import git, make_repo
from tests.helpers import DaemonProcess

T = TypeVar("T")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CANARY = "pmCANARY4f1e9b"
CANARY_SHA = "cafe" + hashlib.sha1(CANARY.encode()).hexdigest()[4:]  # noqa: S324 - a name
CANARY_TIME = 1_234_567_890
CANARY_TIME_ISO = "2009-02-13T23:31:30"
CANARY_PERCENT = "41.97"
CANARY_REFLOG = (
    f"{'0' * 40} {CANARY_SHA} {CANARY} <{CANARY}@example.com> {CANARY_TIME} +0000"
    f"\tcommit (initial): {CANARY}"
)
CANARY_IDENTITY = "reflog:" + hashlib.sha256(CANARY_REFLOG.encode()).hexdigest()
NEEDLES = [CANARY, CANARY_SHA, CANARY_TIME_ISO, CANARY_IDENTITY, CANARY_PERCENT]

# Every file of a git dir that gitmeta or metadata reads, with canary content shaped for it:
# read from there, each would put a needle into the facts (the control test proves it).
GIT_FILES = {
    "HEAD": f"ref: refs/heads/{CANARY}\n",
    "config": f'[remote "origin"]\n\turl = https://github.com/{CANARY}/x\n'
    f"[user]\n\temail = {CANARY}@example.com\n",
    "description": f"{CANARY} described from outside\n",
    "packed-refs": f"# pack-refs with: peeled fully-peeled sorted \n{CANARY_SHA} refs/heads/main\n",
    "refs/heads/main": f"{CANARY_SHA}\n",
    "refs/remotes/origin/HEAD": f"ref: refs/remotes/origin/{CANARY}\n",
    "logs/HEAD": CANARY_REFLOG + "\n",
}
# The work tree's files that metadata reads (the description chain).
TREE_FILES = {
    "package.json": json.dumps({"description": f"{CANARY} from package.json"}),
    "pyproject.toml": f'[project]\nname = "x"\ndescription = "{CANARY} from pyproject"\n',
    "Cargo.toml": f'[package]\nname = "x"\ndescription = "{CANARY} from Cargo"\n',
    "README.md": f"# Title\n\n{CANARY} from the README.\n",
    ".github/README.md": f"# Title\n\n{CANARY} from .github.\n",
}
COVERAGE = json.dumps({"totals": {"percent_covered": float(CANARY_PERCENT)}})
QUIET = {
    "watch": False,
    "rescan_interval_s": 0,
    "schedule": {k: "off" for k in ("backup", "quality", "maintenance", "retention")},
}


# --- helpers ----------------------------------------------------------------------------------


def bounded(action: Callable[[], T], seconds: float = 10.0) -> T:
    """`action()` on a thread, waited for at most `seconds`: a FIFO opened for reading would
    block it for ever, and the test must fail rather than hang."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("ok", action()))
        except BaseException as exc:  # handed back to the test below
            outcome.append(("error", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"blocked for more than {seconds} s (a FIFO opened?)"
    kind, value = outcome[0]
    if kind == "error":
        raise value
    result: T = value
    return result


def env_of(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "PATH": os.environ.get("PATH", os.defpath)}


def read(repo: Path, home: Path) -> tuple[GitInfo | None, ProjectFacts]:
    """What the scanner reads of a project: gitmeta, then metadata."""
    st = repo.stat()
    candidate = Candidate(
        path=str(repo), root=str(repo.parent), reason="git", device=st.st_dev, inode=st.st_ino
    )

    def both() -> tuple[GitInfo | None, ProjectFacts]:
        info = gitmeta.read_git(str(repo), env=env_of(home))
        return info, analyze(candidate, info, now=NOW)

    return bounded(both)


def leaked(*values: object) -> list[str]:
    text = msgspec.json.encode(list(values)).decode()
    return [needle for needle in NEEDLES if needle in text]


def problem_of(info: GitInfo | None, facts: ProjectFacts) -> str | None:
    return (info.error if info is not None else None) or facts.error


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def make_outside(folder: Path) -> Path:
    """Canary files in `folder` (beside a Dev folder), one per kind of file that is read."""
    folder.mkdir()
    for name, text in {**GIT_FILES, **TREE_FILES}.items():
        (folder / name.replace("/", "_")).write_text(text)
    (folder / "coverage.json").write_text(COVERAGE)
    return folder


def make_outside_repo(outside: Path, home: Path) -> Path:
    """A whole repository beside the Dev folder, with a canary remote and description."""
    repo = make_repo(
        outside / "repo", home=home, remotes={"origin": f"https://github.com/{CANARY}/repo.git"}
    )
    (repo / ".git/description").write_text(f"{CANARY} the outside repository\n")
    return repo


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    return make_outside(tmp_path / "outside")


@pytest.fixture
def outside_repo(outside: Path, home: Path) -> Path:
    return make_outside_repo(outside, home)


def canary(outside: Path, name: str) -> Path:
    return outside / name.replace("/", "_")


def project(dev: Path, name: str, home: Path) -> Path:
    """A plain repository with a remote, origin/HEAD and a README with no prose: every git file
    above is read, and the description comes from .git/description."""
    repo = make_repo(
        dev / name,
        home=home,
        files={"README.md": "# title\n"},
        remotes={"origin": f"https://github.com/me/{name}.git"},
    )
    sha = git(repo, "rev-parse", "HEAD", home=home).strip()
    (repo / ".git/refs/remotes/origin").mkdir(parents=True, exist_ok=True)
    (repo / ".git/refs/remotes/origin/main").write_text(sha + "\n")
    (repo / ".git/refs/remotes/origin/HEAD").write_text("ref: refs/remotes/origin/main\n")
    (repo / ".git/description").write_text("The project's own description.\n")
    return repo


def plant(at: Path, how: str, outside_file: Path) -> None:
    """Replace `at` with a link out, a FIFO, a link to /dev/zero, or a link to a copy of the
    canary inside the same folder (the control)."""
    at.parent.mkdir(parents=True, exist_ok=True)
    if at.is_symlink() or at.exists():
        at.unlink()
    if how == "link":
        at.symlink_to(outside_file)
    elif how == "relative-link":
        at.symlink_to(os.path.relpath(outside_file, at.parent))
    elif how == "fifo":
        os.mkfifo(at)
    elif how == "zero":
        at.symlink_to("/dev/zero")
    elif how == "inside":
        copy = at.parent / f"canary-{at.name}"
        shutil.copyfile(outside_file, copy)
        at.symlink_to(copy.name)
    else:
        raise AssertionError(how)


def plant_git_file(repo: Path, name: str, how: str, outside: Path, home: Path) -> None:
    if name == "packed-refs":
        git(repo, "pack-refs", "--all", "--prune", home=home)  # so main is read from there
        assert not (repo / ".git/refs/heads/main").exists()
    plant(repo / ".git" / name, how, canary(outside, name))


# --- 1 and 2: every git file, linked out, a FIFO, /dev/zero -------------------------------


@pytest.mark.parametrize("how", ["link", "relative-link", "fifo", "zero"])
@pytest.mark.parametrize("name", list(GIT_FILES))
def test_no_git_file_is_read_through_a_link_out_a_fifo_or_a_device(
    tmp_path: Path, home: Path, outside: Path, name: str, how: str
) -> None:
    repo = project(tmp_path / "dev", "proj", home)
    plant_git_file(repo, name, how, outside, home)
    info, facts = read(repo, home)
    assert leaked(info, facts) == []
    assert info is not None and info.kind == "worktree"  # the rest of the repository is read
    assert problem_of(info, facts) is not None  # and what was refused is said
    assert facts.description in (None, "The project's own description.")


@pytest.mark.parametrize("name", list(GIT_FILES))
def test_control_every_planted_git_file_is_really_read(
    tmp_path: Path, home: Path, outside: Path, name: str
) -> None:
    """The same canary through a link that stays inside the git dir comes out: the test above
    plants in places that are read, so it would have caught each of them."""
    repo = project(tmp_path / "dev", "proj", home)
    plant_git_file(repo, name, "inside", outside, home)
    info, facts = read(repo, home)
    assert leaked(info, facts) != []


# --- 1: the .git pointer itself -----------------------------------------------------------


def _dotgit_link(repo: Path, outside: Path) -> None:
    shutil.rmtree(repo / ".git")
    (repo / ".git").symlink_to(outside / "repo/.git", target_is_directory=True)


def _gitdir_absolute(repo: Path, outside: Path) -> None:
    shutil.rmtree(repo / ".git")
    (repo / ".git").write_text(f"gitdir: {outside / 'repo/.git'}\n")


def _gitdir_relative(repo: Path, outside: Path) -> None:
    shutil.rmtree(repo / ".git")
    (repo / ".git").write_text(f"gitdir: {os.path.relpath(outside / 'repo/.git', repo)}\n")


def _dotgit_file_linked_out(repo: Path, outside: Path) -> None:
    shutil.rmtree(repo / ".git")
    (outside / "pointer").write_text(f"gitdir: {outside / 'repo/.git'}\n")
    (repo / ".git").symlink_to(outside / "pointer")


def _someone_elses_worktree(repo: Path, outside: Path) -> None:
    """A real worktree of the outside repository, but registered for another folder."""
    git(outside / "repo", "worktree", "add", "-q", "-b", "wt", str(outside / "wt"))
    shutil.rmtree(repo / ".git")
    (repo / ".git").write_text(f"gitdir: {outside / 'repo/.git/worktrees/wt'}\n")


def _forged_worktree_inside(repo: Path, outside: Path) -> None:
    """A worktree layout inside the project, naming the project back, whose commondir leads
    to the outside repository."""
    fake = repo / "fake/worktrees/x"
    fake.mkdir(parents=True)
    (fake / "HEAD").write_text("ref: refs/heads/main\n")
    (fake / "commondir").write_text(f"{outside / 'repo/.git'}\n")
    (fake / "gitdir").write_text(f"{repo / '.git'}\n")
    shutil.rmtree(repo / ".git")
    (repo / ".git").write_text(f"gitdir: {fake}\n")


def _modules_of_another_repository(repo: Path, outside: Path) -> None:
    """A submodule layout, but under a repository that does not hold this checkout."""
    modules = outside / "repo/.git/modules"
    shutil.copytree(
        outside / "repo/.git", modules / "lib", ignore=shutil.ignore_patterns("modules")
    )
    shutil.rmtree(repo / ".git")
    (repo / ".git").write_text(f"gitdir: {modules / 'lib'}\n")


@pytest.mark.usefixtures("outside_repo")
@pytest.mark.parametrize(
    "plant_pointer",
    [
        _dotgit_link,
        _gitdir_absolute,
        _gitdir_relative,
        _dotgit_file_linked_out,
        _someone_elses_worktree,
        _forged_worktree_inside,
        _modules_of_another_repository,
    ],
)
def test_a_git_pointer_that_leads_outside_reads_nothing_there(
    tmp_path: Path, home: Path, outside: Path, plant_pointer: Callable[[Path, Path], None]
) -> None:
    repo = project(tmp_path / "dev", "proj", home)
    plant_pointer(repo, outside)
    outside_sha = git(outside / "repo", "rev-parse", "HEAD", home=home).strip()
    info, facts = read(repo, home)
    assert leaked(info, facts) == []
    assert outside_sha not in msgspec.json.encode([info, facts]).decode()
    if plant_pointer is not _forged_worktree_inside:  # that one stays inside: read as such
        assert info is None and facts.vcs == "none"
        expected = "leads outside the project"
        if plant_pointer is _someone_elses_worktree:
            expected = "a worktree its repository does not list at this folder"
        assert facts.error is not None and facts.error.startswith(f".git: {expected}")
        assert gitmeta.locate(str(repo)) is None  # so the watcher watches nothing there
    found = bounded(lambda: discovery.walk([str(repo.parent)], max_depth=1))
    assert leaked(found) == []


def test_a_fifo_as_the_git_pointer_or_its_targets_hangs_nothing(tmp_path: Path, home: Path) -> None:
    repo = project(tmp_path / "dev", "proj", home)
    shutil.rmtree(repo / ".git")
    os.mkfifo(repo / ".git")
    info, facts = read(repo, home)
    assert info is None and facts.vcs == "none"
    bounded(lambda: discovery.walk([str(repo.parent)], max_depth=1))

    (repo / ".git").unlink()
    (repo / "gitdir").mkdir()
    (repo / ".git").write_text("gitdir: gitdir\n")
    for name in ("commondir", "gitdir", "HEAD", "config"):
        os.mkfifo(repo / "gitdir" / name)
    info, facts = read(repo, home)  # read as a whole repository inside the project
    assert info is not None and info.error is not None and "FIFO" in info.error


@pytest.mark.usefixtures("outside_repo")
@pytest.mark.parametrize("how", ["link", "fifo", "zero"])
@pytest.mark.parametrize("name", ["commondir", "gitdir", "config.worktree", "HEAD", "logs/HEAD"])
def test_no_linked_worktree_file_is_read_through_a_link_out_a_fifo_or_a_device(
    tmp_path: Path, home: Path, outside: Path, name: str, how: str
) -> None:
    """A linked worktree's own git dir: its pointers (commondir, the back-link gitdir) and its
    files. Linked out, each would name the outside repository or hold a canary."""
    dev = tmp_path / "dev"
    main = project(dev, "main", home)
    git(main, "config", "extensions.worktreeConfig", "true", home=home)
    wt = dev / "wt"
    git(main, "worktree", "add", "-q", "-b", "feature", str(wt), home=home)
    own = main / ".git/worktrees/wt"
    lures = {
        "commondir": f"{outside / 'repo/.git'}\n",
        "gitdir": f"{wt / '.git'}\n",  # the right back-link, but from outside
        "config.worktree": GIT_FILES["config"],
        "HEAD": GIT_FILES["HEAD"],
        "logs/HEAD": GIT_FILES["logs/HEAD"],
    }
    lure = outside / f"lure-{name.replace('/', '_')}"
    lure.write_text(lures[name])
    plant(own / name, how, lure)
    outside_sha = git(outside / "repo", "rev-parse", "HEAD", home=home).strip()
    info, facts = read(wt, home)
    assert leaked(info, facts) == []
    assert outside_sha not in msgspec.json.encode([info, facts]).decode()
    if name == "gitdir":  # without its back-link the worktree is not this folder's
        assert info is None and facts.error is not None and "does not list" in facts.error
    elif name == "commondir":  # the layout says where the repository is: still read, from there
        assert info is not None and info.kind == "linked-worktree"
        assert [r.url for r in info.remotes] == ["https://github.com/me/main"]
    else:
        assert info is not None and info.error is not None
        assert info.error.startswith(name)


@pytest.mark.parametrize("name", ["config.worktree", "HEAD", "logs/HEAD"])
def test_control_a_linked_worktrees_own_files_are_really_read(
    tmp_path: Path, home: Path, outside: Path, name: str
) -> None:
    dev = tmp_path / "dev"
    main = project(dev, "main", home)
    git(main, "config", "extensions.worktreeConfig", "true", home=home)
    git(main, "worktree", "add", "-q", "-b", "feature", str(dev / "wt"), home=home)
    source = "config" if name == "config.worktree" else name
    plant(main / ".git/worktrees/wt" / name, "inside", canary(outside, source))
    info, facts = read(dev / "wt", home)
    assert leaked(info, facts) != []


# --- 1: the legitimate cases still work ---------------------------------------------------


def test_a_linked_worktree_with_relative_links_and_a_submodule_are_read(
    tmp_path: Path, home: Path
) -> None:
    dev = tmp_path / "dev"
    main = project(dev, "main", home)
    wt = dev / "wt"
    git(main, "worktree", "add", "-q", "-b", "feature", str(wt), home=home)
    # git 2.48's worktree.useRelativePaths writes both links relative; a move keeps them.
    (main / ".git/worktrees/wt/gitdir").write_text("../../../../wt/.git\n")
    (wt / ".git").write_text("gitdir: ../main/.git/worktrees/wt\n")
    info, _ = read(wt, home)
    assert info is not None and (info.kind, info.branch) == ("linked-worktree", "feature")
    assert [r.url for r in info.remotes] == ["https://github.com/me/main"]

    lib = make_repo(tmp_path / "lib", home=home, remotes={"origin": "https://h.example/o/lib"})
    git(main, "submodule", "add", "-q", str(lib), "deps/lib", home=home)
    info, _ = read(main / "deps/lib", home)
    assert info is not None and info.error is None
    assert info.head_sha == git(lib, "rev-parse", "HEAD", home=home).strip()
    # A submodule of the linked worktree: its gitdir is under the worktree's own git dir.
    git(wt, "submodule", "add", "-q", str(lib), "deps/lib", home=home)
    info, _ = read(wt / "deps/lib", home)
    assert info is not None and info.error is None


# --- 1 and 2: config includes -------------------------------------------------------------


def _include(repo: Path, outside: Path, home: Path, how: str) -> None:
    config_dir = repo / ".git"
    target = canary(outside, "config")
    lines = {
        "absolute": f"[include]\n\tpath = {target}\n",
        "relative": f"[include]\n\tpath = {os.path.relpath(target, config_dir)}\n",
        "includeIf": f'[includeIf "gitdir:/"]\n\tpath = {target}\n',
        "includeIf-relative": f'[includeIf "gitdir/i:**"]\n\tpath = '
        f"{os.path.relpath(target, config_dir)}\n",
        "home": "[include]\n\tpath = ~/canary.config\n",
        "link-inside-the-git-dir": "[include]\n\tpath = extra\n",
        "dev-zero": "[include]\n\tpath = /dev/zero\n",
        "fifo": "[include]\n\tpath = extra\n",
        "nested": "[include]\n\tpath = extra\n",
    }
    shutil.copyfile(target, home / "canary.config")
    if how == "link-inside-the-git-dir":
        (config_dir / "extra").symlink_to(target)
    elif how == "fifo":
        os.mkfifo(config_dir / "extra")
    elif how == "nested":  # an include inside that includes outside
        (config_dir / "extra").write_text(f"[include]\n\tpath = {target}\n")
    with (config_dir / "config").open("a") as f:
        f.write(lines[how])


@pytest.mark.parametrize(
    "how",
    [
        "absolute",
        "relative",
        "includeIf",
        "includeIf-relative",
        "home",
        "link-inside-the-git-dir",
        "dev-zero",
        "fifo",
        "nested",
    ],
)
def test_a_repository_config_include_is_followed_only_inside_its_git_dir(
    tmp_path: Path, home: Path, outside: Path, how: str
) -> None:
    repo = project(tmp_path / "dev", "proj", home)
    _include(repo, outside, home, how)
    info, facts = read(repo, home)
    assert leaked(info, facts) == []
    assert info is not None and info.error is not None and info.error.startswith("config")
    assert [r.url for r in info.remotes] == ["https://github.com/me/proj"]


def test_includes_inside_the_git_dir_are_followed(tmp_path: Path, home: Path) -> None:
    repo = project(tmp_path / "dev", "proj", home)
    (repo / ".git/extra").write_text('[remote "extra"]\n\turl = https://h.example/o/extra\n')
    (repo / ".git/when").write_text('[remote "when"]\n\turl = https://h.example/o/when\n')
    with (repo / ".git/config").open("a") as f:
        f.write('[include]\n\tpath = extra\n[includeIf "gitdir:**/proj/.git"]\n\tpath = when\n')
    info, _ = read(repo, home)
    assert info is not None and info.error is None
    assert [r.name for r in info.remotes] == ["origin", "extra", "when"]


def test_an_include_bomb_stops_at_the_budget(tmp_path: Path, home: Path) -> None:
    (home / ".gitconfig").write_text("[user]\n\temail = me@example.com\n")
    repo = project(tmp_path / "dev", "proj", home)
    with (repo / ".git/config").open("a") as f:
        f.write("[include]\n\tpath = config\n[include]\n\tpath = config\n")  # 2^10 reads
    started = time.monotonic()
    info, _ = read(repo, home)
    assert time.monotonic() - started < 5
    assert info is not None and info.error is not None and "too many" in info.error
    assert info.remotes[0].url == "https://github.com/me/proj"
    assert info.user_email == "me@example.com"  # the user's own files have their own budget


def test_the_users_global_config_may_live_anywhere(tmp_path: Path, home: Path) -> None:
    """The user's own files are not the repository's: a linked ~/.gitconfig and its includes
    are read wherever they are (with the same caps)."""
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    (dotfiles / "gitconfig").write_text(f"[include]\n\tpath = {dotfiles / 'more'}\n")
    (dotfiles / "more").write_text("[user]\n\temail = me@example.com\n")
    (home / ".gitconfig").symlink_to(dotfiles / "gitconfig")
    repo = project(tmp_path / "dev", "proj", home)
    info, _ = read(repo, home)
    assert info is not None and info.error is None and info.user_email == "me@example.com"


# --- 2: huge files ------------------------------------------------------------------------


def sparse(path: Path, size: int) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    with path.open("wb") as f:
        f.truncate(size)  # no disk used, but a read of it all would take `size` bytes


def test_huge_files_are_refused_or_read_only_in_part(tmp_path: Path, home: Path) -> None:
    repo = project(tmp_path / "dev", "proj", home)
    git(repo, "pack-refs", "--all", "--prune", home=home)
    huge = 4 << 30
    for name in ("HEAD", "config", "description", "packed-refs", "logs/HEAD"):
        sparse(repo / ".git" / name, huge)
    for name in ("README.md", "package.json", "pyproject.toml"):
        sparse(repo / name, huge)
    tracemalloc.start()
    try:
        info, facts = read(repo, home)
        quality = bounded(lambda: assess(str(repo), last_worked_on=None, now=NOW))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"{peak} bytes allocated at the peak"
    assert info is not None and info.error is not None and "over the limit" in info.error
    assert (info.head_sha, info.remotes) == (None, [])
    assert facts.description is None  # 4 KiB of NUL bytes read from description: no text
    assert quality.error is None  # the assessment is made from what could be read


# --- 1 and 2: the work tree's files -------------------------------------------------------


@pytest.mark.parametrize("how", ["link", "relative-link", "fifo", "zero"])
def test_no_work_tree_file_is_read_through_a_link_out_a_fifo_or_a_device(
    tmp_path: Path, home: Path, outside: Path, how: str
) -> None:
    repo = project(tmp_path / "dev", "proj", home)
    for name in TREE_FILES:
        plant(repo / name, how, canary(outside, name))
    plant(repo / "coverage.json", how, outside / "coverage.json")
    info, facts = read(repo, home)
    quality = bounded(lambda: assess(str(repo), last_worked_on=None, now=NOW))
    assert leaked(info, facts, quality) == []
    assert facts.description == "The project's own description."  # .git/description, last
    if how != "fifo":  # a FIFO is not listed as a file: nothing tries to read it
        assert facts.error is not None


def test_control_work_tree_files_linked_inside_are_read(
    tmp_path: Path, home: Path, outside: Path
) -> None:
    repo = project(tmp_path / "dev", "proj", home)
    plant(repo / "README.md", "inside", canary(outside, "README.md"))
    plant(repo / "coverage.json", "inside", outside / "coverage.json")
    _, facts = read(repo, home)
    quality = assess(str(repo), last_worked_on=None, now=NOW)
    assert CANARY in (facts.description or "")
    assert quality.coverage is not None and quality.coverage.percent == float(CANARY_PERCENT)


# --- through a real daemon ----------------------------------------------------------------


def hostile_dev_folder(d: DaemonProcess) -> list[str]:
    """A Dev folder of hostile repositories beside an outside folder of canaries; returns the
    names of the projects that must be listed."""
    outside = make_outside(d.root / "outside")
    other = make_outside_repo(outside, d.home)
    base = project(d.root / "base", "base", d.home)
    git(base, "pack-refs", "--all", "--prune", home=d.home)  # main is read from packed-refs
    names: list[str] = []

    def variant(name: str) -> Path:
        copy = d.dev_root / name
        shutil.copytree(base, copy, symlinks=True)
        names.append(name)
        return copy

    for file in GIT_FILES:
        for how in ("link", "fifo", "zero"):
            repo = variant(f"{file.replace('/', '-')}-{how}")
            plant(repo / ".git" / file, how, canary(outside, file))
    for how in ("link", "fifo", "zero"):
        repo = variant(f"tree-{how}")
        for file in TREE_FILES:
            plant(repo / file, how, canary(outside, file))
        plant(repo / "coverage.json", how, outside / "coverage.json")
    for pointer in (_dotgit_link, _gitdir_absolute, _gitdir_relative, _dotgit_file_linked_out):
        pointer(variant(pointer.__name__.strip("_")), outside)
    for how in ("absolute", "relative", "includeIf", "dev-zero", "fifo", "nested"):
        _include(variant(f"include-{how}"), outside, d.home, how)
    for name in ("config", "HEAD", "packed-refs", "README.md"):
        repo = variant(f"huge-{name.replace('.', '-')}")
        sparse(repo / (name if name == "README.md" else f".git/{name}"), 4 << 30)
    # The legitimate cases beside them.
    main = project(d.dev_root, "main", d.home)
    git(main, "worktree", "add", "-q", "-b", "feature", str(d.dev_root / "main-wt"), home=d.home)
    git(main, "submodule", "add", "-q", str(other), "deps/lib", home=d.home)
    names += ["main", "main-wt"]
    return names


def rss_kib(pid: int) -> dict[str, int]:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_daemon_scanning_hostile_repositories_leaks_nothing_hangs_on_nothing_and_stays_small(
    make_daemon: DaemonFactory,
) -> None:
    d = make_daemon("h", config=QUIET)
    names = hostile_dev_folder(d)
    d.start()
    assert d.process is not None
    before = rss_kib(d.process.pid)
    # A bounded wait: a FIFO opened by the scan would make this call time out.
    with Client(d.socket_path, timeout=60.0).connect() as c:
        summary = c.call("projects.scan")
        c.call("quality.scan")
        page = c.call("projects.list", {"limit": 1000, "include_missing": True})
        listed = {p["name"]: p for p in page["items"]}
        got = [c.call("projects.get", {"project": p["id"]}) for p in page["items"]]
        quality = [c.call("quality.get", {"project": p["id"]}) for p in page["items"]]
        exported = Path(c.call("db.export", {"format": "json"})["path"]).read_text()
        assert c.call("daemon.status")["state"] == "ready"
    after = rss_kib(d.process.pid)
    assert summary["found"] == len(listed)
    assert set(names) <= set(listed)
    seen = json.dumps([page, got, quality, summary]) + exported + d.log()
    assert [n for n in NEEDLES if n in seen] == []
    assert all(p["present"] for p in listed.values())
    # What was refused is said, and the rest of the repository still read.
    assert listed["description-link"]["vcs"] == "git"
    assert listed["description-link"]["branch"] == "main"
    assert listed["dotgit_link"]["vcs"] == "none"
    assert listed["dotgit_link"]["scan_error"] == ".git: leads outside the project"
    assert listed["HEAD-fifo"]["scan_error"].startswith("HEAD: not a regular file")
    # The legitimate worktree and submodule still work.
    assert listed["main-wt"]["git_kind"] == "linked-worktree"
    assert listed["main-wt"]["worktree_of"] == listed["main"]["id"]
    assert "lib" not in listed
    # Memory: no file was read whole into memory (/dev/zero alone took 4 GB before).
    grew = after["VmHWM"] - before["VmRSS"]
    assert grew < 64 * 1024, f"the daemon's peak RSS grew by {grew} KiB during the scan"
    assert d.process.poll() is None
    assert d.stop() == 0
