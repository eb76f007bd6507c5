"""gitmeta: real repositories made with the git command, then read back from their files."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from daemon.domain.projects import gitconfig, gitmeta
from daemon.domain.projects.gitconfig import parse_config
from daemon.domain.projects.gitmeta import is_submodule, locate, read_git
from daemon.domain.projects.model import ReflogSummary, Remote
from daemon.domain.projects.remotes import normalise_remote
from daemon.store.clock import iso
from tests.gitrepos import AUTHOR, git, make_repo

ZERO = "0" * 40


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The user's home for both git and read_git: the real one is never read."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def env_of(home: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), "PATH": os.environ.get("PATH", os.defpath), **extra}


def commit(repo: Path, home: Path, message: str, *, when: int, email: str | None = None) -> str:
    """An empty commit at a fixed time (so the reflog's time is known); returns its sha."""
    extra = {"GIT_COMMITTER_DATE": f"{when} +0100", "GIT_AUTHOR_DATE": f"{when} +0100"}
    if email:
        extra |= {"GIT_COMMITTER_EMAIL": email, "GIT_AUTHOR_EMAIL": email}
    git(repo, "commit", "-q", "--allow-empty", "-m", message, home=home, env=extra)
    return head_of(repo, home)


def head_of(repo: Path, home: Path) -> str:
    return git(repo, "rev-parse", "HEAD", home=home).strip()


def real(path: Path) -> str:
    return os.path.realpath(path)


# --- locating ---------------------------------------------------------------------------------


def test_plain_repo_with_commits(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path / "proj", home=home, commits=2)
    newest = commit(repo, home, "third", when=1_700_000_000)
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert (info.kind, info.git_dir, info.common_dir) == ("worktree", *[str(repo / ".git")] * 2)
    assert (info.head_ref, info.branch, info.head_sha) == ("refs/heads/main", "main", newest)
    assert not info.detached
    assert info.remotes == []  # no remote at all
    assert info.default_branch is None
    assert info.reflog.first_is_initial_commit and not info.reflog.first_is_clone
    assert info.reflog.first_line is not None
    assert info.reflog.first_line.startswith(f"{ZERO} ")
    assert info.reflog.first_line.endswith("\tcommit (initial): commit 0")
    assert info.reflog.commits_by == [AUTHOR["email"]]
    newest_time = int(git(repo, "log", "-1", "--format=%ct", home=home))
    assert info.reflog.last_time == iso(datetime.fromtimestamp(newest_time, UTC))
    assert info.reflog.last_time == "2023-11-14T22:13:20.000000Z"
    assert (info.used_git_binary, info.error) == (False, None)


def test_fresh_init_is_an_unborn_branch(tmp_path: Path, home: Path) -> None:
    repo = tmp_path / "new"
    repo.mkdir()
    git(repo, "init", "-q", home=home)
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert (info.head_ref, info.branch, info.head_sha) == ("refs/heads/main", "main", None)
    assert not info.detached
    assert info.reflog == ReflogSummary()
    assert info.error is None


def test_detached_head(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path / "proj", home=home, commits=2)
    sha = head_of(repo, home)
    git(repo, "checkout", "-q", "--detach", home=home)
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert (info.head_ref, info.branch, info.head_sha, info.detached) == (None, None, sha, True)
    assert info.error is None


def test_refs_only_in_packed_refs(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path / "proj", home=home)
    git(repo, "tag", "-a", "v1", "-m", "annotated, so packed-refs has a ^peeled line", home=home)
    git(repo, "checkout", "-q", "-b", "zeta", home=home)
    sha = commit(repo, home, "on zeta", when=1_700_000_000)
    git(repo, "pack-refs", "--all", home=home)
    assert not (repo / ".git/refs/heads/zeta").exists()
    assert "^" in (repo / ".git/packed-refs").read_text()
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert (info.branch, info.head_sha, info.error) == ("zeta", sha, None)


def test_bare_repositories(tmp_path: Path, home: Path) -> None:
    empty = tmp_path / "empty.git"
    git(tmp_path, "init", "-q", "--bare", str(empty), home=home)
    assert locate(str(empty)) == ("bare", str(empty), str(empty))
    info = read_git(str(empty), env=env_of(home))
    assert info is not None
    assert (info.kind, info.head_ref, info.head_sha, info.error) == (
        "bare",
        "refs/heads/main",
        None,
        None,
    )

    src = make_repo(tmp_path / "src", home=home, commits=2)
    clone = tmp_path / "clone.git"
    git(tmp_path, "clone", "-q", "--bare", str(src), str(clone), home=home)
    info = read_git(str(clone), env=env_of(home))
    assert info is not None
    assert info.kind == "bare"
    assert info.head_sha == head_of(src, home)
    assert info.remotes == [Remote(name="origin", url=str(src))]  # a local path stays as given
    assert info.reflog == ReflogSummary()  # bare repositories keep no HEAD reflog
    assert info.error is None


def test_a_checkouts_own_git_folder_is_not_a_bare_repo(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path / "proj", home=home)
    assert locate(str(repo / ".git")) is None


def test_linked_worktree(tmp_path: Path, home: Path) -> None:
    main = make_repo(tmp_path / "main", home=home, remotes={"origin": "git@github.com:me/main"})
    wt = tmp_path / "wt"
    git(main, "worktree", "add", "-q", "-b", "feature", str(wt), home=home)
    found = locate(str(wt))
    assert found is not None
    kind, git_dir, common_dir = found
    assert kind == "linked-worktree"
    assert real(Path(git_dir)) == real(main / ".git/worktrees/wt")
    assert real(Path(common_dir)) == real(main / ".git")
    assert not is_submodule(str(wt))

    sha = commit(wt, home, "in the worktree", when=1_700_000_000)
    info = read_git(str(wt), env=env_of(home))
    assert info is not None
    assert (info.kind, info.git_dir, info.common_dir) == (kind, git_dir, common_dir)
    assert (info.head_ref, info.head_sha) == ("refs/heads/feature", sha)
    assert [r.url for r in info.remotes] == ["https://github.com/me/main"]  # the common config
    assert info.reflog.last_time == "2023-11-14T22:13:20.000000Z"  # the worktree's own reflog
    assert info.error is None

    main_info = read_git(str(main), env=env_of(home))
    assert main_info is not None
    assert (main_info.branch, main_info.head_sha) == ("main", head_of(main, home))


def test_a_worktree_whose_repository_moved_is_read_again_after_git_worktree_repair(
    tmp_path: Path, home: Path
) -> None:
    """Its `.git` then names a folder that is not (or no longer) its repository's worktree:
    refused, as git refuses it, and said; `git worktree repair` makes it readable again."""
    main = make_repo(tmp_path / "main", home=home)
    wt = tmp_path / "wt"
    git(main, "worktree", "add", "-q", "-b", "feature", str(wt), home=home)
    moved = main.rename(tmp_path / "moved")
    assert locate(str(wt)) is None
    assert gitmeta.refusal(str(wt)) == (
        "a worktree its repository does not list at this folder (git worktree repair)"
    )
    git(moved, "worktree", "repair", str(wt), home=home)
    found = locate(str(wt))
    assert found is not None and found[0] == "linked-worktree"
    assert real(Path(found[2])) == real(moved / ".git")
    assert gitmeta.refusal(str(wt)) is None


def test_submodule_is_part_of_its_superproject(tmp_path: Path, home: Path) -> None:
    lib = make_repo(tmp_path / "lib", home=home)
    sup = make_repo(tmp_path / "sup", home=home)
    git(sup, "submodule", "add", "-q", str(lib), "libs/lib", home=home)
    checkout = sup / "libs/lib"
    assert (checkout / ".git").is_file()
    assert is_submodule(str(checkout))
    assert not is_submodule(str(sup))
    assert not is_submodule(str(lib))
    found = locate(str(checkout))
    assert found is not None
    assert found[0] == "worktree"
    assert real(Path(found[1])) == real(sup / ".git/modules/libs/lib")  # a relative gitdir:
    info = read_git(str(checkout), env=env_of(home))
    assert info is not None
    assert (info.head_sha, info.error) == (head_of(lib, home), None)


def test_not_git(tmp_path: Path, home: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "package.json").write_text("{}")
    assert locate(str(plain)) is None
    assert read_git(str(plain), env=env_of(home)) is None
    assert read_git(str(tmp_path / "vanished"), env=env_of(home)) is None
    (plain / ".git").write_text("not a gitdir line\n")
    assert locate(str(plain)) is None
    assert not is_submodule(str(plain))


# --- remotes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected", "owner", "host"),
    [
        ("git@github.com:Owner/Repo.git", "https://github.com/Owner/Repo", "Owner", "github.com"),
        ("github.com:owner/repo", "https://github.com/owner/repo", "owner", "github.com"),
        (
            "ssh://git@host.example:2222/owner/repo.git",
            "https://host.example/owner/repo",
            "owner",
            None,
        ),
        ("git+ssh://git@host.example/owner/repo", "https://host.example/owner/repo", "owner", None),
        ("https://host.example/owner/repo.git/", "https://host.example/owner/repo", "owner", None),
        ("https://HOST.example/owner/repo", "https://host.example/owner/repo", "owner", None),
        ("https://host.example:8443/o/r.git", "https://host.example:8443/o/r", "o", None),
        ("https://host.example:443/o/r.git", "https://host.example/o/r", "o", None),
        ("http://host.example/owner/repo.git", "https://host.example/owner/repo", "owner", None),
        ("git://host.example/owner/repo.git", "https://host.example/owner/repo", "owner", None),
        (
            "https://host.example/group/sub/repo",
            "https://host.example/group/sub/repo",
            "group",
            None,
        ),
        ("git@host.example:repo.git", "https://host.example/repo", None, None),
        ("/srv/git/repo.git", "/srv/git/repo.git", None, None),
        ("../sibling", "../sibling", None, None),
        ("./x:y", "./x:y", None, None),
        ("file:///srv/git/repo.git", "file:///srv/git/repo.git", None, None),
    ],
)
def test_normalise_remote(url: str, expected: str, owner: str | None, host: str | None) -> None:
    remote = normalise_remote(url)
    assert (remote.url, remote.owner) == (expected, owner)
    if host is not None:
        assert remote.host == host
    assert remote.name == ""


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:ghp_SECRET@github.com/alice/proj.git",
        "https://ghp_SECRET@github.com/alice/proj",
        "https://alice:ghp_SECRET@github.com/alice/proj?token=ghp_SECRET#ghp_SECRET",
        "http://x:ghp_SECRET@github.com/alice/proj",
        "alice:ghp_SECRET@github.com:alice/proj.git",
        "ssh://alice:ghp_SECRET@github.com:22/alice/proj",
        "codecommit::https://alice:ghp_SECRET@git.example/alice/proj",
        "s3://alice:ghp_SECRET@bucket/alice/proj",
        # the rarer forms (issue 12)
        "gcrypt::alice:ghp_SECRET@host.example:alice/proj",
        "gcrypt::rsync://alice:ghp_SECRET@host.example/alice/proj",
        "file://alice:ghp_SECRET@host.example/srv/proj",
        "FILE://alice:ghp_SECRET@host.example/srv/proj",
        "https://github.com/alice/proj\nhttps://alice:ghp_SECRET@github.com/alice/proj",
        "https://github.com/alice/proj\rhttps://alice:ghp_SECRET@github.com/alice/proj",
        "https://github.com/alice/proj\x00alice:ghp_SECRET@x",
        "https:\\\\alice:ghp_SECRET@github.com\\alice\\proj",
        "ext::ssh -i key alice:ghp_SECRET@host.example %S 'alice/proj'",
        "persistent-https://alice:ghp_SECRET@host.example/alice/proj",
        "HTTPS://alice:ghp_SECRET@GitHub.com/alice/proj",
        "Gcrypt::alice:ghp_SECRET@host.example:alice/proj",
        "https://alice:ghp_SECRET%40github.com/alice/proj",  # no real "@": host "alice"
        "https://alice%3Aghp_SECRET%40github.com/alice/proj",
        "https://alice%3aghp_SECRET%40github.com/alice/proj",
        "https://a:b@alice:ghp_SECRET@github.com/alice/proj",  # several "@"
        "alice:ghp_SECRET@x@github.com:alice/proj.git",
        "https://github.com/alice/alice:ghp_SECRET@proj",  # in the path
        "https://github.com:ghp_SECRET/alice/proj",  # a "port" that is a token
        "ssh://alice:ghp_SECRET@[::1]:22/alice/proj",
        "/srv/alice:ghp_SECRET@git/proj",
        "alice:ghp_SECRET@host.example:alice/proj\n",
    ],
)
def test_credentials_never_survive(url: str) -> None:
    remote = normalise_remote(url)
    assert "SECRET" not in msgspec.json.encode(remote).decode()
    assert "alice:" not in remote.url
    assert "\n" not in remote.url and "\x00" not in remote.url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("gcrypt::user:pass@host.example:repo", "gcrypt::host.example:repo"),
        ("file://u:pass@host/x", "file://host/x"),
        ("https://github.com/o/r\nhttps://u:t@evil.example/y", "https://github.com/o/r"),
        ("https:\\\\user:token@github.com\\o\\r", "https://github.com/o/r"),
        ("ext::ssh -i key user:pass@host %S 'o/r'", "ext::ssh -i key host %S 'o/r'"),
        ("persistent-https://user:tok@host.example/o/r", "persistent-https://host.example/o/r"),
        ("HTTPS://user:tok@GitHub.com/o/r", "https://github.com/o/r"),
        ("https://user:tok%40github.com/o/r", "https://github.com/o/r"),
        ("C:\\repos\\proj", "C:/repos/proj"),
    ],
)
def test_rarer_remote_forms_keep_what_says_where(url: str, expected: str) -> None:
    """The credentials go, and what says where the repository is stays."""
    assert normalise_remote(url).url == expected


