"""Archiving a plan with everything of it, and bringing it back unchanged; the hook other
domains register; exporting a plan and making a fresh one from the file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from client.sync import Client
from daemon.domain.work import archive
from daemon.store import migrations
from daemon.store.batch import Tx
from daemon.store.database import Database
from tests.helpers import DaemonProcess
from tests.work_helpers import blocks, error, make_plan, new_project, rows, rpc, steps, work_daemon

__all__ = ["rpc", "work_daemon"]

_TABLES = ("plans", "phases", "tasks", "sessions", "dependencies")


def snapshot(daemon: DaemonProcess, plan_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the plan and of what belongs to it, every column, as the file holds it."""
    nodes = (
        "SELECT id FROM dependencies WHERE (from_type = 'plan' AND from_id = :p)"
        " OR (to_type = 'plan' AND to_id = :p)"
        " OR (from_type = 'phase' AND from_id IN (SELECT id FROM phases WHERE plan_id = :p))"
        " OR (from_type = 'task' AND from_id IN (SELECT id FROM tasks WHERE plan_id = :p))"
        " OR (to_type = 'task' AND to_id IN (SELECT id FROM tasks WHERE plan_id = :p))"
    )
    conn = sqlite3.connect(f"file:{daemon.db_path}?mode=ro", uri=True)
    try:
        where = {"plans": "id = :p", "phases": "plan_id = :p", "tasks": "plan_id = :p",
                 "sessions": "plan_id = :p", "dependencies": f"id IN ({nodes})"}  # fmt: skip
        return {
            table: conn.execute(
                f"SELECT * FROM {table} WHERE {where[table]} ORDER BY id", {"p": plan_id}
            ).fetchall()
            for table in _TABLES
        }
    finally:
        conn.close()


def columns(daemon: DaemonProcess, table: str) -> list[str]:
    return [r[1] for r in rows(daemon, f"PRAGMA table_info({table})")]


