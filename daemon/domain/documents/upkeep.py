"""What the runtime does for the memory beyond answering calls: index the projects' instruction
files after every scan, and after another database file was swapped in (restore, import,
repair, reset) forget what was read of the old one and make sure the full-text index holds
every live document (an import inserts rows with the triggers set aside).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import structlog

from daemon.domain.app import App

from .instructions import RepoIndex, repo_index

log = structlog.get_logger("pm.memory")


def attach(app: App, scan_listeners: list[Callable[[Any], None]]) -> RepoIndex:
    """Make the App's index and have every scan (the watcher's too) refresh it."""
    index = repo_index(app)
    roots = set(app.roots)

    def scanned(summary: Any) -> None:
        scope = list(summary.scope)
        # A scan of a root is a full scan: registered projects elsewhere were scanned too.
        index.refresh_soon(None if roots & set(scope) else scope)

    scan_listeners.append(scanned)
    return index


def fts_out_of_step(conn: sqlite3.Connection) -> bool:
    """Does the index hold a different number of documents than are live? (A count of each:
    cheap, and what a file built without the triggers gets wrong.)"""
    indexed = conn.execute("SELECT count(*) FROM documents_fts_docsize").fetchone()[0]
    live = conn.execute("SELECT count(*) FROM documents_live").fetchone()[0]
    return int(indexed) != int(live)


def _rebuild(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO documents_fts (documents_fts) VALUES ('rebuild')")


async def after_swap(app: App) -> bool:
    """Another file is live: read the projects' files afresh, rebuild the full-text index if
    it is out of step; True when it was rebuilt."""
    if app.repo_index is not None:
        app.repo_index.forget()
    if not await app.db.read(fts_out_of_step):
        return False
    log.warning("the full-text index was out of step with the documents; rebuilding it")
    await app.db.maintain(_rebuild)
    return True
