"""Work at Project Memory's load-test scale: ready work, the next step, a whole plan, claims.

Per scenario a fresh daemon (watching, rescans and every schedule off, so nothing but the
benchmark runs) is loaded through its socket: 50 projects x 10 plans x 5 phases x 20 steps =
50,000 steps with 20,000 `blocks` dependencies (40 per plan, each a later step waiting on an
earlier one; priorities 1-9 at random), each plan made by one `plans.import` call. The second
scenario first makes ten times as much — 500,000 steps, 200,000 dependencies — and archives it,
then the same active set.

Measured on one connection, one request at a time (p50 and p99 per run; the tables give the
median over runs with the range): `tasks.ready {limit: 10}` across all projects and for one,
`tasks.next {plan}`, `plans.get {id}` (plan, project and plan picked at random per call); then
claims: 16 clients (two processes of eight) each calling `tasks.claim {agent}` (the next ready
task anywhere) until a run's quota is taken, with every claimed id checked for a second winner.

Baseline, same run, same data (bench/work_baseline.py): the same questions written the obvious
way on a copy of the loaded database without the partial indexes, blocking computed at read
time, in this process without a socket; and claims by 16 processes each choosing and claiming
in its own IMMEDIATE transaction. Beside: the cycle check (the daemon's walk vs a recursive CTE).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import shutil
import socket
import sqlite3
import tempfile
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec

from bench import work_baseline as baseline
from bench.common import Daemon, Table, fmt_rate, fmt_ratio, median, met, percentile, spread
from client.aio import AsyncClient
from daemon.domain.work import graph
from daemon.store.clock import utc_now

PROJECTS, PLANS, PHASES, STEPS, DEPS = 50, 10, 5, 20, 40
ARCHIVED_TIMES = 10
READS = 400  # calls per query per run
CLAIMS_PER_RUN = 1000
CLIENTS, PROCESSES = 16, 2
GOAL_READY_P99, GOAL_GET_P99, GOAL_NEXT_P99 = 5e-3, 5e-3, 2e-3
GOAL_CLAIMS = 2000.0
GOAL_ARCHIVED_RATIO = 1.2
_FORK = multiprocessing.get_context("fork")


def config(root: Path) -> dict[str, str]:
    path = root / "bench-work.toml"
    path.write_text(
        "watch = false\nrescan_interval_s = 0\n"
        '[schedule]\nbackup = "off"\nquality = "off"\nmaintenance = "off"\nretention = "off"\n'
    )
    return {"config": str(path)}


def document(rng: random.Random, n: int) -> dict[str, Any]:
    """One plan: 5 phases x 20 steps, 40 `blocks` edges from a later step to an earlier one."""
    keys = [f"s{p}.{s}" for p in range(PHASES) for s in range(STEPS)]
    phases = [
        {"title": f"phase {p}", "tasks": [
            {"key": f"s{p}.{s}", "title": f"step {p}.{s}", "priority": rng.randint(1, 9)}
            for s in range(STEPS)]}
        for p in range(PHASES)
    ]  # fmt: skip
    edges: set[tuple[int, int]] = set()
    while len(edges) < DEPS:
        early, late = sorted(rng.sample(range(len(keys)), 2))
        edges.add((late, early))
    deps = [{"from": keys[a], "to": keys[b]} for a, b in sorted(edges)]
    return {"title": f"plan {n}", "phases": phases, "dependencies": deps}


class Wire:
    """NDJSON on one socket, pipelined up to `window` requests in flight."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(300.0)
        self.sock.connect(path)
        self.buffer = b""
        self.ids = 0

    def close(self) -> None:
        self.sock.close()

    def _line(self) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        reply: dict[str, Any] = msgspec.json.decode(line)  # as a real client would
        if "error" in reply:
            raise RuntimeError(f"error reply: {str(reply['error'])[:300]}")
        return reply

    def _send(self, method: str, params: dict[str, Any]) -> None:
        self.ids += 1
        message = {"jsonrpc": "2.0", "id": self.ids, "method": method, "params": params}
        self.sock.sendall(msgspec.json.encode(message) + b"\n")

    def call(self, method: str, params: dict[str, Any]) -> Any:
        self._send(method, params)
        return self._line()["result"]

    def calls(self, requests: list[tuple[str, dict[str, Any]]], window: int = 8) -> list[Any]:
        results: dict[int, Any] = {}
        first = self.ids + 1
        sent = 0
        while len(results) < len(requests):
            while sent < len(requests) and sent - len(results) < window:
                self._send(*requests[sent])
                sent += 1
            reply = self._line()
            results[reply["id"]] = reply["result"]
        return [results[first + i] for i in range(len(requests))]