def test_a_quoted_url_with_a_newline_in_a_real_config(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path / "proj", home=home)
    config = repo / ".git/config"
    config.write_text(
        config.read_text()
        + '[remote "origin"]\n\turl = "https://github.com/o/r\\nhttps://u:ghp_NL@evil/x"\n'
        + '[remote "crypt"]\n\turl = gcrypt::u:ghp_GCRYPT@host.example:o/r\n'
    )
    info = read_git(str(repo), env=env_of(home))
    assert info is not None and info.error is None
    assert [(r.name, r.url) for r in info.remotes] == [
        ("origin", "https://github.com/o/r"),
        ("crypt", "gcrypt::host.example:o/r"),
    ]
    assert "ghp_" not in msgspec.json.encode(info).decode()


def test_insteadof_longest_prefix_wins() -> None:
    rules = {"gh:": "https://github.com/", "gh:work/": "git@github.example:corp/"}
    assert normalise_remote("gh:me/tool", rules).url == "https://github.com/me/tool"
    assert normalise_remote("gh:work/app", rules).url == "https://github.example/corp/app"
    assert normalise_remote("other:me/tool", rules).url == "https://other/me/tool"


def test_remotes_of_a_repository(tmp_path: Path, home: Path) -> None:
    (home / ".gitconfig").write_text('[url "https://github.com/"]\n\tinsteadOf = gh:\n')
    remotes = {
        "origin": "https://alice:ghp_TOKEN123@github.com/alice/proj.git",
        "upstream": "git@github.com:upstream-org/proj.git",
        "mirror": "ssh://git@gitlab.example:2222/alice/proj.git",
        "short": "gh:bob/thing",
        "plain": "http://example.org/alice/proj.git/",
        "old": "git://example.org/alice/proj",
        "disk": "/srv/git/proj.git",
        "fileurl": "file:///srv/git/proj.git",
    }
    repo = make_repo(tmp_path / "proj", home=home, remotes=remotes)
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert info.remotes == [
        Remote(
            name="origin", url="https://github.com/alice/proj", owner="alice", host="github.com"
        ),
        Remote(
            name="upstream",
            url="https://github.com/upstream-org/proj",
            owner="upstream-org",
            host="github.com",
        ),
        Remote(
            name="mirror",
            url="https://gitlab.example/alice/proj",
            owner="alice",
            host="gitlab.example",
        ),
        Remote(name="short", url="https://github.com/bob/thing", owner="bob", host="github.com"),
        Remote(
            name="plain", url="https://example.org/alice/proj", owner="alice", host="example.org"
        ),
        Remote(name="old", url="https://example.org/alice/proj", owner="alice", host="example.org"),
        Remote(name="disk", url="/srv/git/proj.git"),
        Remote(name="fileurl", url="file:///srv/git/proj.git"),
    ]
    encoded = msgspec.json.encode(info).decode()
    assert "TOKEN123" not in encoded
    assert "alice:" not in encoded
    assert info.error is None


