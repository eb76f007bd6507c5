"""Plans, phases and their order, programs, and the Perpetua mapping — through a real daemon
(the contract suite covers plain CRUD, paging, versions and events; this file the rules)."""

from __future__ import annotations

from typing import Any

import pytest

from client.sync import Client
from tests.helpers import DaemonProcess
from tests.work_helpers import error, make_plan, new_project, rows, rpc, steps, work_daemon

__all__ = ["rpc", "work_daemon"]


def positions(rpc: Client, plan_id: int) -> list[tuple[str, int]]:
    return [(p["title"], p["position"]) for p in rpc.call("plans.get", {"id": plan_id})["phases"]]


def test_phases_insert_move_delete_keep_positions_dense(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    plan = rpc.call("plans.add", {"project": project, "title": "order"})["id"]
    for title in ("b", "d"):
        rpc.call("phases.add", {"plan": plan, "title": title})
    a = rpc.call("phases.add", {"plan": plan, "title": "a", "position": 0})
    rpc.call("phases.add", {"plan": plan, "title": "c", "position": 2})
    rpc.call("phases.add", {"plan": plan, "title": "e", "position": 99})  # past the end: last
    assert positions(rpc, plan) == [("a", 0), ("b", 1), ("c", 2), ("d", 3), ("e", 4)]
    rpc.call("phases.move", {"id": a["id"], "position": 3})
    assert positions(rpc, plan) == [("b", 0), ("c", 1), ("d", 2), ("a", 3), ("e", 4)]
    rpc.call("phases.delete", {"id": a["id"]})
    assert positions(rpc, plan) == [("b", 0), ("c", 1), ("d", 2), ("e", 3)]
    stored = rows(work_daemon, "SELECT position FROM phases WHERE plan_id = ? ORDER BY 1", plan)
    assert [p for (p,) in stored] == [0, 1, 2, 3]


def test_steps_insert_at_an_index_move_between_phases_and_delete(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["s1", "s3"], ["t1"]])
    one, two = (p["id"] for p in tree["phases"])
    s2 = rpc.call("tasks.add", {"phase": one, "title": "s2", "position": 1})
    assert s2["project_id"] == project and s2["plan_id"] == tree["id"] and s2["position"] == 1

    def order() -> list[list[str]]:
        got = rpc.call("plans.get", {"id": tree["id"]})
        return [[t["title"] for t in p["tasks"]] for p in got["phases"]]

    assert order() == [["s1", "s2", "s3"], ["t1"]]
    moved = rpc.call("tasks.move", {"id": s2["id"], "phase": two, "position": 0})
    assert moved["phase_id"] == two and moved["position"] == 0
    assert order() == [["s1", "s3"], ["s2", "t1"]]
    rpc.call("tasks.move", {"id": s2["id"], "position": 5})  # within its phase, to the end
    assert order() == [["s1", "s3"], ["t1", "s2"]]
    rpc.call("tasks.delete", {"id": steps(tree)["s1"]["id"]})
    assert order() == [["s3"], ["t1", "s2"]]
    stored = rows(
        work_daemon, "SELECT phase_id, position FROM tasks WHERE plan_id = ? ORDER BY 1, 2",
        tree["id"],
    )  # fmt: skip
    assert stored == [(one, 0), (two, 0), (two, 1)]