def load(daemon: Daemon, projects: int, archived: int) -> dict[str, list[int]]:
    """Projects, `archived` x their active plans made and archived first, then the active
    plans; returns the active plan ids and project ids."""
    rng = random.Random(15)
    wire = Wire(daemon.socket_path)
    try:
        project_ids = []
        for n in range(projects):
            folder = daemon.root / "dev" / f"project-{n:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            project_ids.append(wire.call("projects.register", {"path": str(folder)})["id"])
        counter = iter(range(10**9))
        for project in project_ids:
            made = wire.calls([("plans.import", {"project": project,
                                                 "document": document(rng, next(counter))})
                               for _ in range(PLANS * archived)])  # fmt: skip
            wire.calls([("plans.archive", {"id": plan["id"]}) for plan in made], window=32)
        plans: list[int] = []
        for project in project_ids:
            made = wire.calls([("plans.import", {"project": project,
                                                 "document": document(rng, next(counter))})
                               for _ in range(PLANS)])  # fmt: skip
            plans += [plan["id"] for plan in made]
        return {"projects": project_ids, "plans": plans}
    finally:
        wire.close()


def timed(call: Callable[[], Any], count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


QUERIES = ("tasks.ready (all)", "tasks.ready (project)", "tasks.next", "plans.get")


def read_latencies(path: str, made: dict[str, list[int]], seed: int) -> dict[str, list[float]]:
    rng = random.Random(seed)
    wire = Wire(path)
    try:
        wire.calls([("tasks.ready", {"limit": 10})] * 50)  # warm
        return {
            "tasks.ready (all)": timed(lambda: wire.call("tasks.ready", {"limit": 10}), READS),
            "tasks.ready (project)": timed(
                lambda: wire.call(
                    "tasks.ready", {"project": rng.choice(made["projects"]), "limit": 10}
                ),
                READS,
            ),
            "tasks.next": timed(
                lambda: wire.call("tasks.next", {"plan": rng.choice(made["plans"])}), READS
            ),
            "plans.get": timed(
                lambda: wire.call("plans.get", {"id": rng.choice(made["plans"])}), READS
            ),
        }
    finally:
        wire.close()


def baseline_latencies(conn: sqlite3.Connection, made: dict[str, list[int]], seed: int,
                       count: int) -> dict[str, list[float]]:  # fmt: skip
    rng = random.Random(seed)
    now = utc_now()
    return {
        "tasks.ready (all)": timed(lambda: baseline.ready(conn, now, None, 10), count),
        "tasks.ready (project)": timed(
            lambda: baseline.ready(conn, now, rng.choice(made["projects"]), 10), count
        ),
        "tasks.next": timed(
            lambda: baseline.next_step(conn, now, rng.choice(made["plans"])), count
        ),
        "plans.get": timed(lambda: baseline.plan_tree(conn, rng.choice(made["plans"])), count),
    }


# --- claims ---------------------------------------------------------------------------------
def _claimer(path: str, names: list[str], quota: int, pipe: Connection) -> None:
    async def main() -> list[int]:
        clients = [await AsyncClient.connect(path) for _ in names]
        pipe.send("ready")
        pipe.recv()
        got: list[int] = []

        async def agent(client: AsyncClient, name: str) -> None:
            while len(got) < quota:
                claim = await client.call("tasks.claim", {"agent": name})
                if claim["task"] is None:
                    return
                got.append(claim["task"]["id"])

        await asyncio.gather(*(agent(c, n) for c, n in zip(clients, names, strict=True)))
        for client in clients:
            await client.close()
        return got

    try:
        pipe.send(asyncio.run(main()))
    except BaseException:
        pipe.send(traceback.format_exc())


def _baseline_claimer(db: str, name: str, quota: int, pipe: Connection) -> None:
    try:
        conn = sqlite3.connect(db, isolation_level=None, timeout=60.0)
        pipe.send("ready")
        pipe.recv()
        got: list[int] = []
        while len(got) < quota:
            claimed = baseline.claim(conn, utc_now(), name)
            if claimed is None:
                break
            got.append(claimed)
        pipe.send(got)
    except BaseException:
        pipe.send(traceback.format_exc())


def race(target: Callable[..., None], argsets: list[tuple[Any, ...]]) -> tuple[float, list[int]]:
    """Start every worker, release them at once; (claims per second, every id claimed)."""
    pipes, procs = [], []
    for args in argsets:
        mine, theirs = _FORK.Pipe()
        proc = _FORK.Process(target=target, args=(*args, theirs), daemon=True)
        proc.start()
        pipes.append(mine)
        procs.append(proc)
    for pipe in pipes:
        if pipe.recv() != "ready":
            raise RuntimeError("a claimer failed to start")
    started = time.perf_counter()
    for pipe in pipes:
        pipe.send("go")
    ids: list[int] = []
    for pipe in pipes:
        got = pipe.recv()
        if isinstance(got, str):
            raise RuntimeError(got)
        ids += got
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join(10)
    return len(ids) / elapsed, ids


def claims(path: str, run: int) -> tuple[float, list[int]]:
    names = [f"r{run}-agent-{n}" for n in range(CLIENTS)]
    per = CLIENTS // PROCESSES
    quota = CLAIMS_PER_RUN // PROCESSES
    return race(_claimer, [(path, names[i * per : (i + 1) * per], quota) for i in range(PROCESSES)])


# --- the cycle check -------------------------------------------------------------------------
def cycle_checks(conn: sqlite3.Connection, plans: list[int], seed: int) -> dict[str, list[float]]:
    """Edges a person might add within a plan (a later step on an earlier one), checked by the
    daemon's walk and by a recursive CTE; both must agree."""
    rng = random.Random(seed)
    pairs = []
    for plan in rng.sample(plans, min(100, len(plans))):
        ids = [r[0] for r in conn.execute(
            "SELECT t.id FROM tasks AS t JOIN phases AS p ON p.id = t.phase_id"
            " WHERE t.plan_id = ? ORDER BY p.position, t.position", (plan,))]  # fmt: skip
        early, late = sorted(rng.sample(range(len(ids)), 2))
        pairs.append(((("task", ids[late]), ("task", ids[early])),
                      (("task", ids[early]), ("task", ids[late]))))  # fmt: skip
    walk, cte = [], []
    for forward, backward in pairs:
        for source, target in (forward, backward):
            started = time.perf_counter()
            found = graph.cycle_through(conn, source, target) is not None  # type: ignore[arg-type]
            walk.append(time.perf_counter() - started)
            started = time.perf_counter()
            agreed = baseline.cycle_cte(conn, source, target)
            cte.append(time.perf_counter() - started)
            if found != agreed:
                raise AssertionError(f"walk and CTE disagree on {source} → {target}")
    return {"walk": walk, "cte": cte}


# --- the run ---------------------------------------------------------------------------------
def scenario(archived: int, runs: int, projects: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="pm-bench-work-"))
    try:
        return _scenario(root, archived, runs, projects)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _scenario(root: Path, archived: int, runs: int, projects: int) -> dict[str, Any]:
    with Daemon(config(root)) as daemon:
        started = time.perf_counter()
        made = load(daemon, projects, archived)
        setup_s = time.perf_counter() - started
        reads = [read_latencies(daemon.socket_path, made, seed) for seed in range(runs)]
        copy = root / "baseline.db"
        conn = baseline.prepare(daemon.db_path, copy)
        base = [baseline_latencies(conn, made, seed, max(20, READS // 20)) for seed in range(runs)]
        cycles = cycle_checks(conn, made["plans"], 1) if archived == 0 else None
        rates, claimed = [], []
        for run in range(runs):
            rate, ids = claims(daemon.socket_path, run)
            rates.append(rate)
            claimed += ids
        doubles = len(claimed) - len(set(claimed))
        base_rate = None
        if archived == 0:
            conn.close()
            quota = max(2, CLAIMS_PER_RUN // 50 // CLIENTS)
            base_rate, base_ids = race(_baseline_claimer, [(str(copy), f"b{n}", quota)
                                                           for n in range(CLIENTS)])  # fmt: skip
            doubles += len(base_ids) - len(set(base_ids))
        size = daemon.db_path.stat().st_size
    return {"reads": reads, "base": base, "cycles": cycles, "rates": rates, "doubles": doubles,
            "claimed": len(claimed), "base_rate": base_rate, "setup_s": setup_s,
            "size": size, "plans": len(made["plans"])}  # fmt: skip


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def per_run(samples: list[dict[str, list[float]]], name: str, p: float) -> list[float]:
    return [percentile(s[name], p) for s in samples]


def main(runs: int, quick: bool) -> int:
    projects = 5 if quick else PROJECTS
    none = scenario(0, runs, projects)
    heavy = scenario(ARCHIVED_TIMES, runs, projects)
    goals = {"tasks.ready (all)": GOAL_READY_P99, "tasks.ready (project)": GOAL_READY_P99,
             "tasks.next": GOAL_NEXT_P99, "plans.get": GOAL_GET_P99}  # fmt: skip
    table = Table(
        f"Reads through the socket, {none['plans'] * PHASES * STEPS:,} active steps "
        f"(median over {runs} runs of each run's p50 / p99, range in brackets)",
        ["query", "p50", "p99", f"p99 with {ARCHIVED_TIMES}x archived", "archived / none (p50)",
         "baseline p50 / p99 (no socket)", "ours vs baseline (p50)", "goal p99"],
    )  # fmt: skip
    ok = True
    for name in QUERIES:
        p50 = per_run(none["reads"], name, 50)
        p99 = per_run(none["reads"], name, 99)
        heavy50 = per_run(heavy["reads"], name, 50)
        heavy99 = per_run(heavy["reads"], name, 99)
        b50, b99 = per_run(none["base"], name, 50), per_run(none["base"], name, 99)
        ratio = median(heavy50) / median(p50)
        good = max(median(p99), median(heavy99)) <= goals[name] and ratio <= GOAL_ARCHIVED_RATIO
        ok = ok and good
        table.add(name, spread(p50, _ms), spread(p99, _ms), spread(heavy99, _ms), f"{ratio:.2f}x",
                  f"{_ms(median(b50))} / {_ms(median(b99))}", fmt_ratio(median(b50), median(p50)),
                  f"≤ {_ms(goals[name])}: {met(good)}")  # fmt: skip
    print(table.render())
    claims_table = Table(
        f"Claims: {CLIENTS} clients, {CLAIMS_PER_RUN:,} claims per run",
        ["scenario", "claims/s", "double claims", f"goal ≥ {fmt_rate(GOAL_CLAIMS)}"],
    )
    for label, got in (("nothing archived", none), (f"{ARCHIVED_TIMES}x archived", heavy)):
        good = median(got["rates"]) >= GOAL_CLAIMS and got["doubles"] == 0
        ok = ok and good
        claims_table.add(label, spread(got["rates"], fmt_rate), str(got["doubles"]), met(good))
    claims_table.add("baseline (16 processes, IMMEDIATE transactions, ready at read time)",
                     fmt_rate(none["base_rate"]), "0" if none["doubles"] == 0 else "see above",
                     "")  # fmt: skip
    print(claims_table.render())
    cycles = none["cycles"]
    cycle_table = Table(
        "The cycle check on the loaded graph (200 edges within plans, both directions)",
        ["method", "p50", "p99"],
    )
    for label, key in (("in-memory walk (the daemon's)", "walk"), ("recursive CTE", "cte")):
        cycle_table.add(label, _ms(percentile(cycles[key], 50)), _ms(percentile(cycles[key], 99)))
    print(cycle_table.render())
    for label, got in (("nothing archived", none), (f"{ARCHIVED_TIMES}x archived", heavy)):
        print(
            f"setup, {label}: loaded through the socket in {got['setup_s']:.0f} s; database "
            f"{got['size'] / 2**20:,.0f} MiB"
        )
    return 0 if ok else 1
