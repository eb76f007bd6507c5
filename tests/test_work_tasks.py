"""Tasks' own rules through a real daemon: derived blocking kept current with its events,
cycles refused at every level, ready work ranked, the next step of a plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from client.sync import Client
from tests.helpers import DaemonProcess
from tests.work_helpers import (
    blocks,
    error,
    make_plan,
    new_project,
    rows,
    rpc,
    steps,
    work_daemon,
)

__all__ = ["rpc", "work_daemon"]


def blocked(rpc: Client, task_id: int) -> bool:
    return bool(rpc.call("tasks.get", {"id": task_id})["blocked"])


def events_since(rpc: Client, seq: int, types: set[str]) -> list[dict[str, object]]:
    got = rpc.call("events.list", {"since": seq, "topics": ["tasks"], "limit": 1000})["items"]
    return [e for e in got if e["type"] in types]


def last_seq(rpc: Client) -> int:
    return int(rpc.call("events.list", {"since": 0, "limit": 1})["total"])


# --- derived blocking -------------------------------------------------------------------------
def test_blocking_follows_tasks_phases_plans_and_parents(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    first = make_plan(rpc, project, [["a1", "a2"], ["b1"]])
    second = make_plan(rpc, project, [["c1"]])
    s, t = steps(first), steps(second)
    phase_a = first["phases"][0]["id"]
    blocks(rpc, ("phase", first["phases"][1]["id"]), ("phase", phase_a))  # phase waits on phase
    blocks(rpc, ("plan", second["id"]), ("task", s["b1"]["id"]))  # a plan waits on a task
    sub = rpc.call("tasks.add", {"parent": t["c1"]["id"], "title": "c1.1"})
    assert blocked(rpc, s["b1"]["id"]) and blocked(rpc, t["c1"]["id"]) and sub["blocked"]
    assert not blocked(rpc, s["a1"]["id"])
    seq = last_seq(rpc)
    rpc.call("tasks.complete", {"id": s["a1"]["id"]})
    assert blocked(rpc, s["b1"]["id"])  # phase a is not done yet
    done = rpc.call("tasks.complete", {"id": s["a2"]["id"]})
    assert [u["title"] for u in done["unblocked"]] == ["b1"]
    assert not blocked(rpc, s["b1"]["id"]) and blocked(rpc, t["c1"]["id"])
    done = rpc.call("tasks.complete", {"id": s["b1"]["id"]})
    assert {u["title"] for u in done["unblocked"]} == {"c1", "c1.1"}  # the subtask with it
    unblocked = events_since(rpc, seq, {"tasks.unblocked"})
    assert sorted(e["data"]["id"] for e in unblocked) == sorted(  # type: ignore[index]
        [s["b1"]["id"], t["c1"]["id"], sub["id"]]
    )
    assert all(e["data"]["changed"] == {"blocked": False} for e in unblocked)  # type: ignore[index]
    # Reopening the blocker blocks them again, with tasks.blocked.
    rpc.call("tasks.update", {"id": s["b1"]["id"], "status": "pending"})
    assert blocked(rpc, t["c1"]["id"]) and blocked(rpc, sub["id"])
    again = events_since(rpc, seq, {"tasks.blocked"})
    assert {e["data"]["id"] for e in again} >= {t["c1"]["id"], sub["id"]}  # type: ignore[index]


def test_removing_and_archiving_a_dependency_releases_and_counts(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["x", "y", "z"]])
    x, y, z = (steps(tree)[n]["id"] for n in ("x", "y", "z"))
    first = blocks(rpc, ("task", y), ("task", x))
    blocks(rpc, ("task", z), ("task", x))
    assert rpc.call("tasks.get", {"id": x})["unblocks"] == 2
    rpc.call("deps.remove", {"id": first["id"]})
    assert not blocked(rpc, y) and blocked(rpc, z)
    assert rpc.call("tasks.get", {"id": x})["unblocks"] == 1
    assert rows(work_daemon, "SELECT count(*) FROM dependencies WHERE id = ?", first["id"]) == [
        (0,)
    ]


def test_only_blocks_gates_work(work_daemon: DaemonProcess, rpc: Client) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["x", "y"]])
    x, y = steps(tree)["x"]["id"], steps(tree)["y"]["id"]
    for kind in ("related", "discovered_from", "duplicates"):
        rpc.call("deps.add", {"from_type": "task", "from_id": y, "to_type": "task", "to_id": x,
                              "kind": kind})  # fmt: skip
    rpc.call(
        "deps.add",
        {"from_type": "task", "from_id": x, "to_type": "task", "to_id": y, "kind": "related"},
    )  # fmt: skip  (a cycle of related is no cycle)
    assert not blocked(rpc, y) and not blocked(rpc, x)
    listed = rpc.call("deps.list", {"from_type": "task", "from_id": y})
    assert sorted(d["kind"] for d in listed["items"]) == ["discovered_from", "duplicates",
                                                          "related"]  # fmt: skip
    e = error(rpc, "deps.add", {"from_type": "task", "from_id": y, "to_type": "task",
                                "to_id": x, "kind": "related"})  # fmt: skip
    assert e.data["kind"] == "conflict"  # the same edge twice


# --- cycles -----------------------------------------------------------------------------------
def cycle_of(rpc: Client, waiting: tuple[str, int], on: tuple[str, int]) -> list[tuple[str, int]]:
    e = error(rpc, "deps.add", {"from_type": waiting[0], "from_id": waiting[1],
                                "to_type": on[0], "to_id": on[1]})  # fmt: skip
    assert e.data["kind"] == "conflict", e.data
    return [(c["type"], c["id"]) for c in e.data["cycle"]]


def test_cycles_are_refused_direct_long_and_across_levels(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a", "b", "c", "d"], ["e"]])
    other = make_plan(rpc, project, [["f"]])
    s = steps(tree)
    a, b, c, d, e = (s[n]["id"] for n in "abcde")
    f = steps(other)["f"]["id"]
    p0, p1 = tree["phases"][0]["id"], tree["phases"][1]["id"]
    # direct
    blocks(rpc, ("task", b), ("task", a))
    assert cycle_of(rpc, ("task", a), ("task", b)) == [("task", a), ("task", b), ("task", a)]
    # to itself
    assert error(rpc, "deps.add", {"from_type": "task", "from_id": a, "to_type": "task",
                                   "to_id": a}).code == -32602  # fmt: skip
    # long: d → c → b → a, then a → d
    blocks(rpc, ("task", c), ("task", b))
    blocks(rpc, ("task", d), ("task", c))
    assert cycle_of(rpc, ("task", a), ("task", d)) == [
        ("task", a), ("task", d), ("task", c), ("task", b), ("task", a)
    ]  # fmt: skip
    # a task on its own phase or plan; a phase on its own plan; a plan on its own step
    assert cycle_of(rpc, ("task", e), ("phase", p1))[0] == ("task", e)
    assert cycle_of(rpc, ("task", e), ("plan", tree["id"]))[0] == ("task", e)
    assert cycle_of(rpc, ("phase", p0), ("plan", tree["id"]))[0] == ("phase", p0)
    assert cycle_of(rpc, ("plan", tree["id"]), ("task", e))[0] == ("plan", tree["id"])
    # across levels and plans: phase 1 waits on plan "other" (so its step e does), and plan
    # "other" is done when its step f is: f may not wait on e
    blocks(rpc, ("phase", p1), ("plan", other["id"]))
    assert cycle_of(rpc, ("task", f), ("task", e)) == [
        ("task", f), ("task", e), ("plan", other["id"]), ("task", f)
    ]  # fmt: skip
    # a parent waits on its subtasks: a subtask may not wait on its own parent's blockers' end
    sub = rpc.call("tasks.add", {"parent": e, "title": "e.1"})
    assert cycle_of(rpc, ("task", e), ("task", sub["id"]))[0] == ("task", e)
    # none of the refused edges was stored
    assert rows(work_daemon, "SELECT count(*) FROM dependencies WHERE kind = 'blocks'"
                " AND from_type = 'task' AND from_id IN (?, ?)", a, f) == [(0,)]  # fmt: skip


def test_a_move_that_would_close_a_cycle_is_refused_and_changes_nothing(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a"], ["b"]])
    a, b = steps(tree)["a"]["id"], steps(tree)["b"]["id"]
    p1 = tree["phases"][1]["id"]
    blocks(rpc, ("phase", p1), ("task", a))  # phase 1 waits on a: a may not join phase 1
    e = error(rpc, "tasks.move", {"id": a, "phase": p1})
    assert e.data["kind"] == "conflict" and e.data["cycle"]
    after = rpc.call("tasks.get", {"id": a})
    assert after["phase_id"] == tree["phases"][0]["id"] and after["position"] == 0
    assert [(t,) for t in (0,)] == rows(work_daemon, "SELECT position FROM tasks WHERE id = ?", b)


# --- ready work -------------------------------------------------------------------------------
def test_ready_is_ranked_by_priority_then_urgency(work_daemon: DaemonProcess, rpc: Client) -> None:
    project = new_project(work_daemon, rpc)

    def todo(title: str, **extra: object) -> int:
        return int(rpc.call("tasks.add", {"project": project, "title": title, **extra})["id"])

    now = datetime.now(UTC)
    plain = todo("plain")
    later = todo("later")
    overdue = todo("overdue", due_at=(now - timedelta(days=10)).isoformat())
    todo("far due", due_at=(now + timedelta(days=60)).isoformat())
    urgent = todo("urgent", priority=1)
    key = todo("key")
    for n in range(2):
        waiting = todo(f"waits {n}", priority=9)
        rpc.call("deps.add", {"from_type": "task", "from_id": waiting, "to_type": "task",
                              "to_id": key})  # fmt: skip
    todo("deferred", defer_until=(now + timedelta(days=1)).isoformat())
    todo("done", status="completed")
    got = rpc.call("tasks.ready", {"project": project, "limit": 10})
    titles = [t["title"] for t in got["items"]]
    # priority 1 first; then key (releases two: 16), overdue (due 12), far due (2.4), then the
    # two plain ones by age; the blocked, deferred and done ones not at all.
    assert titles == ["urgent", "key", "overdue", "far due", "plain", "later"], titles
    assert got["total"] == 6
    by_id = {t["id"]: t for t in got["items"]}
    assert by_id[key]["urgency"] > by_id[overdue]["urgency"] > by_id[plain]["urgency"] >= 0
    assert by_id[plain]["urgency"] >= by_id[later]["urgency"]
    assert [t["title"] for t in rpc.call("tasks.ready", {"project": project, "limit": 2})[
        "items"]] == ["urgent", "key"]  # fmt: skip
    assert urgent in {t["id"] for t in rpc.call("tasks.ready", {"limit": 1000})["items"]}


def test_ready_across_projects_and_a_subtask_stands_for_its_parent(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    one, two = new_project(work_daemon, rpc), new_project(work_daemon, rpc)
    a = rpc.call("tasks.add", {"project": one, "title": "in one", "priority": 1})
    b = rpc.call("tasks.add", {"project": two, "title": "in two", "priority": 1})
    sub = rpc.call("tasks.add", {"parent": b["id"], "title": "part of two"})
    every = {t["id"] for t in rpc.call("tasks.ready", {"limit": 1000})["items"]}
    assert a["id"] in every and sub["id"] in every and b["id"] not in every
    only_two = rpc.call("tasks.ready", {"project": two})
    assert [t["id"] for t in only_two["items"]] == [sub["id"]] and only_two["total"] == 1
    rpc.call("tasks.complete", {"id": sub["id"]})
    assert [t["id"] for t in rpc.call("tasks.ready", {"project": two})["items"]] == [b["id"]]


def test_next_goes_in_phase_then_step_order_into_subtasks_and_past_blocked_steps(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a", "b"], ["c"]])
    s = steps(tree)
    rpc.call("phases.move", {"id": tree["phases"][1]["id"], "position": 0})
    assert rpc.call("tasks.next", {"plan": tree["id"]})["task"]["title"] == "c"
    rpc.call("phases.move", {"id": tree["phases"][1]["id"], "position": 1})
    sub = rpc.call("tasks.add", {"parent": s["a"]["id"], "title": "a.1"})
    assert rpc.call("tasks.next", {"plan": tree["id"]})["task"]["id"] == sub["id"]
    blocks(rpc, ("task", s["a"]["id"]), ("task", s["c"]["id"]))
    assert rpc.call("tasks.next", {"plan": tree["id"]})["task"]["title"] == "b"
    rpc.call("tasks.complete", {"id": s["b"]["id"]})
    assert rpc.call("tasks.next", {"plan": tree["id"]})["task"]["title"] == "c"
    rpc.call("tasks.complete", {"id": s["c"]["id"]})
    assert rpc.call("tasks.next", {"plan": tree["id"]})["task"]["id"] == sub["id"]
    rpc.call("tasks.complete", {"id": sub["id"]})
    rpc.call("tasks.complete", {"id": s["a"]["id"]})
    assert rpc.call("tasks.next", {"plan": tree["id"]})["task"] is None


def test_status_changes_record_their_times_and_blocked_needs_a_reason(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    todo = rpc.call("tasks.add", {"project": project, "title": "t", "active_form": "Doing t"})
    started = rpc.call("tasks.update", {"id": todo["id"], "status": "in_progress"})
    assert started["started_at"] is not None and started["active_form"] == "Doing t"
    e = error(rpc, "tasks.update", {"id": todo["id"], "status": "blocked"})
    assert e.code == -32602 and e.data["field"] == "blocked_reason"
    held = rpc.call("tasks.update", {"id": todo["id"], "status": "blocked",
                                     "blocked_reason": "waiting on legal"})  # fmt: skip
    assert held["blocked_reason"] == "waiting on legal"
    done = rpc.call("tasks.update", {"id": todo["id"], "status": "completed"})
    assert done["completed_at"] is not None and done["blocked_reason"] is None
    reopened = rpc.call("tasks.update", {"id": todo["id"], "status": "pending"})
    assert reopened["completed_at"] is None


def test_update_many_is_all_or_nothing_and_names_the_item(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    """Project Memory's batchUpdateSteps: one transaction for every item."""
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a", "b", "c"]])
    a, b, c = (steps(tree)[n]["id"] for n in "abc")
    done = rpc.call("tasks.update_many", {"updates": [
        {"id": a, "status": "completed"}, {"id": b, "title": "b2", "priority": 2},
    ]})  # fmt: skip
    assert [(t["status"], t["title"]) for t in done] == [("completed", "a"), ("pending", "b2")]
    e = error(rpc, "tasks.update_many", {"updates": [
        {"id": b, "title": "b3"}, {"id": c, "status": "blocked"},  # no reason: refused
    ]})  # fmt: skip
    assert e.code == -32602 and e.data["index"] == 1 and "updates[1]" in e.message
    assert rpc.call("tasks.get", {"id": b})["title"] == "b2"  # the first item was undone too


