"""skills.match: the skills (stored by hand or read from .github/skills/) that fit a piece of
work, ranked by tags, category, language and framework — Project Memory's matchSkills — with
the words of a query as a tie-breaker over their text.

A skill's tags are the document's tags; category, languages and frameworks its metadata. The
languages of a path (its extension) count as asked for when `path` is given.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Annotated

import msgspec

from daemon.domain.app import App
from daemon.domain.projects.metadata import LANGUAGES
from daemon.domain.projects.ref import ProjectRef, project_id
from daemon.rpc.dispatcher import Call
from daemon.rpc.registry import Methods, Params

from .model import Document, Names, of_project_and_global

methods = Methods()

# Weights of what matched: a tag is the strongest sign, then the language and framework the
# work is in, then the category; each query word found in the title or text adds a little.
W_TAG, W_LANGUAGE, W_FRAMEWORK, W_CATEGORY, W_WORD = 3.0, 2.0, 2.0, 1.5, 0.5
MAX_SKILLS = 5000


class MatchParams(Params, frozen=True):
    tags: Names = msgspec.field(default_factory=list)
    category: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    language: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    framework: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    query: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    path: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    project: ProjectRef | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10


class SkillMatch(msgspec.Struct, kw_only=True):
    id: int
    title: str
    path: str | None
    score: float
    matched: list[str]  # what counted: "tag:sql", "language:Python", "word:index"…
    description: str | None


def skill_docs(conn: sqlite3.Connection, project: int | None) -> list[Document]:
    return of_project_and_global(conn, "skill", project, MAX_SKILLS)


def _lower(values: list[str]) -> set[str]:
    return {v.strip().lower() for v in values if v.strip()}


def score(doc: Document, want: MatchParams, languages: set[str]) -> tuple[float, list[str]]:
    meta = doc.metadata
    matched: list[str] = []
    total = 0.0
    for tag in sorted(_lower(doc.tags) & _lower(want.tags)):
        total += W_TAG
        matched.append(f"tag:{tag}")
    for language in sorted(_lower(meta.get("languages") or []) & languages):
        total += W_LANGUAGE
        matched.append(f"language:{language}")
    if want.framework and want.framework.lower() in _lower(meta.get("frameworks") or []):
        total += W_FRAMEWORK
        matched.append(f"framework:{want.framework.lower()}")
    category = (meta.get("category") or "").lower()
    if want.category and category == want.category.lower():
        total += W_CATEGORY
        matched.append(f"category:{category}")
    if want.query:
        text = f"{doc.title}\n{meta.get('description') or ''}\n{doc.content}".lower()
        for word in sorted(set(want.query.lower().split())):
            if len(word) > 2 and word in text:
                total += W_WORD
                matched.append(f"word:{word}")
    return total, matched


def path_languages(path: str | None) -> set[str]:
    if not path:
        return set()
    language = LANGUAGES.get(os.path.splitext(path.lower())[1])
    return {language.lower()} if language else set()


class Matches(msgspec.Struct, kw_only=True):
    items: list[SkillMatch]  # best first


@methods("skills.match")
async def match(app: App, call: Call, p: MatchParams) -> Matches:
    """Skills ranked by how well they fit: tags in common, the language (given, or the one of
    `path`) and framework among their targets, the category, query words in their text.
    Skills that match nothing are left out; a project's own skills and global ones."""
    project = await project_id(app, p.project) if p.project is not None else None
    return Matches(items=ranked(await app.db.read(skill_docs, project), p))


def ranked(docs: list[Document], want: MatchParams) -> list[SkillMatch]:
    """The skills that match anything, best first, at most `want.limit`."""
    languages = path_languages(want.path) | ({want.language.lower()} if want.language else set())
    found = []
    for doc in docs:
        total, matched = score(doc, want, languages)
        if total > 0:
            found.append(
                SkillMatch(
                    id=doc.id, title=doc.title, path=doc.path, score=total, matched=matched,
                    description=doc.metadata.get("description"),
                )
            )  # fmt: skip
    found.sort(key=lambda m: (-m.score, m.title, m.id))
    return found[: want.limit]