# --- reflog -----------------------------------------------------------------------------------


def test_expired_or_missing_reflog_is_empty_not_an_error(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path / "proj", home=home, commits=2)
    git(repo, "reflog", "expire", "--expire=now", "--all", home=home)
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert (info.reflog, info.error) == (ReflogSummary(), None)
    assert info.head_sha == head_of(repo, home)  # the rest is unaffected

    (repo / ".git/logs/HEAD").unlink(missing_ok=True)
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert (info.reflog, info.error) == (ReflogSummary(), None)


def test_clone_with_default_branch_and_commits_by(tmp_path: Path, home: Path) -> None:
    src = make_repo(tmp_path / "src", home=home, commits=2)
    git(tmp_path, "clone", "-q", str(src), "dst", home=home)
    dst = tmp_path / "dst"
    info = read_git(str(dst), env=env_of(home))
    assert info is not None
    assert info.default_branch == "main"
    assert info.reflog.first_is_clone and not info.reflog.first_is_initial_commit
    assert info.reflog.first_line is not None
    assert f"\tclone: from {src}" in info.reflog.first_line
    assert info.reflog.commits_by == []  # cloning is not committing
    assert info.remotes == [Remote(name="origin", url=str(src))]

    commit(dst, home, "mine", when=1_700_000_000, email="me@example.com")
    commit(dst, home, "someone", when=1_700_000_100, email="other@example.com")
    git(dst, "commit", "-q", "--amend", "--allow-empty", "-m", "amended", home=home)
    git(dst, "checkout", "-q", "-b", "topic", home=home)  # a reflog entry that is no commit
    git(dst, "checkout", "-q", "main", home=home)
    info = read_git(str(dst), env=env_of(home))
    assert info is not None
    assert info.reflog.commits_by == ["me@example.com", "other@example.com", AUTHOR["email"]]
    assert info.reflog.first_is_clone