def test_plan_tree_puts_subtasks_after_their_parent(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a", "b"]])
    a = steps(tree)["a"]["id"]
    rpc.call("tasks.add", {"parent": a, "title": "a.2"})
    rpc.call("tasks.add", {"parent": a, "title": "a.1", "position": 0})
    got = rpc.call("plans.get", {"id": tree["id"]})
    assert [t["title"] for t in got["phases"][0]["tasks"]] == ["a", "a.1", "a.2", "b"]
    parent = rpc.call("tasks.get", {"id": a})
    assert parent["open_subtasks"] == 2


def test_plans_list_leaves_archived_out_unless_asked(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    kept = rpc.call("plans.add", {"project": project, "title": "kept"})
    gone = rpc.call("plans.add", {"project": project, "title": "gone"})
    rpc.call("plans.archive", {"id": gone["id"]})
    listed = rpc.call("plans.list", {"project": project})
    assert [p["id"] for p in listed["items"]] == [kept["id"]] and listed["total"] == 1
    every = rpc.call("plans.list", {"project": project, "include_archived": True})
    assert {p["id"] for p in every["items"]} == {kept["id"], gone["id"]}


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        ("plans.add", {"title": "x", "status": "done"}, "status"),
        ("plans.add", {"title": "x", "category": "chore"}, "category"),
        ("plans.add", {"title": "x", "kind": "trip"}, "kind"),
        ("phases.add", {"title": "x", "kind": "dreaming"}, "kind"),
        ("tasks.add", {"title": "x", "status": "queued"}, "status"),
        ("tasks.add", {"title": "x", "type": "manual"}, "type"),
        ("tasks.add", {"title": "x", "priority": 0}, "priority"),
        ("tasks.add", {"title": "x", "size": "huge"}, "size"),
        ("deps.add", {"from_type": "step", "from_id": 1, "to_type": "task", "to_id": 2},
         "from_type"),
        ("deps.add", {"from_type": "task", "from_id": 1, "to_type": "task", "to_id": 2,
                      "kind": "informs"}, "kind"),
        ("sessions.start", {"kind": "chat"}, "kind"),
        ("features.add", {"name": "f", "priority": "maybe"}, "priority"),
        ("requirements.add", {"category": "c", "description": "d", "priority": "urgent"},
         "priority"),
    ],
)  # fmt: skip
def test_invalid_enum_values_are_invalid_params_naming_the_field(
    work_daemon: DaemonProcess, rpc: Client, method: str, params: dict[str, Any], field: str
) -> None:
    project = new_project(work_daemon, rpc)
    plan = rpc.call("plans.add", {"project": project, "title": "p"})["id"]
    scope = {"plans.add": {"project": project}, "phases.add": {"plan": plan},
             "tasks.add": {"project": project}, "deps.add": {},
             "sessions.start": {"project": project}, "features.add": {"project": project},
             "requirements.add": {"project": project}}[method]  # fmt: skip
    e = error(rpc, method, {**scope, **params})
    assert e.code == -32602 and e.data["field"] == field, (e.code, e.data)


