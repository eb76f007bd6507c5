"""The document row, its kinds, and the typed metadata each kind carries.

One table holds every kind of text (Project Memory's context items, research, knowledge, plan
notes, agent/instruction/skill files and build scripts; Perpetua's artifacts and a stage's
prompt, result and thinking; Nexus' episodes and code chunks; PM Agent's knowledge folder and
screenshots). What differs between kinds is said here once: the `type` values a kind allows
(an artifact's document/code/…, an episode's code_generation/…) and the Struct its `metadata`
must decode into. A document read from a repository (`origin = "repo"`) is the daemon's, kept
equal to its file: edit the file, not the row.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any, Literal, get_args

import msgspec

from daemon.rpc.errors import InvalidParams
from daemon.store.table import Row, Table, Where

Kind = Literal[
    "context", "research", "knowledge", "note", "artifact", "stage", "episode", "agent",
    "instruction", "skill", "build_script", "code_chunk", "screenshot",
]  # fmt: skip
KINDS: tuple[str, ...] = get_args(Kind)

MAX_CONTENT_CHARS = 1_000_000  # a document is text a person or an agent reads, not a dump
Title = Annotated[str, msgspec.Meta(max_length=1000, description="a short title")]
Content = Annotated[str, msgspec.Meta(max_length=MAX_CONTENT_CHARS, description="the text")]
Subtype = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        description="the kind's own type: an artifact's document|code|visualization|mindmap|"
        "other, an episode's code_generation|error_fix|review_feedback|decision|research, a "
        "stage part's prompt|result|thinking, a context item's type (free)",
    ),
]
AgentName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, description="an agent's name")
]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Tags = Annotated[list[Tag], msgspec.Meta(max_length=64)]
RepoPath = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
Short = Annotated[str, msgspec.Meta(max_length=1000)]
Names = Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=200)]],
                  msgspec.Meta(max_length=100)]  # fmt: skip
Globs = Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=500)]],
                  msgspec.Meta(max_length=100)]  # fmt: skip


class Document(Row, kw_only=True):
    kind: Kind
    type: Subtype | None = None
    title: Title
    content: Content
    project_id: int | None = None
    plan_id: int | None = None
    phase_id: int | None = None
    task_id: int | None = None
    session_id: int | None = None
    agent: AgentName | None = None
    origin: Literal["stored", "repo"] = "stored"
    path: RepoPath | None = None
    tags: Tags = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    archived: bool = False  # with its plan: out of search until the plan is unarchived


DOCUMENTS = Table(
    "documents",
    Document,
    orders={"recent": "t.id DESC", "id": "t.id", "title": "t.title, t.id"},
    identity=("kind", "project_id"),
)


def of_project_and_global(
    conn: sqlite3.Connection, kind: str, project_id: int | None, limit: int = -1
) -> list[Document]:
    """A kind's live documents of a project, then the global ones (no project): two walks of
    the (project_id, kind) index — one OR of the two would walk every document of the kind."""
    out: list[Document] = []
    for owner in (project_id, None) if project_id is not None else (None,):
        where = Where(DOCUMENTS).eq("project_id", owner).eq("kind", kind).eq("archived", False)
        out += DOCUMENTS.rows(conn, where, "id", limit=limit, budget=False)
    return out


# --- typed metadata per kind ---------------------------------------------------------------
class _Meta(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=False):
    pass


class ContextMeta(_Meta, kw_only=True):
    """Project Memory's context item: its data beside the text."""

    data: dict[str, Any] = msgspec.field(default_factory=dict)


class ResearchMeta(_Meta, kw_only=True):
    filename: Short | None = None


class KnowledgeMeta(_Meta, kw_only=True):
    """Project Memory's knowledge (slug, category); PM Agent's knowledge folder
    (category "pattern" or "insight")."""

    slug: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,199}$")] | None = None
    category: Short | None = None


class NoteMeta(_Meta, kw_only=True):
    pass


class ArtifactMeta(_Meta, kw_only=True):
    """Perpetua's artifact metadata (free JSON), and the stage that made it."""

    data: dict[str, Any] = msgspec.field(default_factory=dict)
    stage_id: int | None = None


class StageMeta(_Meta, kw_only=True):
    """One part (prompt, result or thinking) of a Perpetua stage; the stage is a task."""

    stage: Short | None = None  # discovering, chasing, solving…


