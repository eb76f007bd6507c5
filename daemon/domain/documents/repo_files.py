"""The instruction, skill and agent files agents' tools keep in a repository, read into the
documents they become (on a scan thread; nothing here writes).

- AGENTS.md, CLAUDE.md, GEMINI.md at any depth: instructions for the folder they are in and
  everything below it (a nested one is more specific);
- .github/copilot-instructions.md: the whole repository;
- .github/instructions/*.instructions.md: the paths its `applyTo` globs match;
- .cursor/rules/*.mdc: `alwaysApply`, else the paths its `globs` match, else (only a
  `description`) an agent may ask for it;
- .github/skills/*/SKILL.md: skills (name, description, and category, tags, languages,
  frameworks when its front matter gives them);
- agents/*.md, .github/agents/*.md: agent definitions (name, description, model, tools).

Every file is read through daemon.platform.untrusted (inside the project, regular files only,
capped); front matter through `frontmatter` (bounded, never executed). A file that cannot be
read or whose front matter is malformed is a problem in the result — the others are indexed
all the same, and a malformed one still is, with its problem in its metadata.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from typing import Any

import msgspec

from daemon.platform import untrusted

from . import frontmatter, tree
from .frontmatter import FrontMatter

MAX_FILE_BYTES = 256 * 1024
NESTED_NAMES = {"AGENTS.md": "agents_md", "CLAUDE.md": "claude_md", "GEMINI.md": "gemini_md"}
WALK_MAX_DEPTH = 8
WALK_MAX_ENTRIES = 20_000
LIST_MAX = 500  # files taken from one folder (.github/instructions, .cursor/rules…)
# Folders whose listing and mtimes say whether anything changed (with the files found).
WATCHED_FOLDERS = (
    "", ".git", ".github", ".github/instructions", ".github/skills", ".github/agents",
    ".cursor/rules", "agents",
)  # fmt: skip


class RepoDoc(msgspec.Struct, kw_only=True):
    kind: str
    path: str
    title: str
    content: str
    metadata: dict[str, Any]
    tags: list[str] = msgspec.field(default_factory=list)


class RepoRead(msgspec.Struct, kw_only=True):
    docs: list[RepoDoc]
    problems: list[str]  # "<path>: what is wrong"
    truncated: bool  # the walk for nested files was cut short


def read_project(root: str) -> RepoRead:
    out = RepoRead(docs=[], problems=[], truncated=False)
    walked = tree.walk(
        root, want=lambda name, rel: name in NESTED_NAMES,
        max_depth=WALK_MAX_DEPTH, max_entries=WALK_MAX_ENTRIES,
    )  # fmt: skip
    out.truncated = walked.truncated
    for rel in walked.files:
        _nested(root, rel, out)
    _one(root, ".github/copilot-instructions.md", out, _copilot)
    for rel in _listed(root, ".github/instructions", ".instructions.md"):
        _one(root, rel, out, _copilot_scoped)
    for rel in _listed(root, ".cursor/rules", ".mdc"):
        _one(root, rel, out, _cursor_rule)
    for rel in _skills(root):
        _one(root, rel, out, _skill)
    for folder in ("agents", ".github/agents"):
        for rel in _listed(root, folder, ".md"):
            _one(root, rel, out, _agent)
    return out


def fingerprint(root: str, known: list[str]) -> str:
    """What changes when an instruction file may have: the watched folders' and the known
    files' (mtime, size), and git's index and HEAD log (a commit or checkout anywhere)."""
    parts: list[str] = []
    for rel in [*WATCHED_FOLDERS, ".git/index", ".git/logs/HEAD", *known]:
        try:
            st = os.stat(os.path.join(root, rel))
        except (OSError, ValueError):
            parts.append(f"{rel}:-")
            continue
        parts.append(f"{rel}:{st.st_mtime_ns}:{st.st_size}")
    return hashlib.sha1(
        "\n".join(parts).encode("utf-8", "replace"), usedforsecurity=False
    ).hexdigest()


# --- reading -------------------------------------------------------------------------------
def _read(root: str, rel: str, out: RepoRead) -> str | None:
    try:
        data = untrusted.read(
            os.path.join(root, *rel.split("/")), within=root, max_bytes=MAX_FILE_BYTES
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        out.problems.append(f"{rel}: {getattr(e, 'strerror', None) or type(e).__name__}")
        return None
    return data.decode("utf-8", errors="replace")


def _one(root: str, rel: str, out: RepoRead, make: Any) -> None:
    text = _read(root, rel, out)
    if text is None:
        return
    parsed = frontmatter.parse(text)
    if parsed.problem:
        out.problems.append(f"{rel}: {parsed.problem}")
    out.docs.append(make(rel, text, parsed))


def _listed(root: str, folder: str, suffix: str) -> list[str]:
    try:
        with os.scandir(os.path.join(root, folder)) as listing:
            names = [
                e.name for e in itertools.islice(listing, LIST_MAX)
                if e.name.endswith(suffix) and e.is_file(follow_symlinks=False)
            ]  # fmt: skip
    except OSError:
        return []
    return [f"{folder}/{name}" for name in sorted(names)]


def _skills(root: str) -> list[str]:
    found = []
    try:
        with os.scandir(os.path.join(root, ".github", "skills")) as listing:
            for entry in itertools.islice(listing, LIST_MAX):
                if entry.is_dir(follow_symlinks=False):
                    found.append(f".github/skills/{entry.name}/SKILL.md")
    except OSError:
        return []
    return sorted(found)


# --- each format -----------------------------------------------------------------------------
def _instruction(rel: str, body: str, problem: str | None, **meta: Any) -> RepoDoc:
    metadata = {"format": meta.pop("format"), "problem": problem, **meta}
    return RepoDoc(kind="instruction", path=rel, title=rel, content=body, metadata=metadata)


def _nested(root: str, rel: str, out: RepoRead) -> None:
    text = _read(root, rel, out)
    if text is None:
        return
    folder, _, name = rel.rpartition("/")
    out.docs.append(
        _instruction(rel, text, None, format=NESTED_NAMES[name], scope=folder, always_apply=False)
    )


def _copilot(rel: str, text: str, fm: FrontMatter) -> RepoDoc:
    return _instruction(rel, text, None, format="copilot", always_apply=True)


def _copilot_scoped(rel: str, text: str, fm: FrontMatter) -> RepoDoc:
    return _instruction(
        rel, fm.body, fm.problem, format="copilot_instructions",
        applies_to=frontmatter.string_list(fm.fields.get("applyTo")),
        description=frontmatter.text(fm.fields.get("description")),
    )  # fmt: skip


def _cursor_rule(rel: str, text: str, fm: FrontMatter) -> RepoDoc:
    return _instruction(
        rel, fm.body, fm.problem, format="cursor_rule",
        applies_to=frontmatter.string_list(fm.fields.get("globs")),
        always_apply=frontmatter.flag(fm.fields.get("alwaysApply")),
        description=frontmatter.text(fm.fields.get("description")),
    )  # fmt: skip


def _skill(rel: str, text: str, fm: FrontMatter) -> RepoDoc:
    fields = fm.fields
    name = frontmatter.text(fields.get("name")) or rel.split("/")[-2]
    return RepoDoc(
        kind="skill", path=rel, title=name, content=fm.body,
        tags=frontmatter.string_list(fields.get("tags")),
        metadata={
            "name": name, "description": frontmatter.text(fields.get("description")),
            "category": frontmatter.text(fields.get("category")),
            "languages": frontmatter.string_list(fields.get("languages")),
            "frameworks": frontmatter.string_list(fields.get("frameworks")),
            "problem": fm.problem,
        },
    )  # fmt: skip


def _agent(rel: str, text: str, fm: FrontMatter) -> RepoDoc:
    fields = fm.fields
    stem = rel.rsplit("/", 1)[-1].removesuffix(".md").removesuffix(".agent")
    name = frontmatter.text(fields.get("name")) or stem
    return RepoDoc(
        kind="agent", path=rel, title=name, content=fm.body,
        metadata={
            "name": name, "description": frontmatter.text(fields.get("description")),
            "model": frontmatter.text(fields.get("model")),
            "tools": frontmatter.string_list(fields.get("tools")), "problem": fm.problem,
        },
    )  # fmt: skip
