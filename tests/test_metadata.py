"""Project facts from real folders and real git repositories in tmp_path.

GitInfo values are built here from what each test knows about its repo (gitmeta, which reads
them in production, is tested on its own). `now` is fixed: nothing depends on the clock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from daemon.domain.projects.metadata import (
    GIT_PLACEHOLDER,
    SOURCE_MAX_BYTES,
    WALK_MAX_ENTRIES,
    analyze,
    fingerprint,
    truncate,
)
from daemon.domain.projects.model import Candidate, GitInfo, ProjectFacts, ReflogSummary, Remote
from daemon.store.clock import iso
from tests.gitrepos import AUTHOR, git, make_repo

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
MANIFESTS_IN_ORDER = ["package.json", "pyproject.toml", "Cargo.toml"]
MANIFESTS = set(MANIFESTS_IN_ORDER)


def candidate(path: Path, reason: str = "manifest") -> Candidate:
    st = os.stat(path)
    names = os.listdir(path) if path.is_dir() else []
    return Candidate(
        path=str(path),
        root=str(path.parent),
        reason="git" if reason == "git" else "manifest",
        manifests=sorted(name for name in names if name in MANIFESTS),
        device=st.st_dev,
        inode=st.st_ino,
    )


def reflog_of(repo: Path) -> ReflogSummary:
    """What the repo's logs/HEAD says, parsed the way git writes it."""
    log = repo / ".git" / "logs" / "HEAD"
    lines = log.read_text().splitlines() if log.exists() else []
    if not lines:
        return ReflogSummary()
    commits_by, last = [], 0
    for line in lines:
        meta, _, message = line.partition("\t")
        last = int(meta.rsplit(" ", 2)[1])
        if message.startswith("commit"):
            commits_by.append(meta[meta.index("<") + 1 : meta.index(">")])
    return ReflogSummary(
        first_line=lines[0],
        first_is_initial_commit="\tcommit (initial):" in lines[0],
        first_is_clone="\tclone: from" in lines[0],
        commits_by=sorted(set(commits_by)),
        last_time=iso(datetime.fromtimestamp(last, UTC)),
    )


def git_info(
    repo: Path,
    *,
    remotes: Sequence[Remote] = (),
    reflog: ReflogSummary | None = None,
    user_email: str | None = AUTHOR["email"],
    user_name: str | None = AUTHOR["name"],
) -> GitInfo:
    git_dir = repo / ".git"
    head = (git_dir / "HEAD").read_text().strip()
    head_ref = head[len("ref: ") :] if head.startswith("ref: ") else None
    ref_file = git_dir / head_ref if head_ref else None
    return GitInfo(
        kind="worktree",
        git_dir=str(git_dir),
        common_dir=str(git_dir),
        head_ref=head_ref,
        head_sha=ref_file.read_text().strip() if ref_file and ref_file.exists() else None,
        branch=head_ref.rpartition("/")[2] if head_ref else None,
        detached=head_ref is None,
        remotes=list(remotes),
        user_name=user_name,
        user_email=user_email,
        reflog=reflog_of(repo) if reflog is None else reflog,
    )


def facts_of(
    path: Path, git_: GitInfo | None = None, own_handles: Sequence[str] = ()
) -> ProjectFacts:
    return analyze(candidate(path), git_, now=NOW, own_handles=own_handles)