def reflog_line(email: str, when: int, message: str) -> str:
    return f"{ZERO} {'a' * 40} Some One <{email}> {when} +0000\t{message}\n"


def test_a_huge_reflog_is_read_only_at_its_ends(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path / "proj", home=home)
    filler = reflog_line("mover@example.com", 1_600_000_000, "checkout: moving from a to b")
    lines = [reflog_line("first@example.com", 1_500_000_000, "commit (initial): start")]
    lines += [filler] * 7000  # ~1 MB, more than the 512 KiB read from the start
    lines += [reflog_line("middle@example.com", 1_600_000_000, "commit: unseen")] * 10
    lines += [filler] * 7000
    lines.append(reflog_line("last@example.com", 1_700_000_000, "commit (merge): end"))
    (repo / ".git/logs/HEAD").write_text("".join(lines))
    assert (repo / ".git/logs/HEAD").stat().st_size > 2 * 1024 * 1024
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert info.reflog.first_is_initial_commit
    assert info.reflog.commits_by == ["first@example.com", "last@example.com"]
    assert info.reflog.last_time == "2023-11-14T22:13:20.000000Z"


def test_a_line_still_being_written_is_ignored(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path / "proj", home=home)
    log = repo / ".git/logs/HEAD"
    log.write_text(
        reflog_line("a@example.com", 1_700_000_000, "commit (initial): x")
        + f"{ZERO} {'b' * 40} Half Writ"
    )
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert info.reflog.last_time == "2023-11-14T22:13:20.000000Z"


