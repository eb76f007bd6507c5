"""Sessions, features and requirements: their own rules through a real daemon."""

from __future__ import annotations

from client.sync import Client
from tests.helpers import DaemonProcess
from tests.work_helpers import error, make_plan, new_project, rows, rpc, steps, work_daemon

__all__ = ["rpc", "work_daemon"]


def test_a_session_starts_with_goals_and_ends_with_what_came_of_it(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    started = rpc.call("sessions.start", {
        "project": project, "kind": "execution", "goals": ["ship the claim race"],
        "agent": "claude", "external_id": "pm-agent-session-1",
        "task_description": "race", "settings": {"model": "m", "regex": "^a"},
        "started_at": "2030-01-01T10:00:00Z",
    })  # fmt: skip
    assert started["status"] == "active" and started["started_at"] == "2030-01-01T10:00:00.000000Z"
    ended = rpc.call("sessions.end", {
        "id": started["id"], "accomplishments": ["done"], "blockers": ["none"],
        "tokens_used": 1234, "summary": "went well", "duration_minutes": 45,
    })  # fmt: skip
    assert (ended["status"], ended["accomplishments"], ended["blockers"], ended["tokens_used"],
            ended["duration_minutes"], ended["summary"]) == (
        "completed", ["done"], ["none"], 1234, 45, "went well")  # fmt: skip
    assert ended["ended_at"] is not None and ended["goals"] == ["ship the claim race"]
    e = error(rpc, "sessions.end", {"id": started["id"]})
    assert e.data["kind"] == "invalid_state"
    now = rpc.call("sessions.start", {"project": project})
    timed = rpc.call("sessions.end", {"id": now["id"], "status": "cancelled"})
    assert timed["duration_minutes"] == 0 and timed["status"] == "cancelled"
    listed = rpc.call("sessions.list", {"project": project, "kind": "execution"})
    assert [s["id"] for s in listed["items"]] == [started["id"]]
    dup = error(rpc, "sessions.start", {"project": project, "external_id": "pm-agent-session-1"})
    assert dup.data["kind"] == "conflict"


def test_a_todo_belongs_to_a_session_of_its_project(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project, other = new_project(work_daemon, rpc), new_project(work_daemon, rpc)
    session = rpc.call("sessions.start", {"project": project})["id"]
    todo = rpc.call("tasks.add", {"project": project, "title": "t", "session": session})
    assert todo["session_id"] == session
    e = error(rpc, "tasks.add", {"project": other, "title": "t", "session": session})
    assert e.code == -32602 and e.data["field"] == "session"
    rpc.call("sessions.delete", {"id": session})
    assert rpc.call("tasks.get", {"id": todo["id"]})["session_id"] is None  # ON DELETE SET NULL


def test_features_count_their_completed_tasks_and_sub_features_stay_in_the_project(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project, other = new_project(work_daemon, rpc), new_project(work_daemon, rpc)
    feature = rpc.call("features.add", {"project": project, "name": "claims", "priority": "must",
                                        "complexity": "complex", "estimated_tasks": 2,
                                        "estimated_hours": 3.5})  # fmt: skip
    sub = rpc.call("features.add", {"project": project, "name": "leases",
                                    "parent": feature["id"]})  # fmt: skip
    assert sub["parent_id"] == feature["id"]
    stranger = rpc.call("features.add", {"project": other, "name": "x"})
    e = error(rpc, "features.update", {"id": feature["id"], "parent_id": sub["id"]})
    assert e.code == -32602 and e.data["field"] == "parent"  # its own sub-feature
    e = error(rpc, "features.add", {"project": project, "name": "y", "parent": stranger["id"]})
    assert e.code == -32602 and e.data["field"] == "parent"
    tree = make_plan(rpc, project, [["a", "b"]])
    for task in steps(tree).values():
        rpc.call("tasks.update", {"id": task["id"], "feature_id": feature["id"]})
    rpc.call("tasks.complete", {"id": steps(tree)["a"]["id"]})
    assert rpc.call("features.get", {"id": feature["id"]})["completed_tasks"] == 1
    rpc.call("tasks.complete", {"id": steps(tree)["b"]["id"]})
    assert rpc.call("features.get", {"id": feature["id"]})["completed_tasks"] == 2
    rpc.call("tasks.update", {"id": steps(tree)["b"]["id"], "status": "pending"})
    assert rpc.call("features.get", {"id": feature["id"]})["completed_tasks"] == 1
    done = rpc.call("features.update", {"id": feature["id"], "status": "completed",
                                        "actual_hours": 4})  # fmt: skip
    assert done["completed_at"] is not None and done["actual_hours"] == 4
    rpc.call("features.delete", {"id": feature["id"]})
    assert rows(work_daemon, "SELECT count(*) FROM features WHERE id = ?", sub["id"]) == [(0,)]


def test_requirements_link_features_of_their_own_project(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project, other = new_project(work_daemon, rpc), new_project(work_daemon, rpc)
    mine = rpc.call("features.add", {"project": project, "name": "f"})["id"]
    theirs = rpc.call("features.add", {"project": other, "name": "g"})["id"]
    req = rpc.call("requirements.add", {
        "project": project, "category": "functional", "description": "agents never collide",
        "user_stories": ["as an agent…"], "acceptance_criteria": ["no double claim"],
        "linked_features": [mine], "confidence": 0.8, "tags": ["core"], "source": "interview",
    })  # fmt: skip
    assert req["linked_features"] == [mine] and req["validated"] is False
    e = error(rpc, "requirements.update", {"id": req["id"], "linked_features": [mine, theirs]})
    assert e.code == -32602 and e.data["field"] == "linked_features"
    e = error(rpc, "requirements.add", {"project": project, "category": "c", "description": "d",
                                        "confidence": 1.5})  # fmt: skip
    assert e.code == -32602 and e.data["field"] == "confidence"
    assert rpc.call("requirements.update", {"id": req["id"], "validated": True})["validated"]
    rpc.call("features.delete", {"id": mine})
    assert rpc.call("requirements.get", {"id": req["id"]})["linked_features"] == []
