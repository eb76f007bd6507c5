"""Discovery walks real folders and real git repositories made in the test's temp dir."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.domain.projects import discovery
from daemon.domain.projects.discovery import PRUNED_NAMES, walk
from daemon.domain.projects.model import Discovery
from tests.gitrepos import git, make_repo


def touch(path: Path, text: str = "{}\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def paths(found: Discovery) -> list[str]:
    return [c.path for c in found.candidates]


@pytest.fixture
def dev(tmp_path: Path) -> Path:
    root = tmp_path / "Dev"
    root.mkdir()
    return root


def test_grouping_folder_of_repos(dev: Path) -> None:
    api = make_repo(dev / "work" / "api")
    web = make_repo(dev / "work" / "web", files={"package.json": "{}", "README.md": "x"})
    found = walk([str(dev)])
    assert paths(found) == [str(api), str(web)]
    assert [c.reason for c in found.candidates] == ["git", "git"]
    assert found.candidates[1].manifests == ["package.json"]  # listed for git projects too
    assert all(c.root == str(dev) for c in found.candidates)
    assert found.groups == [str(dev), str(dev / "work")]
    assert found.errors == []
    st = os.stat(api)
    assert (found.candidates[0].device, found.candidates[0].inode) == (st.st_dev, st.st_ino)


def test_repos_inside_a_repo_are_part_of_it(dev: Path) -> None:
    outer = make_repo(dev / "outer")
    make_repo(outer / "vendor" / "lib")
    make_repo(outer / "src" / "nested")
    touch(outer / "tools" / "package.json")
    assert paths(walk([str(dev)])) == [str(outer)]


def test_vendor_is_pruned_outside_a_project_too(dev: Path) -> None:
    make_repo(dev / "group" / "vendor" / "lib")
    found = walk([str(dev)])
    assert found.candidates == []
    assert found.groups == [str(dev), str(dev / "group")]


@pytest.mark.parametrize("name", sorted(PRUNED_NAMES - {".git"}))  # .git makes a project
def test_every_pruned_name_is_never_entered(dev: Path, name: str) -> None:
    touch(dev / name / "proj" / "package.json")
    found = walk([str(dev)])
    assert found.candidates == []
    assert found.groups == [str(dev)]


def test_monorepo_is_one_project(dev: Path) -> None:
    mono = dev / "mono"
    touch(mono / "package.json")
    for pkg in ("a", "b", "c"):
        touch(mono / "packages" / pkg / "package.json")
    found = walk([str(dev)])
    assert paths(found) == [str(mono)]
    assert found.candidates[0].manifests == ["package.json"]
    assert found.groups == [str(dev)]


def test_project_without_git(dev: Path) -> None:
    touch(dev / "tool" / "pyproject.toml", "[project]\nname = 'tool'\n")
    touch(dev / "dotnet" / "App.csproj", "<Project/>")
    touch(dev / "dotnet" / "App.sln", "")
    touch(dev / "dotnet" / "CMakeLists.txt", "")
    touch(dev / "notes" / "README.md", "just notes")
    (dev / "odd" / "package.json").mkdir(parents=True)  # a folder with a manifest's name is not one
    found = walk([str(dev)])
    assert paths(found) == [str(dev / "dotnet"), str(dev / "tool")]
    assert {c.reason for c in found.candidates} == {"manifest"}
    assert found.candidates[0].manifests == ["App.csproj", "App.sln", "CMakeLists.txt"]
    assert found.candidates[1].manifests == ["pyproject.toml"]
    assert str(dev / "notes") in found.groups
    assert str(dev / "odd") in found.groups


def test_a_root_that_is_a_project_is_found_at_depth_zero(dev: Path) -> None:
    make_repo(dev)
    found = walk([str(dev)])
    assert paths(found) == [str(dev)]
    assert found.groups == []


def test_bare_repository(dev: Path) -> None:
    bare = dev / "mirrors" / "thing.git"
    bare.mkdir(parents=True)
    git(bare, "init", "-q", "--bare")
    found = walk([str(dev)])
    assert paths(found) == [str(bare)]
    assert found.candidates[0].reason == "bare"
    assert str(bare / "refs") not in found.groups  # not descended into


def test_linked_worktree_is_its_own_candidate(dev: Path) -> None:
    main = make_repo(dev / "app")
    git(main, "worktree", "add", "-q", "-b", "feature", str(dev / "app-feature"))
    assert (dev / "app-feature" / ".git").is_file()
    found = walk([str(dev)])
    assert paths(found) == [str(main), str(dev / "app-feature")]
    assert [c.reason for c in found.candidates] == ["git", "git"]


def test_submodule_is_not_a_project(tmp_path: Path, dev: Path) -> None:
    lib = make_repo(tmp_path / "lib-origin")
    sup = make_repo(dev / "super")
    git(sup, "submodule", "add", "-q", str(lib), "libs/lib", home=tmp_path)
    sub = sup / "libs" / "lib"
    assert (sub / ".git").read_text().startswith("gitdir: ")
    assert paths(walk([str(dev)])) == [str(sup)]  # met normally: inside its superproject
    # A root pointing into the superproject meets the submodule as an ordinary child.
    found = walk([str(sup / "libs")])
    assert found.candidates == []
    assert found.groups == [str(sup / "libs")]
    found = walk([str(sub)])
    assert (found.candidates, found.groups, found.errors) == ([], [], [])


def test_submodule_gitdir_shapes() -> None:
    is_sub = discovery._is_submodule_gitdir
    assert is_sub("/d/super/.git/modules/lib")
    assert is_sub("/d/super/.git/modules/a/modules/b")
    assert is_sub("/d/super/.git/worktrees/wt/modules/lib")  # submodule of a linked worktree
    assert is_sub("/srv/super.git/modules/lib")  # superproject with a separate git dir
    assert not is_sub("/d/app/.git/worktrees/feature")
    assert not is_sub("/d/app/.git/worktrees/modules")  # a worktree that happens to be "modules"
    assert not is_sub("/srv/separate/app-gitdir")


def test_git_file_that_is_not_a_pointer(dev: Path) -> None:
    touch(dev / "weird" / ".git", "not a gitdir line\n")
    touch(dev / "weird-manifest" / ".git", "")
    touch(dev / "weird-manifest" / "go.mod", "module x\n")
    touch(dev / "separate" / ".git", "gitdir: /somewhere/else/repo\n")
    found = walk([str(dev)])
    assert [(c.path, c.reason) for c in found.candidates] == [
        (str(dev / "separate"), "git"),
        (str(dev / "weird-manifest"), "manifest"),
    ]
    assert str(dev / "weird") in found.groups


def test_node_modules_and_custom_named_venv_are_pruned(dev: Path) -> None:
    proj = dev / "site"
    touch(proj / "package.json")
    for owner in (dev / "loose", proj):
        modules = owner / "node_modules"
        for i in range(300):
            touch(modules / f"pkg{i % 30}" / f"file{i}.js", "x")
        touch(modules / "looks-like-a-project" / "package.json")
        make_repo(modules / "has-git")
    env = dev / "loose" / "py311-env"
    touch(env / "pyvenv.cfg", "home = /usr/bin\n")
    touch(env / "package.json")
    touch(env / "lib" / "python3.11" / "site-packages" / "thing" / "setup.py", "")
    found = walk([str(dev)])
    assert paths(found) == [str(proj)]
    assert found.groups == [str(dev), str(dev / "loose")]


def test_git_wins_over_pyvenv_cfg(dev: Path) -> None:
    repo = make_repo(dev / "app")  # `python -m venv .` inside a checkout
    touch(repo / "pyvenv.cfg", "home = /usr/bin\n")
    assert paths(walk([str(dev)])) == [str(repo)]


def test_max_depth(dev: Path) -> None:
    deep = dev / "a" / "b" / "c"
    touch(deep / "p4" / "Cargo.toml", "")  # depth 4: counts
    touch(deep / "d" / "p5" / "Cargo.toml", "")  # depth 5: never looked at
    found = walk([str(dev)])
    assert paths(found) == [str(deep / "p4")]
    assert str(deep / "d") in found.groups  # depth 4 is listed, its children are not
    assert str(deep / "d" / "p5") not in found.groups
    assert paths(walk([str(dev)], max_depth=3)) == []
    assert walk([str(dev)], max_depth=0).groups == [str(dev)]


def test_symlinked_project(tmp_path: Path, dev: Path) -> None:
    real = tmp_path / "elsewhere" / "proj"
    touch(real / "package.json")
    (dev / "link-a").symlink_to(real, target_is_directory=True)
    (dev / "link-b").symlink_to(real, target_is_directory=True)
    found = walk([str(dev)])
    assert (found.candidates, found.groups) == ([], [str(dev)])

    found = walk([str(dev)], follow_symlinks=True)
    assert paths(found) == [str(dev / "link-a")]  # as found; the second link is a duplicate
    st = os.stat(real)
    assert (found.candidates[0].device, found.candidates[0].inode) == (st.st_dev, st.st_ino)


def test_real_path_wins_over_a_symlinked_alias(dev: Path) -> None:
    touch(dev / "proj" / "package.json")
    (dev / "alias").symlink_to(dev / "proj", target_is_directory=True)  # sorts first
    assert paths(walk([str(dev)], follow_symlinks=True)) == [str(dev / "proj")]


def test_symlink_loop_terminates(dev: Path) -> None:
    group = dev / "group"
    touch(group / "proj" / "package.json")
    (group / "up").symlink_to("..", target_is_directory=True)
    (group / "self").symlink_to(group / "self")  # ELOOP: an error, not a hang
    (dev / "dangling").symlink_to(dev / "missing")
    found = walk([str(dev)], follow_symlinks=True)
    assert paths(found) == [str(group / "proj")]
    assert found.groups == [str(dev), str(group)]
    assert [e.path for e in found.errors] == [str(group / "self")]


def test_symlinked_root_is_entered(tmp_path: Path, dev: Path) -> None:
    touch(dev / "proj" / "package.json")
    link = tmp_path / "DevLink"
    link.symlink_to(dev, target_is_directory=True)
    assert paths(walk([str(link)])) == [str(link / "proj")]


def test_missing_root_and_file_root_are_errors(tmp_path: Path, dev: Path) -> None:
    touch(dev / "proj" / "package.json")
    file_root = touch(tmp_path / "a-file", "")
    found = walk([str(tmp_path / "nope"), str(file_root), str(dev)])
    assert paths(found) == [str(dev / "proj")]
    assert [e.path for e in found.errors] == [str(file_root), str(tmp_path / "nope")]
    assert all(e.error for e in found.errors)
    found = walk([str(tmp_path / "nope")], follow_symlinks=True)
    assert len(found.errors) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 folder anyway")
def test_unreadable_folder(dev: Path) -> None:
    locked = dev / "locked"
    touch(locked / "proj" / "package.json")
    touch(dev / "open" / "package.json")
    locked.chmod(0)
    try:
        found = walk([str(dev)])
    finally:
        locked.chmod(0o755)
    assert paths(found) == [str(dev / "open")]
    assert [e.path for e in found.errors] == [str(locked)]


@pytest.fixture
def scandir_hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, BaseException | None]]:
    """Make listing a given folder fail, or make it vanish just before it is listed."""
    plan: dict[str, BaseException | None] = {}
    real = os.scandir

    def scandir(path: Any) -> Any:
        if isinstance(path, str) and path in plan:
            failure = plan.pop(path)
            if failure is not None:
                raise failure
            shutil.rmtree(path)  # gone between its parent's listing and its own
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    yield plan


def test_folder_errors_are_recorded_and_skipped(
    dev: Path, scandir_hook: dict[str, BaseException | None]
) -> None:
    for name in ("denied", "vanishing", "ok"):
        touch(dev / name / "proj" / "package.json")
    scandir_hook[str(dev / "denied")] = PermissionError(13, "Permission denied")
    scandir_hook[str(dev / "vanishing")] = None
    found = walk([str(dev)])
    assert paths(found) == [str(dev / "ok" / "proj")]
    assert [(e.path, e.error) for e in found.errors] == [
        (str(dev / "denied"), "Permission denied"),
        (str(dev / "vanishing"), "No such file or directory"),
    ]
    assert str(dev / "denied") not in found.groups


def test_a_folder_replaced_by_a_file_mid_scan(
    dev: Path, scandir_hook: dict[str, BaseException | None]
) -> None:
    touch(dev / "swapped" / "proj" / "package.json")
    scandir_hook[str(dev / "swapped")] = NotADirectoryError(20, "Not a directory")
    found = walk([str(dev)])
    assert found.candidates == []
    assert [e.error for e in found.errors] == ["Not a directory"]


def test_data_folder_is_excluded(dev: Path) -> None:
    data = dev / ".pm-agent"
    touch(data / "cache" / "package.json")
    touch(dev / "proj" / "package.json")
    for spelling in (str(data), str(data) + "/", str(dev / "proj" / ".." / ".pm-agent")):
        found = walk([str(dev)], exclude=[spelling])
        assert paths(found) == [str(dev / "proj")]
        assert found.groups == [str(dev)]
    assert walk([str(data)], exclude=[str(data)]) == Discovery(candidates=[], groups=[], errors=[])


def test_non_utf8_folder_name(dev: Path) -> None:
    raw = os.fsencode(str(dev)) + b"/caf\xe9"
    os.makedirs(raw + b"/proj\xff")
    with open(raw + b"/proj\xff/package.json", "wb") as f:
        f.write(b"{}")
    found = walk([str(dev)])
    assert paths(found) == [os.fsdecode(raw + b"/proj\xff")]
    assert os.fsdecode(raw) in found.groups
    assert os.fsencode(found.candidates[0].path) == raw + b"/proj\xff"  # round-trips to bytes


def test_overlapping_roots_report_a_project_once(dev: Path) -> None:
    make_repo(dev / "work" / "api")
    found = walk([str(dev), str(dev / "work")])
    assert paths(found) == [str(dev / "work" / "api")]
    assert found.candidates[0].root == str(dev)
    assert found.groups == [str(dev), str(dev / "work")]


def build_tree(dev: Path, order: list[str]) -> None:
    for name in order:
        touch(dev / "g" / name / "package.json")
        (dev / "h" / name).mkdir(parents=True)


def test_results_are_deterministic(tmp_path: Path) -> None:
    names = [f"p{i:02d}" for i in range(40)]
    one, two = tmp_path / "one", tmp_path / "two"
    build_tree(one, names)
    build_tree(two, names[::-1])  # different creation order, often a different listing order

    def relative(found: Discovery, base: Path) -> tuple[list[str], list[str]]:
        return (
            [os.path.relpath(p, base) for p in paths(found)],
            [os.path.relpath(p, base) for p in found.groups],
        )

    first = walk([str(one)])
    assert paths(first) == sorted(paths(first))
    assert first.groups == sorted(first.groups)
    assert walk([str(one)]) == first
    assert relative(first, one) == relative(walk([str(two)]), two)
