"""documents.index_code: a project's source as code_chunk documents, searchable with the rest.

The files are the bounded walk's (tree.walk: the scanner's pruning, .gitignore, dot-folders
left out), code by extension, at most MAX_FILE_BYTES each. A file whose hash is the one its
chunks were made from is not touched; a changed file's chunks are matched by their own hash,
so a chunk that did not change keeps its row, id and embedding and only the others are
inserted, moved (lines) or deleted; a file gone takes its chunks with it. The writes go a few
files at a time, so other writes interleave with a large first index.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections import defaultdict
from typing import Any

import msgspec

from daemon.domain.app import App
from daemon.domain.projects.metadata import MINIFIED_SUFFIXES
from daemon.domain.projects.ref import ProjectRef, resolve
from daemon.domain.quality.walk import CODE_EXTENSIONS
from daemon.platform import untrusted
from daemon.rpc.dispatcher import Call
from daemon.rpc.registry import Methods, ProgressParams
from daemon.store.batch import Tx

from . import chunks, tree
from .model import DOCUMENTS

methods = Methods()

MAX_FILE_BYTES = 512 * 1024  # bigger source is generated or vendored, not read by people
WALK_MAX_DEPTH = 16
WALK_MAX_ENTRIES = 100_000
FILES_PER_WRITE = 25


class IndexCodeParams(ProgressParams, frozen=True):
    project: ProjectRef


class IndexCodeResult(msgspec.Struct, kw_only=True):
    project_id: int
    files: int = 0  # source files found
    files_changed: int = 0  # read and chunked again (new or changed)
    files_removed: int = 0
    chunks_added: int = 0
    chunks_updated: int = 0  # same text kept (its id and embedding), lines or file hash moved
    chunks_removed: int = 0
    chunks_unchanged: int = 0
    skipped: list[str] = msgspec.field(default_factory=list)  # "<path>: why"
    truncated: bool = False


class FileChunks(msgspec.Struct, kw_only=True):
    path: str
    language: str | None
    file_hash: str
    chunks: list[chunks.Chunk]


def _wanted(name: str, rel: str) -> bool:
    dot = name.rfind(".")
    return (
        dot > 0
        and name[dot:].lower() in CODE_EXTENSIONS
        and not name.lower().endswith(MINIFIED_SUFFIXES)
    )


def _stored_hashes(conn: sqlite3.Connection, project_id: int) -> dict[str, str]:
    """file → the hash its chunks were made from."""
    rows = conn.execute(
        "SELECT path, json_extract(metadata, '$.file_hash') FROM documents "
        "WHERE project_id = ? AND kind = 'code_chunk' AND origin = 'repo' GROUP BY path",
        (project_id,),
    ).fetchall()
    return {str(p): str(h) for p, h in rows}


def _read(root: str, rel: str, skipped: list[str]) -> str | None:
    try:
        data = untrusted.read(
            os.path.join(root, *rel.split("/")), within=root, max_bytes=MAX_FILE_BYTES
        )
    except (OSError, ValueError) as e:
        skipped.append(f"{rel}: {getattr(e, 'strerror', None) or type(e).__name__}")
        return None
    if b"\0" in data[:8192]:
        skipped.append(f"{rel}: binary")
        return None
    return data.decode("utf-8", errors="replace")


def read_changed(
    root: str, known: dict[str, str]
) -> tuple[list[str], list[FileChunks], list[str], bool]:
    """On a thread: (every source file, the new or changed ones chunked, skipped, truncated)."""
    walked = tree.walk(root, want=_wanted, max_depth=WALK_MAX_DEPTH, max_entries=WALK_MAX_ENTRIES)
    changed: list[FileChunks] = []
    skipped: list[str] = []
    for rel in walked.files:
        text = _read(root, rel, skipped)
        if text is None:
            continue
        file_hash = chunks.digest(text)
        if known.get(rel) == file_hash:
            continue
        language = CODE_EXTENSIONS.get(os.path.splitext(rel)[1].lower())
        changed.append(
            FileChunks(
                path=rel, language=language, file_hash=file_hash,
                chunks=chunks.chunk(text, language),
            )
        )  # fmt: skip
    return walked.files, changed, skipped, walked.truncated


def _title(path: str, c: chunks.Chunk) -> str:
    name = f" {', '.join(c.symbols)}" if c.symbols else ""
    return f"{path}:{c.start_line}-{c.end_line}{name}"[:1000]


def _metadata(f: FileChunks, c: chunks.Chunk) -> dict[str, Any]:
    return {
        "file": f.path, "start_line": c.start_line, "end_line": c.end_line,
        "symbols": c.symbols[:100], "chunk_type": c.chunk_type, "language": f.language,
        "complexity": c.complexity, "hash": c.hash, "file_hash": f.file_hash,
    }  # fmt: skip


def sync_files(project_id: int, files: list[FileChunks], gone: list[str]) -> Any:
    """One write: these files' chunks made equal to what was read, the gone files' removed."""

    def op(tx: Tx) -> IndexCodeResult:
        out = IndexCodeResult(project_id=project_id)
        for path in gone:
            removed = tx.conn.execute(
                "SELECT id FROM documents WHERE project_id = ? AND kind = 'code_chunk' "
                "AND origin = 'repo' AND path = ?",
                (project_id, path),
            ).fetchall()
            for (row_id,) in removed:
                DOCUMENTS.delete(tx, row_id)
            out.chunks_removed += len(removed)
            out.files_removed += 1
        for f in files:
            _sync_file(tx, project_id, f, out)
        return out

    return op


def _sync_file(tx: Tx, project_id: int, f: FileChunks, out: IndexCodeResult) -> None:
    rows = tx.conn.execute(
        "SELECT id, json_extract(metadata, '$.hash') FROM documents WHERE project_id = ? "
        "AND kind = 'code_chunk' AND origin = 'repo' AND path = ? ORDER BY id",
        (project_id, f.path),
    ).fetchall()
    by_hash: dict[str, list[int]] = defaultdict(list)
    for row_id, chunk_hash in rows:
        by_hash[str(chunk_hash)].append(int(row_id))
    seen: set[str] = set()
    for c in f.chunks:
        if c.hash in seen:
            continue  # the same text twice in one file: kept once
        seen.add(c.hash)
        values = {"title": _title(f.path, c), "metadata": _metadata(f, c)}
        if by_hash.get(c.hash):
            row_id = by_hash[c.hash].pop(0)
            old = DOCUMENTS.must_get(tx.conn, row_id)
            if old.title != values["title"] or old.metadata != values["metadata"]:
                DOCUMENTS.update(tx, row_id, values)
                out.chunks_updated += 1
            else:
                out.chunks_unchanged += 1
            continue
        DOCUMENTS.insert(
            tx,
            {**values, "kind": "code_chunk", "type": c.chunk_type, "content": c.text,
             "project_id": project_id, "origin": "repo", "path": f.path},
        )  # fmt: skip
        out.chunks_added += 1
    for leftover in by_hash.values():
        for row_id in leftover:
            DOCUMENTS.delete(tx, row_id)
            out.chunks_removed += 1


def _add(total: IndexCodeResult, part: IndexCodeResult) -> None:
    for name in ("files_removed", "chunks_added", "chunks_updated", "chunks_removed",
                 "chunks_unchanged"):  # fmt: skip
        setattr(total, name, getattr(total, name) + getattr(part, name))


@methods("documents.index_code")
async def index_code(app: App, call: Call, p: IndexCodeParams) -> IndexCodeResult:
    """Chunk a project's source into code_chunk documents (by top-level definition, else
    windows of lines), reading only files that changed since the last index and touching only
    their chunks; files gone lose theirs. Reports `$/progress`; searchable at once."""
    project = await resolve(app.db, p.project)
    call.progress("finding source files", 0)
    known = await app.db.read(_stored_hashes, project.id)
    files, changed, skipped, truncated = await asyncio.to_thread(read_changed, project.path, known)
    total = IndexCodeResult(
        project_id=project.id, files=len(files), files_changed=len(changed), skipped=skipped,
        truncated=truncated,
    )  # fmt: skip
    present = set(files)
    gone = sorted(path for path in known if path not in present)
    batches = [changed[i : i + FILES_PER_WRITE] for i in range(0, len(changed), FILES_PER_WRITE)]
    part = await app.db.write(sync_files(project.id, [], gone), heavy=True)
    _add(total, part)
    for number, batch in enumerate(batches, 1):
        call.check_cancelled()
        _add(total, await app.db.write(sync_files(project.id, batch, []), heavy=True))
        call.progress(
            f"{number * FILES_PER_WRITE} of {len(changed)} files", 100 * number // len(batches)
        )
    call.progress("done", 100)
    return total