def test_archive_round_trip_keeps_every_row_and_field(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a", "b"], ["c"]], goals=["g"], settings={"k": [1]})
    s = steps(tree)
    rpc.call("tasks.add", {"parent": s["a"]["id"], "title": "a.1", "tags": ["x"]})
    blocks(rpc, ("task", s["c"]["id"]), ("phase", tree["phases"][0]["id"]))
    rpc.call("tasks.update", {"id": s["b"]["id"], "status": "in_review", "notes": ["n"]})
    rpc.call("tasks.complete", {"id": s["a"]["id"], "agent": "ann"})
    rpc.call("sessions.start", {"project": project, "plan": tree["id"], "goals": ["ship"]})
    before = snapshot(work_daemon, tree["id"])
    assert all(before[t] for t in _TABLES)

    archived = rpc.call("plans.archive", {"id": tree["id"]})
    assert archived["archived"] is True and archived["archived_at"] is not None
    flagged = snapshot(work_daemon, tree["id"])
    for table in _TABLES:
        flag = columns(work_daemon, table).index("archived")
        assert [r[flag] for r in flagged[table]] == [1] * len(before[table]), table

    rpc.call("plans.unarchive", {"id": tree["id"]})
    after = snapshot(work_daemon, tree["id"])
    for table in ("phases", "tasks", "sessions", "dependencies"):
        assert after[table] == before[table], table  # every field of every row, unchanged
    plan_columns = columns(work_daemon, "plans")
    moving = {plan_columns.index(c) for c in ("updated_at", "version")}
    same = [[v for i, v in enumerate(r) if i not in moving] for r in after["plans"]]
    assert same == [[v for i, v in enumerate(r) if i not in moving] for r in before["plans"]]


def test_archived_work_leaves_ready_next_and_lists_and_releases_what_waited(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a"]])
    other = make_plan(rpc, project, [["x"]])
    a, x = steps(tree)["a"]["id"], steps(other)["x"]["id"]
    blocks(rpc, ("task", x), ("task", a))
    assert rpc.call("tasks.get", {"id": x})["blocked"] is True
    rpc.call("plans.archive", {"id": tree["id"]})
    ready = {t["id"] for t in rpc.call("tasks.ready", {"project": project})["items"]}
    assert a not in ready and x in ready  # the archived blocker no longer holds x
    assert rpc.call("tasks.next", {"plan": tree["id"]})["task"] is None
    assert a not in {t["id"] for t in rpc.call("tasks.list", {"project": project})["items"]}
    listed = rpc.call("tasks.list", {"project": project, "include_archived": True})
    assert a in {t["id"] for t in listed["items"]}
    assert rpc.call("tasks.get", {"id": a})["archived"] is True
    rpc.call("plans.unarchive", {"id": tree["id"]})
    assert rpc.call("tasks.get", {"id": x})["blocked"] is True  # and holds it again
    assert rpc.call("tasks.next", {"plan": tree["id"]})["task"]["id"] == a


def test_archiving_claimed_work_needs_force_which_releases_it(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a"]])
    a = steps(tree)["a"]["id"]
    rpc.call("tasks.claim", {"agent": "ann", "id": a})
    e = error(rpc, "plans.archive", {"id": tree["id"]})
    assert e.data["kind"] == "conflict" and e.data["tasks"] == [a]
    assert rpc.call("plans.get", {"id": tree["id"]})["archived"] is False
    rpc.call("plans.archive", {"id": tree["id"], "force": True})
    row = rpc.call("tasks.get", {"id": a})
    assert row["claimed_by"] is None and row["status"] == "pending" and row["archived"] is True
    assert error(rpc, "plans.archive", {"id": tree["id"]}).data["kind"] == "invalid_state"


def test_archive_hooks_run_inside_the_same_transaction(tmp_path: Path) -> None:
    """ON_ARCHIVE: what other domains register is called with (tx, plan, archived), and a hook
    that fails undoes the whole archive."""
    path = tmp_path / "hooks.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.migrate(conn, migrations.load())
    conn.execute("PRAGMA journal_mode = WAL")
    now = "2025-01-01T00:00:00.000000Z"
    conn.execute("INSERT INTO projects (name, path, created_at, updated_at) VALUES"
                 " ('p', '/p', ?, ?)", (now, now))  # fmt: skip
    conn.execute("INSERT INTO plans (created_at, updated_at, project_id, title) VALUES"
                 " (?, ?, 1, 'plan')", (now, now))  # fmt: skip
    conn.close()
    seen: list[tuple[int, bool, int]] = []

    def hook(tx: Tx, plan_id: int, archived: bool) -> None:
        (flag,) = tx.conn.execute("SELECT archived FROM plans WHERE id = ?", (plan_id,)).fetchone()
        seen.append((plan_id, archived, flag))
        if len(seen) == 3:
            raise RuntimeError("a hook that fails")

    async def main() -> list[int]:
        db = Database(str(path))
        await db.start()
        archive.ON_ARCHIVE.append(hook)
        try:
            await db.write(lambda tx: archive.set_archived(tx, 1, True))
            await db.write(lambda tx: archive.set_archived(tx, 1, False))
            with pytest.raises(RuntimeError, match="a hook that fails"):
                await db.write(lambda tx: archive.set_archived(tx, 1, True))
            row = await db.read(lambda c: c.execute("SELECT archived FROM plans").fetchone())
            return list(row)
        finally:
            archive.ON_ARCHIVE.remove(hook)
            await db.close()

    assert asyncio.run(main()) == [0]  # the failed archive left nothing behind
    assert seen == [(1, True, 1), (1, False, 0), (1, True, 1)]


# --- export / import --------------------------------------------------------------------------
def test_export_then_import_makes_a_fresh_equal_plan_in_another_project(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    home, elsewhere = new_project(work_daemon, rpc), new_project(work_daemon, rpc)
    tree = make_plan(rpc, home, [["a", "b"], ["c"]], title="Template", goals=["g"])
    s = steps(tree)
    rpc.call("tasks.add", {"parent": s["a"]["id"], "title": "a.1", "priority": 2})
    blocks(rpc, ("task", s["c"]["id"]), ("task", s["b"]["id"]))
    blocks(rpc, ("phase", tree["phases"][1]["id"]), ("phase", tree["phases"][0]["id"]))
    rpc.call("tasks.complete", {"id": s["b"]["id"]})
    document = rpc.call("plans.export", {"id": tree["id"]})
    assert document["format"] == "pm-agent.plan" and document["version"] == 1
    text = json.dumps(document)  # what `pm plan export` writes to a file
    made = rpc.call("plans.import", {"project": elsewhere, "document": json.loads(text)})
    assert made["project_id"] == elsewhere and made["id"] != tree["id"]
    assert (made["title"], made["goals"]) == ("Template", ["g"])

    def shape(plan: dict[str, Any]) -> list[list[tuple[str, int, str]]]:
        return [[(t["title"], t["priority"], t["status"]) for t in p["tasks"]]
                for p in plan["phases"]]  # fmt: skip

    assert shape(made) == [
        [("a", 5, "pending"), ("a.1", 2, "pending"), ("b", 5, "pending")],
        [("c", 5, "pending")],
    ]  # fmt: skip  (statuses start over)
    fresh = steps(made)
    assert fresh["c"]["blocked"] is True  # its dependencies came too
    assert len(made["dependencies"]) == 2
    assert fresh["a"]["open_subtasks"] == 1


def test_a_hostile_document_is_refused_whole_with_the_reason(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    good = {"title": "t", "phases": [{"key": "p", "title": "p", "tasks": [
        {"key": "a", "title": "a"}, {"key": "b", "title": "b"}]}]}  # fmt: skip
    cases: list[tuple[dict[str, Any], str]] = [
        ({**good, "format": "other"}, "document.format"),
        ({**good, "surprise": 1}, "document"),  # "unknown field `surprise`" in the message
        ({**good, "dependencies": [{"from": "a", "to": "nowhere"}]},
         "document.dependencies[0].to"),
        ({**good, "dependencies": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}]},
         "document.dependencies[1]"),
        ({**good, "phases": [{"key": "p", "title": "p", "tasks": [{"key": "p", "title": "x"}]}]},
         "document.phases[0].tasks[0].key"),
        ({**good, "phases": [{"title": "p", "tasks": [{"title": "a", "subtasks": [
            {"title": "b", "subtasks": []}]}]}]}, "document.phases[0].tasks[0].subtasks[0]"),
        ({**good, "phases": [{"title": ""}]}, "document.phases[0].title"),
    ]  # fmt: skip
    before = rows(work_daemon, "SELECT count(*) FROM plans WHERE project_id = ?", project)
    for document, field in cases:
        e = error(rpc, "plans.import", {"project": project, "document": document})
        assert e.code == -32602 and e.data["field"] == field, (field, e.data, e.message)
    assert rows(work_daemon, "SELECT count(*) FROM plans WHERE project_id = ?", project) == before
    big = {"title": "t", "phases": [{"title": "p", "tasks": [{"title": "x"}] * 20_001}]}
    e = error(rpc, "plans.import", {"project": project, "document": big})
    assert e.code == -32602 and "phases[0].tasks" in e.data["field"]