def test_reflog_odd_bytes_and_mangled_times(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path / "proj", home=home)
    (repo / ".git/logs/HEAD").write_bytes(
        reflog_line("a@example.com", 1_700_000_000, "commit (initial): x")
        .replace("Some One", "S\udcffme One")
        .encode("utf-8", "surrogateescape")
        + reflog_line("b@example.com", 10**30, "commit: far future").encode()
    )
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert info.reflog.first_line is not None
    assert "S\ufffdme One" in info.reflog.first_line
    assert info.reflog.commits_by == ["a@example.com", "b@example.com"]
    assert (info.reflog.last_time, info.error) == (None, None)
    msgspec.json.encode(info)  # storable as it is


# --- config -----------------------------------------------------------------------------------


def test_parse_config_follows_gits_format() -> None:
    text = (
        "\ufeff# a comment\n"
        "; another\n"
        "[Core]\n"
        "\tBare = false ; trailing comment\n"
        '[remote "Origin"]\n'
        '\turl = "https://host/o/r.git"   # quoted, then a comment\n'
        "\tfetch = +refs/heads/*:refs/remotes/Origin/*\n"
        "[user]\n"
        '\tname = "Ann \\"A\\" Lee"  \n'
        "\temail = ann@\\\n"
        "example.com\n"
        '\tnote = a "#not; a comment"  b\\tc  \n'
        "[Url.Base]\n"
        "\tinsteadOf = x\n"
        "\tINSTEADOF = y\n"
        '[section "with \\" quote"] flag\r\n'
    )
    entries, error = parse_config(text)
    assert error is None
    assert entries == [
        ("core", None, "bare", "false"),
        ("remote", "Origin", "url", "https://host/o/r.git"),
        ("remote", "Origin", "fetch", "+refs/heads/*:refs/remotes/Origin/*"),
        ("user", None, "name", 'Ann "A" Lee'),
        ("user", None, "email", "ann@example.com"),
        ("user", None, "note", "a #not; a comment  b\tc"),
        ("url", "base", "insteadof", "x"),
        ("url", "base", "insteadof", "y"),
        ("section", 'with " quote', "flag", "true"),
    ]