def test_deps_check_answers_without_adding(work_daemon: DaemonProcess, rpc: Client) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a", "b"]])
    a, b = steps(tree)["a"]["id"], steps(tree)["b"]["id"]
    blocks(rpc, ("task", b), ("task", a))
    ask = {"from_type": "task", "from_id": a, "to_type": "task", "to_id": b}
    assert rpc.call("deps.check", ask)["cycle"] == [
        {"type": "task", "id": a}, {"type": "task", "id": b}, {"type": "task", "id": a}
    ]  # fmt: skip
    fine = {"from_type": "task", "from_id": b, "to_type": "plan", "to_id": make_plan(
        rpc, project, [["x"]])["id"]}  # fmt: skip
    assert rpc.call("deps.check", fine)["cycle"] is None
    assert rows(work_daemon, "SELECT count(*) FROM dependencies WHERE from_id = ? AND"
                " from_type = 'task'", a) == [(0,)]  # fmt: skip


def test_ready_counts_stay_true_through_every_kind_of_change(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    """tasks.ready's total reads counts the schema's triggers keep: they match a recount after
    adds, claims, completions, blocking, subtasks, archiving, deletes and a forgotten project."""
    project, gone = new_project(work_daemon, rpc), new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a", "b", "c"], ["d"]])
    s = steps(tree)
    rpc.call("tasks.add", {"project": gone, "title": "todo of a project about to go"})
    blocks(rpc, ("phase", tree["phases"][1]["id"]), ("task", s["c"]["id"]))
    rpc.call("tasks.claim", {"agent": "ann", "id": s["a"]["id"]})
    rpc.call("tasks.add", {"parent": s["b"]["id"], "title": "b.1"})
    other = make_plan(rpc, project, [["x", "y"]])
    rpc.call("plans.archive", {"id": other["id"]})
    rpc.call("tasks.complete", {"id": s["c"]["id"]})
    rpc.call("tasks.delete", {"id": s["a"]["id"]})
    rpc.call("projects.forget", {"project": gone})
    recount = dict(rows(
        work_daemon,
        "SELECT coalesce(project_id, 0), count(*) FROM tasks WHERE status = 'pending'"
        " AND blocked = 0 AND open_subtasks = 0 AND archived = 0 GROUP BY 1",
    ))  # fmt: skip
    counted = {p: n for p, n in rows(work_daemon, "SELECT project_id, ready FROM ready_counts")
               if n}  # fmt: skip
    assert counted == recount
    assert rpc.call("tasks.ready", {"project": project})["total"] == recount[project] == 2
