"""What an import settles about projects: an export is data, never instructions.

A project whose folder lies outside the Dev folder is not read because an export says so: it is
kept as a registered project not yet confirmed (missing, its folder skipped by every scan)
until the user confirms it with `pm project register PATH` (`projects.register`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence

from daemon.domain.projects import sql
from daemon.domain.projects.row import PROJECTS
from daemon.platform import untrusted
from daemon.store.batch import Tx

UNCONFIRMED = (
    "imported from an export, outside the Dev folder: not read until you confirm it with "
    "`pm project register {path}`"
)


def outside(path: str, roots: Sequence[str], exclude: Sequence[str]) -> bool:
    """Is `path` (as an export gives it) anywhere but below a Dev root (links resolved)?"""
    if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path:
        return True
    real = os.path.realpath(path)
    if any(untrusted.is_inside(real, folder) for folder in exclude):
        return True
    return not any(untrusted.is_inside(real, root) for root in roots)


def settle(
    conn: sqlite3.Connection, roots: Sequence[str], exclude: Sequence[str], now: str
) -> list[str]:
    """Every imported project outside the Dev roots (or inside `exclude`, the data folder)
    becomes a registered project not yet confirmed; returns their paths. Runs on the new file
    before it is swapped in: its changes are part of what is imported (no events)."""
    tx = Tx(conn, now)
    unconfirmed = []
    for project_id, path in sql.paths(conn):
        if not outside(path, roots, exclude):
            continue
        values = {
            "source": "registered",
            "present": False,
            "missing_since": now,
            "fingerprint": None,
            "scan_error": UNCONFIRMED.format(path=path),
        }
        PROJECTS.update(tx, project_id, values, emit=False)
        sql.ignore_path(conn, path, now)  # `pm project register` takes it off
        unconfirmed.append(path)
    return unconfirmed
