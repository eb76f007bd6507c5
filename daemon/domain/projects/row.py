"""A project as it is stored and sent: the row Struct, its table, and the events of its changes.

Every column is a field here, with its constraints: what a scan may store, what `projects.update`
accepts (its params are built from these very field types) and what an import must hold to.
Two lists say what the fields are for: FACTS, what a scan reads from disk and keeps up to date,
and BY_HAND, what a user may set (a value set by hand wins over inference from then on).
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, get_args

import msgspec

from daemon.domain.projects.model import GitKind, OriginType, Ownership, Status
from daemon.store.events_catalogue import EventKind
from daemon.store.table import Row, RowUpdated, Table

NAME_MAX = 255
URL_MAX = 2048

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_MAX)]
Text = Annotated[str, msgspec.Meta(max_length=10_000)]
Url = Annotated[str, msgspec.Meta(max_length=URL_MAX)]
Source = Literal["discovered", "registered"]  # registered: by hand (`projects.register`)
Vcs = Literal["git", "none"]
# What a user may set by hand.
ByHand = Literal[
    "name", "description", "status", "origin_type", "ownership", "repository_url", "deployed_url",
    "mode", "settings", "completed_at", "lifecycle", "parent_id",
]  # fmt: skip
# Nexus' project fields (no scan infers them: they are only ever set by hand).
Mode = Literal["genesis", "evolution"]
Lifecycle = Literal["created", "planning", "in_progress", "paused", "completed", "failed"]
Order = Literal["last_worked_on", "name", "quality"]  # what projects.list offers


def folder_name(path: str) -> str:
    """A new project's name: its folder's, cut to what a name may hold (a file system may
    allow longer names than the 255 characters of the usual ones)."""
    return (os.path.basename(path.rstrip(os.sep)) or path)[:NAME_MAX]


class RemoteRow(msgspec.Struct, frozen=True):
    name: str
    url: str


class Project(Row, kw_only=True):
    name: Name
    path: str
    description: Text | None = None
    status: Status = "active"
    origin_type: OriginType | None = None
    ownership: Ownership | None = None
    last_worked_on: str | None = None
    repository_url: Url | None = None
    deployed_url: Url | None = None
    present: bool = True
    missing_since: str | None = None
    source: Source = "discovered"
    root: str | None = None  # the Dev root it lies under
    vcs: Vcs = "none"
    git_kind: GitKind | None = None
    git_common_dir: str | None = None
    branch: str | None = None
    head_sha: str | None = None
    detached: bool = False
    default_branch: str | None = None
    remotes: list[RemoteRow] = msgspec.field(default_factory=list)
    languages: dict[str, int] = msgspec.field(default_factory=dict)
    manifests: list[str] = msgspec.field(default_factory=list)
    archived_marker: bool = False
    worktree_of: int | None = None  # a linked worktree's main checkout
    # Recognising it after a move: its checkout's identity (see metadata.identity), its inode.
    identity: str | None = None
    device: int | None = None
    inode: int | None = None
    scanned_at: str | None = None
    scan_error: str | None = None
    fingerprint: str | None = None  # changes when anything its facts depend on may have
    user_set: list[ByHand] = msgspec.field(default_factory=list)
    # Nexus' mode, settings, completed_at and lifecycle (beside PM Agent's status), Project
    # Memory's workspace hierarchy (schema 0006)
    mode: Mode | None = None
    settings: dict[str, Any] = msgspec.field(default_factory=dict)
    completed_at: str | None = None
    lifecycle: Lifecycle | None = None
    parent_id: int | None = None  # the project this one is part of
    quality_score: int | None = None  # from the latest quality assessment, when there is one


PROJECTS = Table(
    "projects",
    Project,
    computed={"quality_score": "q.quality_score"},
    joins="LEFT JOIN quality_latest AS q ON q.project_id = t.id",
    orders={
        "last_worked_on": "t.last_worked_on DESC NULLS LAST, t.name, t.id",
        "name": "t.name COLLATE NOCASE, t.path",
        "quality": "q.quality_score DESC NULLS LAST, t.name COLLATE NOCASE, t.id",
        "id": "t.id",  # when any order will do: no sort (the daemon's own reads of every row)
    },
    identity=("path",),
)

# What a scan reads from disk and keeps up to date (but for the fields in a row's `user_set`).
FACTS: tuple[str, ...] = (
    "name", "description", "status", "origin_type", "ownership", "last_worked_on",
    "repository_url", "root", "vcs", "git_kind", "git_common_dir", "branch", "head_sha",
    "detached", "default_branch", "remotes", "languages", "manifests", "archived_marker",
    "identity", "device", "inode", "scan_error",
)  # fmt: skip
BY_HAND: tuple[str, ...] = get_args(ByHand)
# A scan's own notes of when it looked and what it saw: written alone, they are no change of
# the project (no version, no event), or every rescan would change every project.
BOOKKEEPING = frozenset({"scanned_at", "fingerprint"})


def _check_names() -> None:
    """The lists name fields of the row, and `Order` orders of the table (a typo fails at
    start, not at the first scan)."""
    unknown = (set(FACTS) | set(BY_HAND) | BOOKKEEPING) - PROJECTS.writable
    if unknown:
        raise ValueError(f"not a projects field: {sorted(unknown)}")
    if not set(get_args(Order)) <= set(PROJECTS.orders):
        raise ValueError("projects.list offers an order the table does not declare")


_check_names()


# --- events beyond created / updated / deleted ------------------------------------------------
class ProjectChange(RowUpdated, kw_only=True):
    """A change with a meaning of its own, carrying what changed like `projects.updated`."""

    path: str  # where the project is now


class ProjectMoved(ProjectChange, kw_only=True):
    from_: str = msgspec.field(name="from")
    to: str


class Overridden(msgspec.Struct, kw_only=True):
    """A value set by hand on a merged record that lost to another record's."""

    id: int
    field: str
    value: Any


class ProjectMerged(ProjectChange, kw_only=True):
    """Records of one checkout made one (see merge.py): `merged` were deleted, every row that
    referred to them refers to this one (`moved_rows`, by table.column)."""

    merged: list[int]
    merged_uids: list[str]
    moved_rows: dict[str, int]
    overridden: list[Overridden]


MISSING = EventKind("projects.missing", ProjectChange)  # its folder is gone
RETURNED = EventKind("projects.returned", ProjectChange)  # back where it was
MOVED = EventKind("projects.moved", ProjectMoved)  # found elsewhere: same id, new path
MERGED = EventKind("projects.merged", ProjectMerged)