@pytest.mark.parametrize(
    ("text", "line", "kept"),
    [
        ('[user]\n\tname = ok\n[remote "origin"\n\turl = x\n', 3, 1),
        ("key = before any section\n", 1, 0),
        ('[user]\n\tname = ok\n\temail = "unterminated\n', 3, 1),
        ("[user]\n\tname = ok\n\temail = bad \\q escape\n", 3, 1),
        ("[user]\n\t= no key\n", 2, 0),
    ],
)
def test_parse_config_reports_the_bad_line_and_keeps_what_came_before(
    text: str, line: int, kept: int
) -> None:
    entries, error = parse_config(text)
    assert error is not None
    assert error.startswith(f"line {line}:")
    assert entries == [("user", None, "name", "ok")][:kept]


def test_user_identity_repo_config_then_global(tmp_path: Path, home: Path) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "git").mkdir(parents=True)
    (xdg / "git/config").write_text("[user]\n\tname = From Xdg\n\temail = xdg@example.com\n")
    (home / ".gitconfig").write_text("[user]\n\tname = From Home\n")
    repo = make_repo(tmp_path / "proj", home=home)
    info = read_git(str(repo), env=env_of(home, XDG_CONFIG_HOME=str(xdg)))
    assert info is not None
    assert (info.user_name, info.user_email) == ("From Home", "xdg@example.com")

    git(repo, "config", "user.email", "repo@example.com", home=home)
    info = read_git(str(repo), env=env_of(home, XDG_CONFIG_HOME=str(xdg)))
    assert info is not None
    assert (info.user_name, info.user_email) == ("From Home", "repo@example.com")

    only = tmp_path / "only.gitconfig"
    only.write_text("[user]\n\tname = Only This\n")
    info = read_git(str(repo), env=env_of(home, GIT_CONFIG_GLOBAL=str(only)))
    assert info is not None
    assert (info.user_name, info.user_email) == ("Only This", "repo@example.com")


def test_global_includes(tmp_path: Path, home: Path) -> None:
    (home / ".gitconfig").write_text(
        "[include]\n\tpath = extra.inc\n"
        '[includeIf "gitdir:~/dev/work/"]\n\tpath = ~/work.inc\n'
        '[includeIf "gitdir:~/elsewhere/"]\n\tpath = ~/never.inc\n'
    )
    (home / "extra.inc").write_text("[user]\n\tname = Included\n\temail = home@example.com\n")
    (home / "work.inc").write_text("[user]\n\temail = work@example.com\n")
    (home / "never.inc").write_text("[user]\n\tname = Wrong\n")
    work = make_repo(home / "dev/work/app", home=home)
    private = make_repo(home / "dev/own/app", home=home)
    info = read_git(str(work), env=env_of(home))
    assert info is not None
    assert (info.user_name, info.user_email) == ("Included", "work@example.com")
    info = read_git(str(private), env=env_of(home))
    assert info is not None
    assert (info.user_name, info.user_email) == ("Included", "home@example.com")


