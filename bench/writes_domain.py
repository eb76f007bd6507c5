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
from bench.writer_probe import WriterProbe

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
    """What the loads write into, per client: phases (5 to a plan, as plans are made) to add
    tasks into, 20 at a time in each, and a chain of tasks made beforehand to join."""

    phases: list[list[int]]
    chains: list[list[int]]


PHASES_PER_PLAN = 5
TASKS_PER_PHASE = 20


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
    per_plan = PHASES_PER_PLAN * TASKS_PER_PHASE
    plans = -(-chain // per_plan)
    phases, chains = [], []
    for c in range(CLIENTS):
        made = calls(path, [("plans.add", {"project": project["id"], "title": f"{c}.{i}"})
                            for i in range(plans)])  # fmt: skip
        mine = calls(path, [("phases.add", {"plan": plan["id"], "title": f"phase {i}"})
                            for plan in made for i in range(PHASES_PER_PLAN)])  # fmt: skip
        tasks = calls(path, [("tasks.add", {"phase": phase["id"], "title": f"step {i}"})
                             for phase in mine for i in range(TASKS_PER_PHASE)])  # fmt: skip
        phases.append([p["id"] for p in mine])
        chains.append([t["id"] for t in tasks])
    return World(phases, chains)


def task_requests(world: World) -> Callable[[int, int], MakeRequest]:
    def per_client(worker: int, conn: int) -> MakeRequest:
        phases = world.phases[worker * (CLIENTS // PROCESSES) + conn]

        def make(n: int) -> bytes:
            phase = phases[(n // TASKS_PER_PHASE) % len(phases)]  # 20 more in each, in turn
            return _line(n, "tasks.add", {"phase": phase, "title": f"task {n}"})

        return make

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
class Load:
    totals: Totals
    writer_ms: float  # the writer's time per write: its batches' p50 over their mean size
    on_thread: float  # the share of batches the loop handed (in part) to the writer's thread


@dataclass
class DomainRun:
    tasks: Load
    dependencies: Load
    notes: Load


def _chain(warmup: float, duration: float) -> int:
    """Enough links for the fastest client over the window, at several times the goal."""
    return int((warmup + duration) * GOAL_RATE * 2 / CLIENTS) + 2


def under_load(
    daemon: common.Daemon, make: Callable[[int, int], MakeRequest], warmup: float, duration: float
) -> Load:
    probe = WriterProbe(daemon)
    totals = load.socket_load(
        daemon.socket_path, make, processes=PROCESSES, connections=CLIENTS,
        warmup=warmup, duration=duration, probe=probe,
    )  # fmt: skip
    status = probe.status
    on_thread = status.get("batches_on_thread", 0) - probe.at_begin.get("batches_on_thread", 0)
    per_write = float(status.get("batch_ms_p50", 0.0)) / max(probe.mean_batch, 1.0)
    return Load(totals, per_write, on_thread / max(probe.batches, 1))


def tasks_rate(daemon: common.Daemon, warmup: float, duration: float) -> float:
    """Acknowledged tasks.add/s from 64 clients into a running daemon (`bench handoff`)."""
    world = prepare(daemon, _chain(warmup, duration))
    return under_load(daemon, task_requests(world), warmup, duration).totals.rate


def one_run(warmup: float, duration: float) -> DomainRun:
    with common.Daemon({"synchronous": "FULL"}) as daemon:
        world = prepare(daemon, _chain(warmup, duration))
        tasks = under_load(daemon, task_requests(world), warmup, duration)
        dependencies = under_load(daemon, dependency_requests(world), warmup, duration)
        notes = under_load(daemon, note_requests, warmup, duration)
        daemon.stop_cleanly()
    return DomainRun(tasks, dependencies, notes)