def test_a_time_without_a_timezone_is_invalid_params(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    for value in ("2030-01-01T00:00:00", "soon", "0001-01-01T00:00:00+14:00"):
        e = error(rpc, "tasks.add", {"project": project, "title": "t", "due_at": value})
        assert e.code == -32602 and e.data["field"] == "due_at"
    ok = rpc.call(
        "tasks.add", {"project": project, "title": "t", "due_at": "2030-01-01T02:00+02:00"}
    )
    assert ok["due_at"] == "2030-01-01T00:00:00.000000Z"


def test_deleting_a_plan_cascades_to_phases_tasks_and_dependencies(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    doomed = make_plan(rpc, project, [["a", "b"], ["c"]])
    other = make_plan(rpc, project, [["x"]])
    x = steps(other)["x"]["id"]
    rpc.call("deps.add", {"from_type": "task", "from_id": x, "to_type": "plan",
                          "to_id": doomed["id"]})  # fmt: skip
    assert rpc.call("tasks.get", {"id": x})["blocked"] is True
    inside = [t["id"] for t in steps(doomed).values()]
    rpc.call("deps.add", {"from_type": "task", "from_id": inside[1], "to_type": "task",
                          "to_id": inside[0]})  # fmt: skip
    rpc.call("plans.delete", {"id": doomed["id"]})
    assert rows(work_daemon, "SELECT count(*) FROM phases WHERE plan_id = ?", doomed["id"]) == [
        (0,)
    ]
    assert rows(work_daemon, "SELECT count(*) FROM tasks WHERE plan_id = ?", doomed["id"]) == [(0,)]
    left = rows(
        work_daemon,
        "SELECT count(*) FROM dependencies WHERE (to_type = 'plan' AND to_id = ?)"
        " OR (to_type = 'task' AND to_id IN (?, ?, ?))",
        doomed["id"], *inside,
    )  # fmt: skip
    assert left == [(0,)]
    assert rpc.call("tasks.get", {"id": x})["blocked"] is False  # released with it


def test_deleting_a_phase_takes_its_steps_and_subtasks(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a"], ["b"]])
    a = steps(tree)["a"]["id"]
    sub = rpc.call("tasks.add", {"parent": a, "title": "a.1"})
    rpc.call("phases.delete", {"id": tree["phases"][0]["id"]})
    assert rows(work_daemon, "SELECT id FROM tasks WHERE id IN (?, ?)", a, sub["id"]) == []
    assert positions(rpc, tree["id"]) == [("phase 1", 0)]


def test_a_todo_survives_its_project_being_forgotten(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    """PM Agent's todos: project ON DELETE SET NULL; plans go with their project."""
    project = new_project(work_daemon, rpc)
    todo = rpc.call("tasks.add", {"project": project, "title": "remember the milk"})
    plan = make_plan(rpc, project, [["s"]])
    rpc.call("projects.forget", {"project": project})
    assert rows(work_daemon, "SELECT project_id FROM tasks WHERE id = ?", todo["id"]) == [(None,)]
    assert rows(work_daemon, "SELECT count(*) FROM plans WHERE id = ?", plan["id"]) == [(0,)]


def test_a_phase_with_tasks_follows_them_and_a_plan_completes_with_its_last_step(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a", "b"]])
    phase = tree["phases"][0]["id"]
    e = error(rpc, "phases.update", {"id": phase, "status": "completed"})
    assert e.data["kind"] == "invalid_state"
    a, b = steps(tree)["a"]["id"], steps(tree)["b"]["id"]
    rpc.call("tasks.update", {"id": a, "status": "in_progress"})
    assert rpc.call("phases.get", {"id": phase})["status"] == "in_progress"
    rpc.call("tasks.complete", {"id": a})
    rpc.call("tasks.complete", {"id": b})
    done = rpc.call("plans.get", {"id": tree["id"]})
    assert done["status"] == "completed" and done["completed_at"] is not None
    assert done["phases"][0]["status"] == "completed"
    rpc.call("tasks.add", {"phase": phase, "title": "one more"})  # the plan opens again
    again = rpc.call("plans.get", {"id": tree["id"]})
    assert again["status"] == "active" and again["completed_at"] is None
    assert again["phases"][0]["status"] == "in_progress"


def test_a_phase_s_status_is_read_from_its_tasks_statuses(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    """Every outcome of a phase's derived status (read with index seeks, not counted)."""
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a", "b", "c"]])
    phase = tree["phases"][0]["id"]
    a, b, c = (steps(tree)[name]["id"] for name in "abc")

    def after(task: int, status: str) -> str:
        change = {"id": task, "status": status}
        if status == "blocked":
            change["blocked_reason"] = "waiting on a review"
        rpc.call("tasks.update", change)
        return str(rpc.call("phases.get", {"id": phase})["status"])

    assert rpc.call("phases.get", {"id": phase})["status"] == "pending"
    assert after(a, "in_review") == "in_progress"
    assert after(a, "failed") == "in_progress"  # b and c not started: still under way
    assert after(b, "cancelled") == "in_progress"
    assert after(c, "completed") == "failed"  # failed, and the rest done with
    assert after(a, "pending") == "in_progress"
    assert after(a, "completed") == "completed"
    assert after(b, "blocked") == "in_progress"
    plan = rpc.call("plans.get", {"id": tree["id"]})
    assert plan["status"] == "active"
    assert after(b, "cancelled") == "completed"
    assert rpc.call("plans.get", {"id": tree["id"]})["status"] == "completed"


def test_upgrade_a_plan_to_a_program_visible_across_projects(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    home, elsewhere = new_project(work_daemon, rpc), new_project(work_daemon, rpc)
    plan = rpc.call("plans.add", {"project": home, "title": "Migration", "priority": "high",
                                  "goals": ["one db"], "category": "refactor"})  # fmt: skip
    program = rpc.call("plans.upgrade", {"id": plan["id"]})
    assert (program["title"], program["priority"], program["goals"], program["category"]) == (
        "Migration",
        "high",
        ["one db"],
        "refactor",
    )
    assert rpc.call("plans.get", {"id": plan["id"]})["program_id"] == program["id"]
    assert error(rpc, "plans.upgrade", {"id": plan["id"]}).data["kind"] == "conflict"
    # Not visible from another project until linked.
    e = error(rpc, "plans.add", {"project": elsewhere, "title": "x", "program": program["id"]})
    assert e.code == -32602 and e.data["field"] == "program"
    assert rpc.call("programs.list", {"project": elsewhere})["total"] == 0
    rpc.call("program_projects.add", {"program": program["id"], "project": elsewhere})
    seen = rpc.call("programs.list", {"project": elsewhere})
    assert [p["id"] for p in seen["items"]] == [program["id"]]
    joined = rpc.call("plans.add", {"project": elsewhere, "title": "x", "program": program["id"]})
    listed = rpc.call("plans.list", {"program": program["id"]})
    assert {p["id"] for p in listed["items"]} == {plan["id"], joined["id"]}


def test_perpetua_journey_is_a_plan_whose_phases_are_its_stages(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    """journeys(input, status, settings) → plans(kind journey, description, status, settings);
    stages(type, status, prompt, result, thinking) → phases(kind, status, prompt, result,
    thinking), ordered; a stage without tasks has its status set by hand."""
    project = new_project(work_daemon, rpc)
    journey = rpc.call("plans.add", {
        "project": project, "kind": "journey", "title": "Why is the build slow?",
        "description": "Why is the build slow?", "settings": {"depth": 3, "model": "m"},
    })  # fmt: skip
    stages = []
    for kind in ("discovering", "chasing", "solving"):
        stages.append(rpc.call("phases.add", {"plan": journey["id"], "title": kind, "kind": kind,
                                              "prompt": f"{kind}?"}))  # fmt: skip
    rpc.call("phases.update", {"id": stages[0]["id"], "status": "in_progress"})
    rpc.call("phases.update", {"id": stages[0]["id"], "status": "completed",
                               "result": "found it", "thinking": "hmm"})  # fmt: skip
    rpc.call("phases.update", {"id": stages[1]["id"], "status": "failed", "result": "error"})
    got = rpc.call("plans.get", {"id": journey["id"]})
    assert got["kind"] == "journey" and got["settings"] == {"depth": 3, "model": "m"}
    assert [(p["kind"], p["status"], p["prompt"]) for p in got["phases"]] == [
        ("discovering", "completed", "discovering?"),
        ("chasing", "failed", "chasing?"),
        ("solving", "pending", "solving?"),
    ]
    assert got["phases"][0]["result"] == "found it" and got["phases"][0]["thinking"] == "hmm"
    assert got["phases"][0]["completed_at"] is not None
    # journey status: running/paused/stopped/complete/error → active/paused/cancelled/…
    paused = rpc.call("plans.update", {"id": journey["id"], "status": "paused"})
    assert paused["status"] == "paused"
    journeys = rpc.call("plans.list", {"project": project, "kind": "journey"})
    assert [j["id"] for j in journeys["items"]] == [journey["id"]]


def test_archived_plan_is_read_only(work_daemon: DaemonProcess, rpc: Client) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a"]])
    rpc.call("plans.archive", {"id": tree["id"]})
    a = steps(tree)["a"]["id"]
    for method, params in (
        ("tasks.update", {"id": a, "title": "b"}),
        ("tasks.add", {"phase": tree["phases"][0]["id"], "title": "new"}),
        ("phases.add", {"plan": tree["id"], "title": "new"}),
        ("plans.update", {"id": tree["id"], "title": "new"}),
        ("tasks.claim", {"agent": "x", "id": a}),
    ):
        assert error(rpc, method, params).data["kind"] == "invalid_state", method


def test_projects_carry_nexus_mode_settings_lifecycle_and_a_parent(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    """Nexus' mode/settings/completed_at/lifecycle and Project Memory's parent workspace, set
    by hand on the projects table (schema 0006)."""
    parent, child = new_project(work_daemon, rpc), new_project(work_daemon, rpc)
    got = rpc.call("projects.update", {
        "project": child, "mode": "evolution", "lifecycle": "in_progress",
        "settings": {"model": "m", "qa": {"max": 3}}, "parent_id": parent,
        "completed_at": "2030-01-01T00:00:00.000000Z",
    })  # fmt: skip
    assert (got["mode"], got["lifecycle"], got["settings"], got["parent_id"]) == (
        "evolution", "in_progress", {"model": "m", "qa": {"max": 3}}, parent
    )  # fmt: skip
    assert got["status"] in ("active", "on-hold", "archived")  # PM Agent's, beside lifecycle
    e = error(rpc, "projects.update", {"project": child, "lifecycle": "done"})
    assert e.code == -32602 and e.data["field"] == "lifecycle"
    e = error(rpc, "projects.update", {"project": child, "mode": "revolution"})
    assert e.code == -32602 and e.data["field"] == "mode"
    rpc.call("projects.forget", {"project": parent})
    assert rpc.call("projects.get", {"project": child})["parent_id"] is None  # ON DELETE SET NULL