def project(path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    path.mkdir(parents=True, exist_ok=True)
    return path


def set_mtime(path: Path, moment: datetime) -> None:
    os.utime(path, (moment.timestamp(), moment.timestamp()), follow_symlinks=False)


def age_root_entries(path: Path, moment: datetime) -> None:
    for entry in path.iterdir():
        set_mtime(entry, moment)


# --- description -----------------------------------------------------------------------


def test_description_chain_in_order(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "p",
        home=tmp_path,
        files={
            "package.json": json.dumps({"name": "p", "description": "From npm."}),
            "pyproject.toml": '[project]\nname = "p"\ndescription = "From pyproject."\n',
            "Cargo.toml": '[package]\nname = "p"\ndescription = "From cargo."\n',
            "README.md": "# p\n\nFrom the readme.\n",
        },
    )
    (repo / ".git" / "description").write_text("From git.\n")
    expected = ["From npm.", "From pyproject.", "From cargo.", "From the readme.", "From git."]
    for name, description in zip([*MANIFESTS_IN_ORDER, "README.md", None], expected, strict=True):
        facts = facts_of(repo, git_info(repo))
        assert facts.description == description
        assert facts.error is None
        if name:
            (repo / name).unlink()
    (repo / ".git" / "description").write_text(GIT_PLACEHOLDER + "\n")
    assert facts_of(repo, git_info(repo)).description is None


def test_manifests_without_a_usable_description_pass_on(tmp_path: Path) -> None:
    path = project(
        tmp_path / "p",
        {
            "package.json": json.dumps({"description": "   "}),
            "pyproject.toml": '[project]\nname = "p"\ndynamic = ["description"]\n',
            "Cargo.toml": "[package]\ndescription.workspace = true\n",
            "README.rst": "Described\n  in rst.\n",
        },
    )
    facts = facts_of(path)
    assert facts.description == "Described in rst."
    assert facts.error is None


def test_a_broken_manifest_is_reported_and_the_chain_goes_on(tmp_path: Path) -> None:
    path = project(
        tmp_path / "p",
        {
            "package.json": '{"description": "cut',
            "pyproject.toml": "[project\n",
            "README": "Hi there.",
        },
    )
    facts = facts_of(path)
    assert facts.description == "Hi there."
    assert facts.error == "package.json: not valid JSON"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param({"README.md": ""}, None, id="empty"),
        pytest.param({"README.md": "# Title\n\n## Only headings\n"}, None, id="headings-only"),
        pytest.param(
            {"readme.MD": "# x\n\nLower case name.\n"}, "Lower case name.", id="readme.MD"
        ),
        pytest.param({"README.txt": "Plain text.\n"}, "Plain text.", id="txt"),
        pytest.param({"README": "No extension.\n"}, "No extension.", id="bare-name"),
        pytest.param(
            {"README.txt": "From txt.", "README.md": "From md."}, "From md.", id="md-preferred"
        ),
        pytest.param(
            {".github/README.md": "# x\n\nFrom .github.\n"}, "From .github.", id="dot-github"
        ),
        pytest.param(
            {
                "README.rst": "=======\n Title\n=======\n\n"
                ".. image:: https://ci.example/badge.svg\n   :target: https://ci.example\n\n"
                "|build| |docs|\n\nSubtitle\n--------\n\n"
                "A *library* for ``rst`` users, see `the docs <https://x.example>`_.\n"
            },
            "A library for rst users, see the docs.",
            id="rst-overlined-title",
        ),
        pytest.param(
            {
                "README.md": "---\nlayout: page\n---\n"
                '<p align="center"><img src="logo.png"></p>\n\n'
                "# Tool\n\n"
                "[![CI](https://x/ci.svg)](https://x/ci) [![npm](https://x/n.svg)](https://x/n)\n"
                "![screenshot](shot.png)\n\n"
                "<!--\nnot this\n-->\n"
                "```sh\nnpm install tool\n```\n\n"
                "[Docs](https://x/docs) | [Demo](https://x/demo)\n\n"
                "> [!WARNING]\n> Not this either.\n\n"
                "- a list item\n\n"
                "A **fast** tool for _parsing_ [logs](https://x/logs) with `grep`.\n"
                "It keeps going on a second line.\n\nNot the second paragraph.\n"
            },
            "A fast tool for parsing logs with grep. It keeps going on a second line.",
            id="badges-html-code-skipped",
        ),
        pytest.param(
            {"README.md": "Setext Title\n============\n\nBelow the title.\n"},
            "Below the title.",
            id="setext-title",
        ),
    ],
)
def test_readme_variants(tmp_path: Path, files: dict[str, str], expected: str | None) -> None:
    path = project(tmp_path / "p", files)
    assert facts_of(path).description == expected


