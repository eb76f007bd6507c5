"""The rest of the memory through a real daemon: a checkpoint save/restore round trip (with the
safety checkpoint first), context.brief within its budget, a stale agent's claims released,
continue points, lineage archived with its plan, session files, metrics per day and per
agent, and events.list by project, topic and time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import DaemonFactory
from tests.gitrepos import make_repo
from tests.helpers import DaemonProcess, wait_for


def project(daemon: DaemonProcess, name: str = "shop", **files: str) -> Path:
    repo = make_repo(daemon.dev_root / name, files={"README.md": "x\n", **files})
    daemon.call("projects.scan")
    return repo


def work(daemon: DaemonProcess, repo: Path) -> dict[str, Any]:
    plan = daemon.call("plans.add", {"project": str(repo), "title": "Checkout"})
    design = daemon.call("phases.add", {"plan": plan["id"], "title": "Design"})
    build = daemon.call("phases.add", {"plan": plan["id"], "title": "Build"})
    steps = [daemon.call("tasks.add", {"phase": design["id"], "title": f"design {i}"})
             for i in range(3)]  # fmt: skip
    todo = daemon.call("tasks.add", {"project": str(repo), "title": "a todo"})
    return {"plan": plan, "phases": [design, build], "steps": steps, "todo": todo}


def shape(daemon: DaemonProcess, plan_id: int) -> Any:
    got = daemon.call("plans.get", {"id": plan_id})
    return [(p["id"], p["title"], p["position"], [(t["id"], t["title"], t["status"],
             t["position"]) for t in p["tasks"]]) for p in got["phases"]]  # fmt: skip


def test_checkpoint_save_and_restore_round_trip(daemon: DaemonProcess) -> None:
    repo = project(daemon)
    made = work(daemon, repo)
    plan_id = made["plan"]["id"]
    before = shape(daemon, plan_id)
    saved = daemon.call("checkpoints.save", {"project": "shop", "name": "before the rework",
                                             "reason": "about to reorder"})  # fmt: skip
    head = daemon.call("projects.get", {"project": "shop"})["head_sha"]
    assert saved["git_commit"] == head and saved["counts"]["tasks"] == 4
    assert saved["counts"]["plans"] == 1 and saved["counts"]["phases"] == 2

    # Work moves on: a step renamed and done, one deleted, one added, a phase moved, a plan.
    steps = made["steps"]
    daemon.call("tasks.update", {"id": steps[0]["id"], "title": "renamed"})
    daemon.call("tasks.update", {"id": steps[0]["id"], "status": "completed"})
    daemon.call("tasks.delete", {"id": steps[1]["id"]})
    added = daemon.call("tasks.add", {"phase": made["phases"][1]["id"], "title": "new step"})
    daemon.call("phases.move", {"id": made["phases"][1]["id"], "position": 0})
    other = daemon.call("plans.add", {"project": "shop", "title": "Later plan"})
    assert shape(daemon, plan_id) != before

    restored = daemon.call("checkpoints.restore", {"id": saved["id"]})
    assert restored["deleted"]["tasks"] == 1 and restored["deleted"]["plans"] == 1
    assert shape(daemon, plan_id) == before
    assert daemon.call_error("plans.get", {"id": other["id"]}).data["kind"] == "not_found"
    assert daemon.call_error("tasks.get", {"id": added["id"]}).data["kind"] == "not_found"
    assert daemon.call("tasks.get", {"id": steps[1]["id"]})["title"] == "design 1"  # back

    # The safety checkpoint holds what was there; restoring it undoes the restore.
    safety = restored["safety_checkpoint"]
    assert safety["kind"] == "safety" and safety["counts"]["tasks"] == 4
    daemon.call("checkpoints.restore", {"id": safety["id"]})
    assert daemon.call("tasks.get", {"id": added["id"]})["title"] == "new step"
    assert daemon.call("tasks.get", {"id": steps[0]["id"]})["status"] == "completed"
    listed = daemon.call("checkpoints.list", {"project": "shop"})
    assert [c["kind"] for c in listed["items"]] == ["safety", "safety", "manual"]  # newest first
    events = daemon.call("events.list", {"topics": ["checkpoints.restored"]})
    assert events["total"] == 2


def test_brief_is_one_call_within_its_budget(daemon: DaemonProcess) -> None:
    long_rules = "# Rules\n" + "".join(f"Rule {i}: keep it simple.\n" for i in range(400))
    repo = project(daemon, **{"AGENTS.md": long_rules, "api/AGENTS.md": "# API\nJSON only.\n",
                              ".github/skills/py/SKILL.md": "---\nname: py-style\n"
                              "languages: [Python]\n---\nRuff.\n"})  # fmt: skip
    daemon.call("instructions.refresh", {"project": "shop"})
    made = work(daemon, repo)
    daemon.call("tasks.claim", {"agent": "ada", "id": made["steps"][0]["id"]})
    daemon.call("continue_points.add", {"project": "shop", "task": made["steps"][0]["id"],
                                        "last_action": "wrote the schema", "file": "api/db.py",
                                        "line": 42, "next_steps": ["add the index"],
                                        "agent": "ada"})  # fmt: skip
    session = daemon.call("sessions.start", {"project": "shop", "agent": "ada"})
    daemon.call("sessions.end", {"id": session["id"], "summary": "Schema drafted."})
    daemon.call(
        "documents.add",
        {
            "kind": "episode",
            "type": "decision",
            "project": "shop",
            "title": "Orders keep their prices",
            "content": "…",
        },
    )

    full = daemon.call("context.brief", {"path": str(repo / "api/db.py"), "agent": "ada",
                                         "max_chars": 50_000})  # fmt: skip
    assert [t["title"] for t in full["claims"]] == ["design 0"]
    assert full["continue_point"]["line"] == 42
    assert [i["path"] for i in full["instructions"]] == ["api/AGENTS.md", "AGENTS.md"]
    assert full["ready"] and full["session"]["summary"] == "Schema drafted."
    assert [s["title"] for s in full["skills"]] == ["py-style"]
    assert [n["title"] for n in full["notes"]] == ["Orders keep their prices"]
    assert full["omitted"] == {} and "Rule 399" in full["markdown"]
    for budget in (4000, 1000, 300):
        brief = daemon.call("context.brief", {"project": "shop", "agent": "ada",
                                              "max_chars": budget})  # fmt: skip
        assert len(brief["markdown"]) <= budget, budget
        assert brief["omitted"], budget  # something had to give
        assert "design 0" in brief["markdown"]  # the claim, the most useful, always stays
    small = daemon.call("context.brief", {"project": "shop", "agent": "ada", "max_chars": 1000})
    assert small["omitted"].get("instructions") and "Rule 399" not in small["markdown"]
    error = daemon.call_error("context.brief", {"max_chars": 1000})
    assert error.code == -32602


def test_a_stale_agents_claims_are_released(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(config={"agent_stale_s": 1.5}).start()
    repo = project(daemon)
    made = work(daemon, repo)
    daemon.call("agents.add", {"name": "crashy", "type": "coder", "model_name": "m"})
    daemon.call("agents.heartbeat", {"agent": "steady"})  # registered on first sign of life
    claimed = daemon.call("tasks.claim", {"agent": "crashy", "id": made["todo"]["id"],
                                          "lease_s": 3600})  # fmt: skip
    assert claimed["task"]["claimed_by"] == "crashy"

    def stale() -> bool:
        daemon.call("agents.heartbeat", {"agent": "steady", "tokens": 10})
        return bool(daemon.call("agents.list", {"status": "stale"})["items"])

    wait_for(stale, 15, "the silent agent to be marked stale")
    [agent] = daemon.call("agents.list", {"status": "stale"})["items"]
    assert agent["name"] == "crashy"
    task = daemon.call("tasks.get", {"id": made["todo"]["id"]})
    assert (task["claimed_by"], task["status"]) == (None, "pending")
    marked = daemon.call("events.list", {"topics": ["agents.stale"]})["items"]
    assert marked[0]["data"]["released_tasks"] == [made["todo"]["id"]]
    steady = daemon.call("agents.list", {"name": "steady"})["items"][0]
    assert steady["status"] == "idle" and steady["tokens_used"] > 0
    back = daemon.call("agents.heartbeat", {"agent": "crashy"})
    assert back["status"] == "idle"


def test_continue_points_lineage_and_session_files(daemon: DaemonProcess) -> None:
    repo = project(daemon)
    made = work(daemon, repo)
    step = made["steps"][2]
    for action in ("first", "second"):
        daemon.call("continue_points.add", {"project": "shop", "task": step["id"],
                                            "last_action": action})  # fmt: skip
    latest = daemon.call("continue_points.latest", {"project": "shop"})["continue_point"]
    assert (latest["last_action"], latest["plan_id"]) == ("second", made["plan"]["id"])
    assert daemon.call("continue_points.latest", {"agent": "nobody"})["continue_point"] is None
    hand_off = daemon.call(
        "lineage.add",
        {"plan": made["plan"]["id"], "from_agent": "ada", "to_agent": "bob", "reason": "review"},
    )
    assert hand_off["project_id"] == made["plan"]["project_id"]
    daemon.call("plans.archive", {"id": made["plan"]["id"]})
    assert daemon.call("lineage.get", {"id": hand_off["id"]})["archived"] is True
    daemon.call("plans.unarchive", {"id": made["plan"]["id"]})
    assert daemon.call("lineage.get", {"id": hand_off["id"]})["archived"] is False
    session = daemon.call("sessions.start", {"project": "shop"})
    first = daemon.call("session_files.set", {"session": session["id"],
                                              "included": ["a.py", "b.py"],
                                              "excluded": ["secrets.env"]})  # fmt: skip
    assert (first["added"], first["changed"]) == (3, 0)
    again = daemon.call("session_files.set", {"session": session["id"], "excluded": ["b.py"]})
    assert (again["added"], again["changed"]) == (0, 1)
    files = daemon.call("session_files.list", {"session": session["id"], "status": "excluded"})
    assert sorted(f["path"] for f in files["items"]) == ["b.py", "secrets.env"]
    error = daemon.call_error("session_files.set", {"session": 999, "included": ["x"]})
    assert error.data["kind"] == "not_found"


def test_metrics_per_day_and_per_agent(daemon: DaemonProcess) -> None:
    project(daemon)
    points = [
        ("2026-03-01T09:00:00Z", "ada", 100.0), ("2026-03-01T17:30:00+02:00", "bob", 50.0),
        ("2026-03-02T08:00:00Z", "ada", 25.0), ("2026-03-03T23:59:59.5Z", "ada", 5.0),
    ]  # fmt: skip
    for moment, agent, value in points:
        daemon.call("metrics.add", {"project": "shop", "type": "token_usage", "agent": agent,
                                    "value": value, "timestamp": moment})  # fmt: skip
    daemon.call("metrics.add", {"project": "shop", "type": "task_duration", "value": 12.0})
    series = daemon.call("metrics.series", {"project": "shop"})
    assert [(d["day"], d["count"], d["sum"]) for d in series["days"]] == [
        ("2026-03-01", 2, 150.0), ("2026-03-02", 1, 25.0), ("2026-03-03", 1, 5.0),
    ]  # fmt: skip
    assert series["days"][0]["avg"] == 75.0 and series["days"][0]["max"] == 100.0
    newest = daemon.call("metrics.series", {"project": "shop", "limit": 1})
    assert [d["day"] for d in newest["days"]] == ["2026-03-03"]
    by_agent = daemon.call("metrics.totals", {"project": "shop", "by": "agent"})
    assert [(t["key"], t["sum"]) for t in by_agent["items"]] == [("ada", 130.0), ("bob", 50.0)]
    by_type = daemon.call("metrics.totals", {"by": "type"})
    assert {t["key"] for t in by_type["items"]} == {"token_usage", "task_duration"}
    ranged = daemon.call("metrics.series", {"since": "2026-03-02T00:00:00Z",
                                            "until": "2026-03-03T00:00:00Z"})  # fmt: skip
    assert [d["day"] for d in ranged["days"]] == ["2026-03-02"]
    error = daemon.call_error("metrics.add", {"type": "x", "value": 1, "timestamp": "today"})
    assert (error.code, error.data["field"]) == (-32602, "timestamp")


def test_events_list_by_project_topic_and_time(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(config={"event_retention_max": 5}).start()
    project(daemon, "one")
    project(daemon, "two")
    daemon.call("documents.add", {"kind": "note", "title": "a", "content": "x", "project": "one"})
    middle = daemon.call("events.list", {"limit": 1})["total"]
    moment = daemon.call("events.list", {"since": middle - 1})["items"][0]["ts"]
    daemon.call("documents.add", {"kind": "note", "title": "b", "content": "x", "project": "two"})
    daemon.call("documents.add", {"kind": "note", "title": "c", "content": "x", "project": "one"})
    one = daemon.call("events.list", {"project": "one", "topics": ["documents"]})
    assert [e["data"]["title"] for e in one["items"]] == ["a", "c"]
    later = daemon.call("events.list", {"project": "one", "after": moment, "topics": ["documents"]})
    assert [e["data"]["title"] for e in later["items"]] == ["a", "c"]
    after = daemon.call("events.list", {"after": "2999-01-01T00:00:00Z"})
    assert after["total"] == 0
    before = daemon.call("events.list", {"before": moment})
    assert all(e["ts"] < moment for e in before["items"]) and before["total"] >= 2
    projects = daemon.call("events.list", {"project": "two", "topics": ["projects"]})
    assert projects["total"] >= 1
    # Retention caps the log at event_retention_max (here 5), oldest first.
    total = daemon.call("events.list", {})["total"]
    assert total > 5
    job = daemon.call("jobs.run", {"kind": "retention"})
    wait_for(lambda: daemon.call("jobs.get", {"id": job["id"]})["status"] == "completed", 10)
    assert daemon.call("events.list", {})["total"] <= 5 + 2  # the job's own events came after
