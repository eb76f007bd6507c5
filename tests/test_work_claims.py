"""Claims as leases and completing work, through a real daemon: one holder per task, leases
that run out and come back, completion with who, when and the project's git state, `next`
chains, and 16 clients racing over one queue."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

from client.aio import AsyncClient
from client.sync import Client
from tests.gitrepos import git, make_repo
from tests.helpers import DaemonProcess, wait_for
from tests.work_helpers import error, make_plan, new_project, rows, rpc, steps, work_daemon

__all__ = ["rpc", "work_daemon"]


def test_one_holder_at_a_time_and_only_the_holder_completes(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    task = rpc.call("tasks.add", {"project": project, "title": "t"})["id"]
    got = rpc.call("tasks.claim", {"agent": "ann", "id": task, "lease_s": 60})
    assert got["task"]["claimed_by"] == "ann" and got["task"]["status"] == "in_progress"
    assert got["task"]["assigned_agent"] == "ann" and got["lease_until"] > got["task"]["claimed_at"]
    e = error(rpc, "tasks.claim", {"agent": "bob", "id": task})
    assert e.data["kind"] == "conflict" and e.data["claimed_by"] == "ann"
    assert task not in {t["id"] for t in rpc.call("tasks.ready", {"project": project})["items"]}
    e = error(rpc, "tasks.complete", {"id": task, "agent": "bob"})
    assert e.data["kind"] == "conflict" and "force" in e.message
    assert error(rpc, "tasks.heartbeat", {"id": task, "agent": "bob"}).data["kind"] == "conflict"
    assert error(rpc, "tasks.release", {"id": task, "agent": "bob"}).data["kind"] == "conflict"
    forced = rpc.call("tasks.complete", {"id": task, "agent": "bob", "force": True})
    assert forced["completed"]["completed_by"] == "bob"
    assert forced["completed"]["claimed_by"] is None
    e = error(rpc, "tasks.complete", {"id": task, "agent": "ann"})
    assert e.data["kind"] == "invalid_state"


def test_release_returns_the_task_and_a_claim_of_nothing_ready_is_null(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    task = rpc.call("tasks.add", {"project": project, "title": "t"})["id"]
    assert rpc.call("tasks.claim", {"agent": "ann", "project": project})["task"]["id"] == task
    assert rpc.call("tasks.claim", {"agent": "bob", "project": project}) == {
        "task": None, "lease_until": None
    }  # fmt: skip
    released = rpc.call("tasks.release", {"id": task, "agent": "ann"})
    assert released["status"] == "pending" and released["claimed_by"] is None
    assert rpc.call("tasks.claim", {"agent": "bob", "project": project})["task"]["id"] == task


def test_an_expired_lease_returns_the_task_and_a_heartbeat_keeps_it(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    kept = rpc.call("tasks.add", {"project": project, "title": "kept"})["id"]
    lost = rpc.call("tasks.add", {"project": project, "title": "lost"})["id"]
    seq = rpc.call("events.list", {"since": 0, "limit": 1})["total"]
    rpc.call("tasks.claim", {"agent": "ann", "id": kept, "lease_s": 1})
    rpc.call("tasks.claim", {"agent": "dead", "id": lost, "lease_s": 1})
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # ann is alive: renews twice a second
        rpc.call("tasks.heartbeat", {"id": kept, "agent": "ann"})
        time.sleep(0.3)

    def returned() -> dict[str, Any] | None:
        row: dict[str, Any] = rpc.call("tasks.get", {"id": lost})
        return row if row["status"] == "pending" else None

    row = wait_for(returned, timeout=10, what="the expired lease swept")
    assert row["claimed_by"] is None and row["lease_until"] is None and row["reclaims"] == 1
    assert rpc.call("tasks.get", {"id": kept})["claimed_by"] == "ann"
    events = rpc.call("events.list", {"since": seq, "topics": ["tasks"], "limit": 1000})["items"]
    expired = [e["data"] for e in events if e["type"] == "tasks.lease_expired"]
    assert [(e["id"], e["agent"], e["changed"]["status"]) for e in expired] == [
        (lost, "dead", "pending")
    ]
    assert rpc.call("tasks.claim", {"agent": "bob", "id": lost})["task"]["claimed_by"] == "bob"
    # the dead agent comes back: its claim is gone
    assert error(rpc, "tasks.heartbeat", {"id": lost, "agent": "dead"}).data["kind"] == "conflict"


def test_an_update_by_the_holder_renews_the_lease(work_daemon: DaemonProcess, rpc: Client) -> None:
    project = new_project(work_daemon, rpc)
    task = rpc.call("tasks.add", {"project": project, "title": "t"})["id"]
    first = rpc.call("tasks.claim", {"agent": "ann", "id": task, "lease_s": 600})["lease_until"]
    time.sleep(0.01)
    later = rpc.call("tasks.update", {"id": task, "notes": ["halfway"]})["lease_until"]
    assert later > first


def test_complete_records_who_when_and_the_git_state(
    work_daemon: DaemonProcess, rpc: Client, tmp_path: Path
) -> None:
    repo = make_repo(work_daemon.dev_root / "repo-for-complete", home=tmp_path)
    git(repo, "checkout", "-q", "-b", "feature/x", home=tmp_path)
    head = git(repo, "rev-parse", "HEAD", home=tmp_path).strip()
    project = rpc.call("projects.register", {"path": str(repo)})["id"]
    wait_for(lambda: rpc.call("projects.get", {"project": project})["head_sha"] == head,
             what="the scanner reading the repository")  # fmt: skip
    task = rpc.call("tasks.add", {"project": project, "title": "t"})["id"]
    rpc.call("tasks.claim", {"agent": "ann", "id": task})
    done = rpc.call("tasks.complete", {"id": task, "agent": "ann"})["completed"]
    assert (done["completed_by"], done["completed_branch"], done["completed_head"]) == (
        "ann", "feature/x", head
    )  # fmt: skip
    assert done["completed_at"] >= done["started_at"] and done["status"] == "completed"


def test_complete_next_chains_through_a_plan_for_the_same_agent(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    tree = make_plan(rpc, project, [["a", "b"], ["c"]])
    claim = rpc.call("tasks.claim", {"agent": "ann", "plan": tree["id"]})
    order = [claim["task"]["title"]]
    current = claim["task"]["id"]
    while True:
        done = rpc.call("tasks.complete", {"id": current, "agent": "ann", "next": True})
        if done["next"] is None:
            break
        assert done["next"]["claimed_by"] == "ann" and done["lease_until"]
        order.append(done["next"]["title"])
        current = done["next"]["id"]
    assert order == ["a", "b", "c"]
    assert rpc.call("plans.get", {"id": tree["id"]})["status"] == "completed"
    e = error(rpc, "tasks.complete", {"id": steps(tree)["a"]["id"], "next": True})
    assert e.data["kind"] == "invalid_state"


# --- many agents at once ----------------------------------------------------------------------
async def _race(socket: str, project: int, agents: int, complete: bool) -> dict[str, list[int]]:
    """Each agent claims (or completes-and-claims-next) until nothing is left."""
    got: dict[str, list[int]] = {}

    async def agent(name: str) -> None:
        client = await AsyncClient.connect(socket)
        mine: list[int] = []
        try:
            claim = await client.call("tasks.claim", {"agent": name, "project": project})
            task = claim["task"]
            while task is not None:
                mine.append(task["id"])
                if complete:
                    step = {"id": task["id"], "agent": name, "next": True}
                    done = await client.call("tasks.complete", step)
                    task = done["next"]
                else:
                    claim = await client.call("tasks.claim", {"agent": name, "project": project})
                    task = claim["task"]
        finally:
            await client.close()
        got[name] = mine

    await asyncio.gather(*(agent(f"agent-{n}") for n in range(agents)))
    return got


def _queue(rpc: Client, project: int, n: int) -> set[int]:
    batch = [("tasks.add", {"project": project, "title": f"job {i}", "priority": 1 + i % 9})
             for i in range(n)]  # fmt: skip
    return {rpc.call(method, params)["id"] for method, params in batch}


def test_sixteen_clients_claim_a_thousand_tasks_each_exactly_once(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    queue = _queue(rpc, project, 1000)
    got = asyncio.run(_race(work_daemon.socket_path, project, 16, complete=False))
    claimed = [task for tasks in got.values() for task in tasks]
    assert Counter(claimed).most_common(1)[0][1] == 1  # nobody got a task twice
    assert set(claimed) == queue  # and none was lost
    holders = rows(work_daemon, "SELECT claimed_by, count(*) FROM tasks WHERE project_id = ?"
                   " GROUP BY claimed_by", project)  # fmt: skip
    assert sum(n for _, n in holders) == 1000 and None not in {h for h, _ in holders}
    assert {h: n for h, n in holders} == {name: len(t) for name, t in got.items() if t}
    assert len([name for name, tasks in got.items() if tasks]) > 1  # they really raced


def test_sixteen_clients_complete_next_chains_each_task_once(
    work_daemon: DaemonProcess, rpc: Client
) -> None:
    project = new_project(work_daemon, rpc)
    queue = _queue(rpc, project, 400)
    got = asyncio.run(_race(work_daemon.socket_path, project, 16, complete=True))
    done = [task for tasks in got.values() for task in tasks]
    assert len(done) == len(set(done)) and set(done) == queue
    by = dict(rows(work_daemon, "SELECT id, completed_by FROM tasks WHERE project_id = ?"
                   " AND status = 'completed'", project))  # fmt: skip
    assert len(by) == 400 and all(by[t] == name for name, tasks in got.items() for t in tasks)