SCAFFOLDS = [
    "# my-app\n\nThis project was bootstrapped with "
    "[Create React App](https://github.com/facebook/create-react-app).\n\n"
    "## Available Scripts\n\nIn the project directory, you can run:\n",
    "This is a [Next.js](https://nextjs.org) project bootstrapped with "
    "[`create-next-app`](https://nextjs.org/docs/app/api-reference/cli/create-next-app).\n",
    "# Vue 3 + Vite\n\nThis template should help get you started developing with Vue 3 in Vite."
    " The template uses Vue 3 `<script setup>` SFCs.\n",
    "# README\n\nThis README would normally document whatever steps are necessary to get the\n"
    "application up and running.\n",
    "# Foo\n\nWelcome to your new gem! In this directory, you'll find the files you need.\n",
    "# App\n\nThis project was generated with [Angular CLI](https://github.com/angular/angular-cli)"
    " version 17.0.0.\n",
]


@pytest.mark.parametrize("text", SCAFFOLDS, ids=["cra", "next", "vite", "rails", "gem", "ng"])
def test_a_scaffold_readme_says_nothing_and_the_chain_goes_on(tmp_path: Path, text: str) -> None:
    path = project(tmp_path / "p", {"README.md": text})
    assert facts_of(path).description is None
    (path / ".github").mkdir()
    (path / ".github" / "README.md").write_text("The real summary.\n")
    assert facts_of(path).description == "The real summary."


