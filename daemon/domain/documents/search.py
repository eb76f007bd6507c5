"""Full-text search over every document: bm25 ranking (the title weighted five times the
body: the index's `rank`, set by the migration), highlighted snippets, filters, paging.

A query is plain words unless the caller asks for FTS5 syntax: each word becomes a quoted
phrase (a trailing `*` keeps its prefix meaning), so quotes, `AND`, `NEAR`, `-`, `:` or
parentheses typed by a person are searched for, never parsed. With `syntax: "fts5"` the query
goes to FTS5 as it is, and one it cannot parse is -32602 with FTS5's reason.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from typing import Literal

import msgspec

from daemon.rpc.errors import InvalidParams
from daemon.store.paging import fetch_page
from daemon.store.table import Page, Where

from .model import DOCUMENTS

Syntax = Literal["plain", "fts5"]
SNIPPET_TOKENS = 16
_WORD = re.compile(r"\w", re.UNICODE)


class Hit(msgspec.Struct, kw_only=True):
    """One match: what a list shows, the best snippet with the matches marked, and the score
    (bm25, higher is better)."""

    id: int
    uid: str
    kind: str
    type: str | None
    title: str
    snippet: str
    score: float
    project_id: int | None
    agent: str | None
    origin: str
    path: str | None
    tags: list[str]
    created_at: str
    updated_at: str


_DECODE_HITS = msgspec.json.Decoder(list[Hit]).decode


def fts_query(query: str, syntax: Syntax) -> str:
    """What goes to MATCH. Plain: every whitespace-separated word as a quoted phrase, all
    required. Refuses a query with nothing to search for."""
    if syntax == "fts5":
        if not query.strip():
            raise InvalidParams("Invalid params: the query is empty", field="query")
        return query
    phrases = []
    for typed in query.split():
        prefix = typed.endswith("*")
        word = typed.rstrip("*")
        if not _WORD.search(word):
            continue  # punctuation alone: nothing the index holds
        quoted = '"' + word.replace('"', '""') + '"'
        phrases.append(quoted + ("*" if prefix else ""))
    if not phrases:
        raise InvalidParams(
            f"Invalid params: the query {query!r} holds no word to search for", field="query"
        )
    return " ".join(phrases)


# One query for the page: FTS5 ranks and SQLite makes the snippet and JSON row only for the
# rows the LIMIT keeps (two steps — ids first, rows after — measured 4-5x slower). CROSS JOIN
# keeps the full-text index driving: left to itself, the planner may walk documents by a
# filter's index and probe the index once per row (100x slower with a project filter).
_HITS = (
    "SELECT json_object('id', t.id, 'uid', t.uid, 'kind', t.kind, 'type', t.type, "
    "'title', t.title, 'snippet', snippet(documents_fts, -1, ?, ?, '…', ?), "
    "'score', round(-documents_fts.rank, 6), 'project_id', t.project_id, 'agent', t.agent, "
    "'origin', t.origin, 'path', t.path, 'tags', json(t.tags), "
    "'created_at', t.created_at, 'updated_at', t.updated_at) "
    "FROM documents_fts CROSS JOIN documents AS t ON t.id = documents_fts.rowid"
)
_RANKED = " ORDER BY documents_fts.rank LIMIT ? OFFSET ?"
_JOIN = " CROSS JOIN documents AS t ON t.id = documents_fts.rowid"


def search(
    conn: sqlite3.Connection,
    match: str,
    where: Where,
    marks: Sequence[str],
    limit: int,
    offset: int,
) -> Page[Hit]:
    """Best first; `where` filters the documents (alias `t`): its SQL is the table layer's
    (declared columns, values as parameters), the query a parameter too."""
    filters, filter_args = where.render()
    condition = " WHERE documents_fts MATCH ?" + (
        " AND " + filters.removeprefix(" WHERE ") if filters else ""
    )
    args = (match, *filter_args)
    try:
        cursor = conn.execute(
            f"{_HITS}{condition}{_RANKED}",
            (marks[0], marks[1], SNIPPET_TOKENS, *args, limit, offset),
        )
        texts = fetch_page(cursor)
        join = _JOIN if filters else ""  # with no filter, the count reads the index alone
        total = conn.execute(f"SELECT count(*) FROM documents_fts{join}{condition}", args)
        counted = int(total.fetchone()[0])
    except sqlite3.OperationalError as e:
        raise InvalidParams(
            f"Invalid params: the query cannot be searched: {e}", field="query", reason=str(e)
        ) from e
    items = _DECODE_HITS(b"[" + ",".join(t for (t,) in texts).encode() + b"]")
    return Page(items=items, total=counted)


def filters(
    *,
    kinds: Sequence[str] = (),
    type_: str | None = None,
    project_id: int | None = None,
    agent: str | None = None,
    tags: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    origin: str | None = None,
    scope: dict[str, int] | None = None,
) -> Where:
    """The document filters search and the brief share."""
    where = Where(DOCUMENTS)
    if kinds:
        where.eq("kind", list(kinds))
    if type_ is not None:
        where.eq("type", type_)
    if project_id is not None:
        where.eq("project_id", project_id)
    if agent is not None:
        where.eq("agent", agent)
    if origin is not None:
        where.eq("origin", origin)
    for column, value in (scope or {}).items():
        where.eq(column, value)
    for tag in sorted(set(tags)):  # every one: an EXISTS each (no temporary table per row)
        where.sql("EXISTS (SELECT 1 FROM json_each(t.tags) AS j WHERE j.value = ?)", tag)
    if since is not None:
        where.sql("t.created_at >= ?", since)
    if until is not None:
        where.sql("t.created_at < ?", until)
    return where