def test_malformed_config_records_an_error_and_the_rest_fills_in(
    tmp_path: Path, home: Path
) -> None:
    (home / ".gitconfig").write_text("[user]\n\temail = global@example.com\n")
    repo = make_repo(tmp_path / "proj", home=home, remotes={"origin": "git@h.example:o/r.git"})
    sha = head_of(repo, home)  # before git, too, refuses the config
    config = repo / ".git/config"
    config.write_text(config.read_text() + "[broken\n")
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert info.error is not None
    assert info.error.startswith("config: line ")
    assert [r.url for r in info.remotes] == ["https://h.example/o/r"]  # lines before the fault
    assert info.head_sha == sha
    assert info.user_email == "global@example.com"
    assert info.reflog.first_is_initial_commit

    config.write_bytes(b"[user]\n\tname = \xff\n")
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert info.error == "config: UnicodeDecodeError"
    assert (info.remotes, info.head_sha) == ([], sha)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 file anyway")
def test_unreadable_config(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path / "proj", home=home, remotes={"origin": "git@h.example:o/r.git"})
    sha = head_of(repo, home)
    config = repo / ".git/config"
    config.chmod(0)
    try:
        info = read_git(str(repo), env=env_of(home))
    finally:
        config.chmod(0o644)
    assert info is not None
    assert info.error == "config: PermissionError"
    assert (info.remotes, info.head_sha) == ([], sha)


def test_config_permission_error_even_as_root(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "proj", home=home, remotes={"origin": "git@h.example:o/r.git"})
    read_text = gitconfig.read_text

    def refuse_config(path: str, *, within: str | None, max_bytes: int) -> str:
        if path == str(repo / ".git/config"):
            raise PermissionError(13, "Permission denied", path)
        return read_text(path, within=within, max_bytes=max_bytes)

    monkeypatch.setattr(gitconfig, "read_text", refuse_config)
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert info.error == "config: PermissionError"
    assert info.remotes == []
    assert info.head_sha is not None


def test_config_that_cannot_be_read_even_by_root(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path / "proj", home=home)
    sha = head_of(repo, home)
    (repo / ".git/config").unlink()
    (repo / ".git/config").mkdir()
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert info.error == "config: not a regular file (a folder)"
    assert info.head_sha == sha


def test_missing_head_is_recorded(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path / "proj", home=home)
    (repo / ".git/HEAD").unlink()
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert info.error == "HEAD: FileNotFoundError"
    assert info.head_sha is None
    assert info.reflog.first_is_initial_commit


# --- reftable ---------------------------------------------------------------------------------


def test_reftable_marker_falls_back_to_git(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path / "proj", home=home, remotes={"origin": "git@h.example:o/r.git"})
    config = repo / ".git/config"
    text = config.read_text().replace("repositoryformatversion = 0", "repositoryformatversion = 1")
    config.write_text(text + "[extensions]\n\trefStorage = reftable\n")
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert info.used_git_binary
    # git before 2.45 refuses the extension; later ones find no reftable: either way it fails.
    assert info.error is not None
    assert info.error.startswith("git")
    assert "\n" not in info.error
    assert [r.url for r in info.remotes] == ["https://h.example/o/r"]  # still read from files
    assert info.reflog.first_is_initial_commit


def test_real_reftable_repository(tmp_path: Path, home: Path) -> None:
    repo = tmp_path / "rt"
    try:
        git(tmp_path, "init", "-q", "--ref-format=reftable", str(repo), home=home)
    except RuntimeError:
        pytest.skip("this git cannot make reftable repositories")
    sha = commit(repo, home, "first", when=1_700_000_000)
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert info.used_git_binary
    assert (info.head_ref, info.head_sha, info.error) == ("refs/heads/main", sha, None)


def test_git_binary_is_not_spawned_for_files_repos(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "proj", home=home)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("git was spawned")

    monkeypatch.setattr(subprocess, "run", refuse)
    info = read_git(str(repo), env=env_of(home))
    assert info is not None
    assert not info.used_git_binary
