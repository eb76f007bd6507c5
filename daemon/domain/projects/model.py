"""What reading a project's files yields: plain msgspec types, no I/O here.

`discovery` finds candidate folders, `gitmeta` reads a repository from its files, `metadata`
turns both into `ProjectFacts`. The scanner compares facts with the database.
"""

from __future__ import annotations

from typing import Literal

import msgspec

GitKind = Literal["worktree", "linked-worktree", "bare"]
Status = Literal["active", "on-hold", "archived"]
OriginType = Literal["created", "forked", "cloned"]
Ownership = Literal["mine", "customized-fork", "exploring"]


class Remote(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    url: str  # normalised (https://host/owner/repo when it is a hosted repo), never credentials
    owner: str | None = None  # the account in the URL's path, when there is one
    host: str | None = None


class ReflogSummary(msgspec.Struct, frozen=True, kw_only=True):
    first_line: str | None = None  # the reflog's first entry, verbatim (identity of the repo)
    first_is_initial_commit: bool = False  # "commit (initial): …"
    first_is_clone: bool = False  # "clone: from …"
    commits_by: list[str] = msgspec.field(default_factory=list)  # emails of `commit` entries
    last_time: str | None = None  # ISO 8601 UTC of the newest entry


class GitInfo(msgspec.Struct, frozen=True, kw_only=True):
    kind: GitKind
    git_dir: str  # absolute: <project>/.git, or the linked worktree's dir under the common dir
    common_dir: str  # where refs, objects and config live (== git_dir except linked worktrees)
    head_ref: str | None = None  # "refs/heads/main"; None when detached
    head_sha: str | None = None  # None for a fresh `git init` (unborn branch)
    branch: str | None = None  # "main"; None when detached
    detached: bool = False
    default_branch: str | None = None  # from refs/remotes/origin/HEAD, else None
    remotes: list[Remote] = msgspec.field(default_factory=list)
    user_name: str | None = None  # from the repo config, then the global one
    user_email: str | None = None
    reflog: ReflogSummary = msgspec.field(default_factory=ReflogSummary)
    used_git_binary: bool = False  # a reftable repo: facts came from spawning git
    error: str | None = None  # what could not be read (the rest is still filled in)


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """A folder the discovery walk judged to be a project."""

    path: str  # absolute, as found (not resolved through symlinks unless following them)
    root: str  # the Dev root it was found under
    reason: Literal["git", "bare", "manifest", "registered"]  # registered: by hand, any folder
    manifests: list[str] = msgspec.field(default_factory=list)  # file names found at its top
    device: int
    inode: int


class WalkError(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    error: str


class Discovery(msgspec.Struct, frozen=True, kw_only=True):
    candidates: list[Candidate]
    groups: list[str]  # folders walked through that are not projects (the grouping folders)
    errors: list[WalkError]


class ProjectFacts(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the scanner learns about one project from its files."""

    path: str
    name: str
    root: str | None
    description: str | None
    vcs: Literal["git", "none"]
    git: GitInfo | None
    repository_url: str | None  # origin's normalised URL
    languages: dict[str, int]  # language → bytes, from a bounded walk
    last_worked_on: str | None  # ISO 8601 UTC
    status: Status  # inferred (the user's value, if any, wins later)
    origin_type: OriginType
    ownership: Ownership
    archived_marker: bool
    manifests: list[str]
    device: int
    inode: int
    identity: str  # path-independent identity for move detection (see metadata.identity)
    fingerprint: str  # changes when anything the facts depend on may have changed
    error: str | None = None