class EpisodeMeta(_Meta, kw_only=True):
    """Nexus' episodic memory. Reading an episode (documents.get) counts an access."""

    summary: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    importance: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    access_count: Annotated[int, msgspec.Meta(ge=0)] = 0
    last_accessed_at: str | None = None
    task_id: int | None = None


class AgentFileMeta(_Meta, kw_only=True):
    """An agent definition (Project Memory's agent_definitions; an agents/ file)."""

    name: Short | None = None
    description: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    model: Short | None = None
    tools: Names = msgspec.field(default_factory=list)
    problem: Short | None = None  # its front matter could not be read: what is wrong


class InstructionMeta(_Meta, kw_only=True):
    """An instruction: when it applies. `applies_to` globs are relative to the project root
    (a pattern without "/" matches a file name anywhere); `scope` is the folder a nested
    AGENTS.md/CLAUDE.md/GEMINI.md governs; `always_apply` means every path of the project."""

    applies_to: Globs = msgspec.field(default_factory=list)
    always_apply: bool = False
    scope: Short | None = None
    description: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    format: Short | None = None  # agents_md, claude_md, gemini_md, copilot, cursor_rule…
    problem: Short | None = None


class SkillMeta(_Meta, kw_only=True):
    """Project Memory's skill_definitions (category, tags in the row, language and framework
    targets); a .github/skills/*/SKILL.md file."""

    name: Short | None = None
    description: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    category: Short | None = None
    languages: Names = msgspec.field(default_factory=list)
    frameworks: Names = msgspec.field(default_factory=list)
    problem: Short | None = None


class BuildScriptMeta(_Meta, kw_only=True):
    description: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    command: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    directory: Short | None = None


class CodeChunkMeta(_Meta, kw_only=True):
    """Nexus' code chunk: where it is, what it defines, and the hashes that make a reindex
    touch only what changed."""

    file: RepoPath
    start_line: Annotated[int, msgspec.Meta(ge=1)]
    end_line: Annotated[int, msgspec.Meta(ge=1)]
    symbols: Names = msgspec.field(default_factory=list)
    chunk_type: Short = "window"
    language: Short | None = None
    complexity: Annotated[int, msgspec.Meta(ge=0)] | None = None
    hash: Annotated[str, msgspec.Meta(max_length=128)]
    file_hash: Annotated[str, msgspec.Meta(max_length=128)]


class ScreenshotMeta(_Meta, kw_only=True):
    """PM Agent's screenshots: the image stays a file; the document describes it."""

    image_path: Annotated[str, msgspec.Meta(max_length=4096)] | None = None


METADATA: dict[str, type[_Meta]] = {
    "context": ContextMeta, "research": ResearchMeta, "knowledge": KnowledgeMeta,
    "note": NoteMeta, "artifact": ArtifactMeta, "stage": StageMeta, "episode": EpisodeMeta,
    "agent": AgentFileMeta, "instruction": InstructionMeta, "skill": SkillMeta,
    "build_script": BuildScriptMeta, "code_chunk": CodeChunkMeta, "screenshot": ScreenshotMeta,
}  # fmt: skip

TYPES: dict[str, tuple[str, ...]] = {
    "artifact": ("document", "code", "visualization", "mindmap", "other"),
    "episode": ("code_generation", "error_fix", "review_feedback", "decision", "research"),
    "stage": ("prompt", "result", "thinking"),
}
assert set(METADATA) == set(KINDS)


def typed_metadata(kind: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """`metadata` checked against its kind's Struct, with the Struct's defaults filled in;
    a wrong field is -32602 naming it (`metadata.<field>`)."""
    try:
        typed = msgspec.convert(metadata, METADATA[kind])
    except msgspec.ValidationError as e:
        where = str(e).rpartition("at `$.")[2].rstrip("`") if "at `$." in str(e) else ""
        field = f"metadata.{where}" if where else "metadata"
        raise InvalidParams(f"Invalid params: {kind} metadata: {e}", field=field) from e
    out: dict[str, Any] = msgspec.to_builtins(typed)
    return out


def check_type(kind: str, value: str | None) -> None:
    allowed = TYPES.get(kind)
    if allowed is not None and value is not None and value not in allowed:
        raise InvalidParams(
            f"Invalid params: the type of a {kind} document is one of "
            f"{', '.join(allowed)}, not {value!r}",
            field="type",
            allowed=list(allowed),
        )
