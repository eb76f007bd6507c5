"""Domain writes under the writes benchmark's load: 64 clients each adding tasks into their own
phase (derived state settled on every add), dependencies between tasks made beforehand
(blocking and cycle checks, derived state), and notes with full-text indexing.

Every request is independent of the replies before it (the load generator does not read them),
so the tasks the dependencies join are made first, in JSON-RPC batches, outside the window.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import common, load
from bench.load import MakeRequest, Totals

CLIENTS = 64
PROCESSES = 4
GOAL_RATE = 10_000.0
# A note of about the size agents write (a paragraph or two): full-text indexing grows with it.
NOTE = (
    "Decided to keep the writer on the event loop for short operations and hand COMMIT to "
    "its thread; measured the batch cycle before and after. Next: the domain writes. "
) * 3


def _line(n: int, method: str, params: dict[str, Any]) -> bytes:
    body = {"jsonrpc": "2.0", "id": n, "method": method, "params": params}
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


@dataclass
class World:
    """What the loads write into: a project, one phase per client, task chains to join."""

    phases: list[int]
    chains: list[list[int]]


def calls(path: str, requests: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Results of `requests`, sent as JSON-RPC batches of 500 on one connection; any error
    raises (the world must be made as asked)."""
    results: list[Any] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        reader = sock.makefile("rb")
        for start in range(0, len(requests), 500):
            chunk = requests[start : start + 500]
            body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p}
                    for i, (m, p) in enumerate(chunk)]  # fmt: skip
            sock.sendall(json.dumps(body).encode() + b"\n")
            replies = sorted(json.loads(reader.readline()), key=lambda r: r["id"])
            for reply in replies:
                if "error" in reply:
                    raise RuntimeError(f"could not make the world: {reply['error']}")
                results.append(reply["result"])
    return results


def prepare(daemon: common.Daemon, chain: int) -> World:
    folder = daemon.root / "dev" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    path = daemon.socket_path
    [project] = calls(path, [("projects.register", {"path": str(folder)})])
    [plan] = calls(path, [("plans.add", {"project": project["id"], "title": "bench"})])
    phases = calls(path, [("phases.add", {"plan": plan["id"], "title": f"client {c}"})
                          for c in range(CLIENTS)])  # fmt: skip
    chains = []
    for phase in phases:
        made = calls(path, [("tasks.add", {"phase": phase["id"], "title": f"step {i}"})
                            for i in range(chain)])  # fmt: skip
        chains.append([m["id"] for m in made])
    return World([p["id"] for p in phases], chains)


def task_requests(world: World) -> Callable[[int, int], MakeRequest]:
    def per_client(worker: int, conn: int) -> MakeRequest:
        phase = world.phases[worker * (CLIENTS // PROCESSES) + conn]
        return lambda n: _line(n, "tasks.add", {"phase": phase, "title": f"task {n}"})

    return per_client


def dependency_requests(world: World) -> Callable[[int, int], MakeRequest]:
    def per_client(worker: int, conn: int) -> MakeRequest:
        chain = world.chains[worker * (CLIENTS // PROCESSES) + conn]

        def make(n: int) -> bytes:
            # Each step waits for the one before it: n-th request, n-th link of the chain.
            return _line(n, "deps.add", {"from_type": "task", "from_id": chain[n],
                                         "to_type": "task", "to_id": chain[n - 1],
                                         "kind": "blocks"})  # fmt: skip

        return make

    return per_client


def note_requests(worker: int, conn: int) -> MakeRequest:
    return lambda n: _line(
        n, "documents.add",
        {"kind": "note", "title": f"note {worker}.{conn}.{n}", "content": f"{NOTE} {n}"},
    )  # fmt: skip


@dataclass
class DomainRun:
    tasks: Totals
    dependencies: Totals
    notes: Totals


def one_run(warmup: float, duration: float) -> DomainRun:
    # Enough links for the fastest client over the window, at several times the goal.
    chain = int((warmup + duration) * GOAL_RATE * 4 / CLIENTS) + 2
    with common.Daemon({"synchronous": "FULL"}) as daemon:
        world = prepare(daemon, chain)

        def under_load(make: Callable[[int, int], MakeRequest]) -> Totals:
            return load.socket_load(
                daemon.socket_path, make, processes=PROCESSES, connections=CLIENTS,
                warmup=warmup, duration=duration,
            )  # fmt: skip

        tasks = under_load(task_requests(world))
        dependencies = under_load(dependency_requests(world))
        notes = under_load(note_requests)
        daemon.stop_cleanly()
    return DomainRun(tasks, dependencies, notes)