def test_an_empty_readme_falls_through_to_git_description(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", home=tmp_path, files={"README.md": ""})
    description = repo / ".git" / "description"
    # a fresh repo carries git's placeholder (from its templates), which is not a description
    if not description.exists():
        description.write_text(GIT_PLACEHOLDER + "\n")
    assert description.read_text().strip() == GIT_PLACEHOLDER
    assert facts_of(repo, git_info(repo)).description is None
    description.write_text("  Tools for\n  the team.\n")
    assert facts_of(repo, git_info(repo)).description == "Tools for the team."


def test_a_long_description_is_cut_at_a_word_boundary(tmp_path: Path) -> None:
    words = " ".join(f"word{i}" for i in range(80))
    path = project(tmp_path / "p", {"README.md": f"# Long\n\n{words}\n"})
    description = facts_of(path).description
    assert description is not None
    assert len(description) <= 200
    assert description.endswith("…")
    kept = description[:-1]
    assert words.startswith(kept)
    assert words[len(kept)] == " "  # the cut falls between words


def test_a_readme_written_as_one_huge_line_is_cut_early(tmp_path: Path) -> None:
    # brackets that never close: every pattern sees a bounded line, not 60 KB
    path = project(tmp_path / "p", {"README.md": "Start " + "[word " * 10_000})
    description = facts_of(path).description
    assert description is not None and description.startswith("Start [word")
    assert len(description) <= 200 and description.endswith("…")


def test_truncate_keeps_short_text_and_cuts_long_words() -> None:
    assert truncate("short") == "short"
    assert truncate("x" * 300) == "x" * 199 + "…"
    assert truncate("alpha, beta gamma", limit=12) == "alpha, beta…"
    assert truncate("alpha, beta gamma", limit=8) == "alpha…"  # no dangling comma


def test_non_utf8_file_names_do_not_break_anything(tmp_path: Path) -> None:
    path = project(tmp_path / "p", {"README.md": ""})
    base = os.fsencode(path)
    try:
        os.mkdir(base + b"/d\xff")
        for name in (b"caf\xe9.md", b"READM\xc9.md", b"caf\xe9.py", b"d\xff/m\xf6d.py"):
            fd = os.open(base + b"/" + name, os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"print('x')\n")
            os.close(fd)
    except OSError as exc:  # a file system that only takes UTF-8 names
        pytest.skip(f"non-UTF-8 names not supported here: {exc}")
    (path / "README.md").write_bytes(b"# x\n\nBad \xff byte.\n")
    facts = facts_of(path)
    assert facts.error is None
    assert facts.description == "Bad \ufffd byte."
    assert facts.languages == {"Python": 22}
    assert fingerprint(str(path), None) == facts.fingerprint


def test_a_non_utf8_project_name_is_made_printable(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/proj\xff"
    try:
        os.mkdir(raw)
    except OSError as exc:
        pytest.skip(f"non-UTF-8 names not supported here: {exc}")
    facts = facts_of(Path(os.fsdecode(raw)))
    assert facts.name == "proj\ufffd"
    assert msgspec.json.encode(facts.name) == '"proj\ufffd"'.encode()


# --- languages --------------------------------------------------------------------------


def test_languages_bytes_by_extension_largest_first(tmp_path: Path) -> None:
    path = project(
        tmp_path / "p",
        {
            "main.py": "x" * 100,
            "types.pyi": "x" * 10,
            "src/app.ts": "x" * 50,
            "src/view.TSX": "x" * 5,
            "web/site.css": "x" * 30,
            "web/vendor.min.js": "x" * 500,  # a bundle, not source
            "notes.xyz": "x" * 999,  # unknown extension
            "README.md": "x" * 999,
        },
    )
    languages = facts_of(path).languages
    assert languages == {"Python": 110, "TypeScript": 55, "CSS": 30}
    assert list(languages) == ["Python", "TypeScript", "CSS"]


def test_walk_prunes_dependencies_venvs_and_dot_folders(tmp_path: Path) -> None:
    path = project(
        tmp_path / "p",
        {
            "app.js": "x" * 10,
            "node_modules/lib/index.js": "x" * 1000,
            "my-env/pyvenv.cfg": "home = /usr/bin\n",  # a venv with a custom name
            "my-env/lib/python3.11/site-packages/mod.py": "x" * 1000,
            "venv/lib/mod.py": "x" * 1000,
            ".venv/lib/mod.py": "x" * 1000,
            ".cache/x.py": "x" * 1000,
            "dist/app.js": "x" * 1000,
            "target/debug/build.rs": "x" * 1000,
        },
    )
    assert facts_of(path).languages == {"JavaScript": 10}


def test_walk_stops_below_depth_three(tmp_path: Path) -> None:
    path = project(tmp_path / "p", {"a/b/c/ok.go": "x" * 7, "a/b/c/d/deep.go": "x" * 1000})
    assert facts_of(path).languages == {"Go": 7}


def test_walk_visits_a_bounded_number_of_entries(tmp_path: Path) -> None:
    path = tmp_path / "p"
    path.mkdir()
    for i in range(WALK_MAX_ENTRIES + 500):
        (path / f"m{i}.py").write_text("x")
    assert 0 < facts_of(path).languages["Python"] <= WALK_MAX_ENTRIES


def test_walk_skips_huge_files_and_symlinked_folders(tmp_path: Path) -> None:
    outside = project(tmp_path / "outside", {"lots.py": "x" * 1000})
    path = project(tmp_path / "p", {"small.py": "x" * 3})
    with open(path / "huge.py", "wb") as handle:
        handle.truncate(SOURCE_MAX_BYTES + 1)  # sparse: costs no disk
    (path / "linked").symlink_to(outside, target_is_directory=True)
    (path / "loop").symlink_to(path, target_is_directory=True)
    assert facts_of(path).languages == {"Python": 3}


def test_a_bare_repository_has_no_languages_or_readme(tmp_path: Path) -> None:
    bare = tmp_path / "b.git"
    bare.mkdir()
    git(bare, "init", "-q", "--bare", home=tmp_path)
    (bare / "description").write_text("Shared remote.\n")
    info = GitInfo(kind="bare", git_dir=str(bare), common_dir=str(bare), head_ref="refs/heads/main")
    facts = facts_of(bare, info)
    assert (facts.languages, facts.description, facts.vcs) == ({}, "Shared remote.", "git")


# --- last_worked_on and status ----------------------------------------------------------


def test_last_worked_on_from_each_source_in_order(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", home=tmp_path)
    ref, packed = repo / ".git" / "refs" / "heads" / "main", repo / ".git" / "packed-refs"
    reflog = reflog_of(repo)
    assert reflog.last_time is not None
    assert facts_of(repo, git_info(repo)).last_worked_on == reflog.last_time

    no_reflog = git_info(repo, reflog=ReflogSummary())
    set_mtime(ref, NOW - timedelta(days=3))
    assert facts_of(repo, no_reflog).last_worked_on == iso(NOW - timedelta(days=3))

    git(repo, "pack-refs", "--all", home=tmp_path)  # the branch now lives only in packed-refs
    assert not ref.exists()
    set_mtime(packed, NOW - timedelta(days=4))
    assert facts_of(repo, no_reflog).last_worked_on == iso(NOW - timedelta(days=4))

    packed.unlink()  # (breaks the repo: fine, only the fallback is under test)
    age_root_entries(repo, NOW - timedelta(days=9))
    set_mtime(repo / "README.md", NOW - timedelta(days=5))
    assert facts_of(repo, no_reflog).last_worked_on == iso(NOW - timedelta(days=5))


def test_last_worked_on_of_a_fresh_init_and_of_a_plain_folder(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    git(fresh, "init", "-q", home=tmp_path)
    (fresh / "main.py").write_text("x")
    age_root_entries(fresh, NOW - timedelta(days=2))
    facts = facts_of(fresh, git_info(fresh))
    assert facts.git is not None and facts.git.head_sha is None
    assert facts.last_worked_on == iso(NOW - timedelta(days=2))
    assert ISO.fullmatch(facts.last_worked_on)

    empty = tmp_path / "empty"
    empty.mkdir()
    assert facts_of(empty).last_worked_on is None
    assert facts_of(empty).status == "on-hold"  # nothing known: neither active nor archived


@pytest.mark.parametrize(("days", "status"), [(10, "active"), (100, "on-hold"), (400, "archived")])
def test_status_by_age(tmp_path: Path, days: int, status: str) -> None:
    path = project(tmp_path / "p", {"main.py": "x", "src/lib.py": "x"})
    age_root_entries(path, NOW - timedelta(days=days))
    facts = facts_of(path)
    assert facts.last_worked_on == iso(NOW - timedelta(days=days))
    assert (facts.status, facts.archived_marker) == (status, False)


@pytest.mark.parametrize("marker", ["ARCHIVED", ".archived"])
def test_an_archive_marker_wins_over_recent_work(tmp_path: Path, marker: str) -> None:
    path = project(tmp_path / "p", {"main.py": "x"})
    if marker.startswith("."):
        (path / marker).mkdir()
    else:
        (path / marker).write_text("")
    age_root_entries(path, NOW - timedelta(days=1))
    facts = facts_of(path)
    assert (facts.status, facts.archived_marker) == ("archived", True)


# --- origin_type and ownership ----------------------------------------------------------

INITIAL = ReflogSummary(
    first_line="0 1 A <a@x> 1 +0000\tcommit (initial): x", first_is_initial_commit=True
)
CLONE = ReflogSummary(first_line="0 1 A <a@x> 1 +0000\tclone: from x", first_is_clone=True)
MINE = "octo@example.com"


def remote(name: str, owner: str) -> Remote:
    return Remote(name=name, url=f"https://github.com/{owner}/tool", owner=owner, host="github.com")


def with_remotes(
    path: Path,
    spec: str,
    *,
    reflog: ReflogSummary = CLONE,
    user_email: str | None = MINE,
    user_name: str | None = AUTHOR["name"],
) -> GitInfo:
    """GitInfo for `path` with remotes written "name:owner name:owner"."""
    dot_git = str(path / ".git")
    return GitInfo(
        kind="worktree",
        git_dir=dot_git,
        common_dir=dot_git,
        remotes=[remote(*item.split(":")) for item in spec.split()],
        user_name=user_name,
        user_email=user_email,
        reflog=reflog,
    )


# remotes, first reflog entry, own_handles from config, user.email → origin_type ownership
@pytest.mark.parametrize(
    ("remotes", "first", "handles", "email", "expected"),
    [
        pytest.param("origin:bigcorp", INITIAL, "", MINE, "created mine", id="initial-commit"),
        pytest.param("", CLONE, "", MINE, "created mine", id="no-remote"),
        pytest.param("origin:Octo", CLONE, "", MINE, "created mine", id="own-origin"),
        pytest.param("origin:octo backup:OCTO", CLONE, "", MINE, "created mine", id="own-twice"),
        pytest.param("upstream:big origin:octo", CLONE, "", MINE, "forked exploring", id="fork"),
        pytest.param("origin:bigcorp", CLONE, "", MINE, "cloned exploring", id="their-clone"),
        pytest.param("origin:corp", CLONE, "me", "me@x.example", "cloned exploring", id="theirs"),
        pytest.param("origin:Me-2", CLONE, "me-2", "me@x.example", "created mine", id="handle"),
        pytest.param(
            "origin:octo", CLONE, "", "12+octo@users.noreply.github.com", "created mine", id="gh"
        ),
        # user.name counts as a handle as it is: "Test Person" is not guessed to be test-person
        pytest.param("origin:test-person", CLONE, "", "x@y.z", "cloned exploring", id="name"),
    ],
)
def test_origin_and_ownership(
    tmp_path: Path, remotes: str, first: ReflogSummary, handles: str, email: str, expected: str
) -> None:
    path = project(tmp_path / "p", {"main.py": "x"})
    info = with_remotes(path, remotes, user_email=email, reflog=first)
    facts = facts_of(path, info, own_handles=handles.split())
    assert f"{facts.origin_type} {facts.ownership}" == expected


def test_user_name_is_a_handle(tmp_path: Path) -> None:
    path = project(tmp_path / "p", {"main.py": "x"})
    info = with_remotes(path, "origin:OctoCat", user_name="octocat", user_email=None)
    assert facts_of(path, info).origin_type == "created"


@pytest.mark.parametrize(
    ("remotes", "kind"), [("origin:octo up:big", "forked"), ("origin:big", "cloned")]
)
def test_own_commits_make_a_customized_fork(tmp_path: Path, remotes: str, kind: str) -> None:
    path = project(tmp_path / "p", {"main.py": "x"})
    reflog = ReflogSummary(first_line=CLONE.first_line, commits_by=["a@x", "Octo@Example.com"])
    facts = facts_of(path, with_remotes(path, remotes, reflog=reflog))
    assert (facts.origin_type, facts.ownership) == (kind, "customized-fork")
    others = ReflogSummary(first_line=CLONE.first_line, commits_by=["a@x"])
    assert facts_of(path, with_remotes(path, remotes, reflog=others)).ownership == "exploring"


def test_origin_of_real_repos_created_cloned_and_customized(tmp_path: Path) -> None:
    original = make_repo(tmp_path / "lib", home=tmp_path)
    facts = facts_of(original, git_info(original))
    assert (facts.vcs, facts.origin_type, facts.ownership) == ("git", "created", "mine")

    git(tmp_path, "clone", "-q", str(original), "copy", home=tmp_path)
    copy = tmp_path / "copy"
    theirs = [Remote(name="origin", url="https://github.com/someone/lib", owner="someone")]
    someone_elses = git_info(copy, remotes=theirs, user_email="me@example.org")
    assert someone_elses.reflog.first_is_clone
    facts = facts_of(copy, someone_elses)
    assert (facts.origin_type, facts.ownership) == ("cloned", "exploring")
    assert facts.repository_url == "https://github.com/someone/lib"

    (copy / "patch.py").write_text("x = 1\n")
    git(copy, "add", "-A", home=tmp_path)
    git(copy, "commit", "-q", "-m", "my patch", home=tmp_path)
    mine_now = git_info(copy, remotes=theirs)  # the commit was made as AUTHOR
    assert AUTHOR["email"] in mine_now.reflog.commits_by
    facts = facts_of(copy, mine_now)
    assert (facts.origin_type, facts.ownership) == ("cloned", "customized-fork")


def test_repository_url_is_origin_else_the_first_remote(tmp_path: Path) -> None:
    path = project(tmp_path / "p", {"main.py": "x"})
    both = facts_of(path, with_remotes(path, "upstream:a origin:b"))
    assert both.repository_url == "https://github.com/b/tool"
    assert facts_of(path, with_remotes(path, "upstream:a")).repository_url == (
        "https://github.com/a/tool"
    )
    no_git = facts_of(path)
    assert (no_git.vcs, no_git.repository_url, no_git.origin_type) == ("none", None, "created")


# --- identity -----------------------------------------------------------------------------


def test_identity_survives_a_rename(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "old-name", home=tmp_path)
    before = facts_of(repo, git_info(repo))
    moved = tmp_path / "elsewhere" / "new-name"
    moved.parent.mkdir()
    os.rename(repo, moved)
    after = facts_of(moved, git_info(moved))
    assert before.identity == after.identity
    assert before.identity.startswith("reflog:")
    assert (after.name, after.path) == ("new-name", str(moved))


def test_identity_falls_back_to_the_inode(tmp_path: Path) -> None:
    path = project(tmp_path / "plain", {"main.py": "x"})
    before = facts_of(path)
    st = os.stat(path)
    assert before.identity == f"inode:{st.st_dev}:{st.st_ino}"
    os.rename(path, tmp_path / "renamed")
    assert facts_of(tmp_path / "renamed").identity == before.identity

    fresh = tmp_path / "fresh"  # git, but no reflog yet
    fresh.mkdir()
    git(fresh, "init", "-q", home=tmp_path)
    assert facts_of(fresh, git_info(fresh)).identity.startswith("inode:")


# --- fingerprint ----------------------------------------------------------------------------


def test_fingerprint_follows_what_the_facts_depend_on(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", home=tmp_path, files={"README.md": "# p\n", "src/a.py": "x"})
    info = git_info(repo)
    first = fingerprint(str(repo), info)
    assert re.fullmatch(r"[0-9a-f]{20}", first)
    assert facts_of(repo, info).fingerprint == first  # analyze reads, it changes nothing
    assert fingerprint(str(repo), info) == first

    (repo / "src" / "b.py").write_text("y")  # deep in the tree: not looked at
    (repo / "src" / "a.py").write_text("z")
    assert fingerprint(str(repo), info) == first

    git(repo, "add", "-A", home=tmp_path)
    git(repo, "commit", "-q", "-m", "more", home=tmp_path)
    committed = fingerprint(str(repo), git_info(repo))
    assert committed != first

    (repo / "README.md").write_text("# p\n\nNow with a description.\n")
    edited = fingerprint(str(repo), git_info(repo))
    assert edited != committed

    git(repo, "checkout", "-q", "-b", "feature", home=tmp_path)
    moved = fingerprint(str(repo), git_info(repo))
    assert moved != edited

    git(repo, "remote", "add", "origin", "https://example.com/o/p.git", home=tmp_path)
    assert fingerprint(str(repo), git_info(repo)) != moved


def test_fingerprint_of_a_plain_folder_and_of_a_missing_one(tmp_path: Path) -> None:
    path = project(tmp_path / "p", {"main.py": "x", "pkg/mod.py": "x"})
    age_root_entries(path, NOW - timedelta(days=50))
    first = fingerprint(str(path), None)
    assert fingerprint(str(path), None) == first
    set_mtime(path / "main.py", NOW - timedelta(days=1))  # edited in place: newer work
    assert fingerprint(str(path), None) != first
    shutil.rmtree(path)
    assert fingerprint(str(path), None)  # missing files count as missing, no error


# --- errors -------------------------------------------------------------------------------


def test_a_project_deleted_before_analysis_yields_an_error_not_an_exception(tmp_path: Path) -> None:
    path = project(tmp_path / "p", {"main.py": "x"})
    gone = candidate(path)
    shutil.rmtree(path)
    facts = analyze(gone, None, now=NOW)
    assert facts.error is not None and facts.error.startswith("root: ")
    assert (facts.languages, facts.description, facts.name) == ({}, None, "p")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads everything")
def test_an_unreadable_readme_is_reported(tmp_path: Path) -> None:
    path = project(tmp_path / "p", {"README.md": "Secret.", "main.py": "x"})
    (path / "README.md").chmod(0)
    try:
        facts = facts_of(path)
    finally:
        (path / "README.md").chmod(0o644)
    assert facts.error == "README.md: Permission denied"
    assert facts.languages == {"Python": 1}


def test_a_readme_that_cannot_be_read_is_reported(tmp_path: Path) -> None:
    path = project(tmp_path / "p", {".github/README.md/oops.txt": "", "main.py": "x"})
    facts = facts_of(path)
    assert facts.error == "README.md: not a regular file (a folder)"
    assert (facts.description, facts.languages) == (None, {"Python": 1})


def test_facts_encode_to_json(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "p", home=tmp_path, files={"package.json": '{"description": "d"}'})
    facts = facts_of(repo, git_info(repo, remotes=[remote("origin", "octo")]))
    decoded = msgspec.json.decode(msgspec.json.encode(facts), type=ProjectFacts)
    assert decoded == facts
