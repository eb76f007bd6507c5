"""Reads: `kv.get` round trips and throughput, beside a bare echo server as the floor.

(a) One blocking client sends one NDJSON line and reads one line back, again and again.
(b) 32 closed-loop clients (in a few processes, on uvloop) each wait for their reply before
sending the next request. The echo server gets the very same request bytes.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench import common, load, request_parts, writes
from bench.common import Table, fmt_rate, fmt_ratio, fmt_us, median, spread
from bench.echo import EchoServer
from bench.load import MakeRequest

CLIENTS = 32
PROCESSES = 2
GOAL_P50 = 150e-6
GOAL_P99 = 1e-3
GOAL_RATE = 40_000.0
GOAL_OF_ECHO = 0.4  # kv.get throughput at 32 clients, against the echo server's
GOAL_UNDER_WRITES = 2.0  # a point read's p99 during the writes load, against idle
WRITERS = 64  # the writes benchmark's load: durable kv.set from 64 clients in 4 processes
_GET = b'{"jsonrpc":"2.0","id":%d,"method":"kv.get","params":{"namespace":"bench","key":"hot"}}\n'
VALUE = {"answer": 42, "text": "a small JSON value"}


def get_requests(worker: int, conn: int) -> MakeRequest:
    def make(n: int) -> bytes:
        return _GET % n

    return make


def round_trips(path: str, count: int, warmup: float, until: float | None = None) -> list[float]:
    """Latencies of `count` sequential request/reply pairs on one blocking connection, after
    `warmup` seconds of the same (so caches, CPU frequency and the scheduler settle); fewer
    if `time.perf_counter()` passes `until` first."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30.0)
        sock.connect(path)
        buffer = b""
        latencies: list[float] = []
        clock = time.perf_counter
        warm_until = clock() + warmup
        n = 0
        while len(latencies) < count and (until is None or clock() < until):
            n += 1
            started = clock()
            sock.sendall(_GET % n)
            line, buffer = common.next_line(sock, buffer)
            elapsed = clock() - started
            if b'"error":' in line:
                raise RuntimeError(f"error reply: {line[:300]!r}")
            if started >= warm_until:
                latencies.append(elapsed)
        return latencies


# Where the client and the server run. Unpinned is what a user gets; pinned, the two cases it
# mixes: on this kind of VM a wake-up on the other core costs tens of µs, which is why the
# unpinned figures flip between runs as the scheduler places the processes. Under load,
# "split" gives the server one core and the load generators the other.
RTT_PLACEMENTS = ("unpinned", "same core", "other core")
LOAD_PLACEMENTS = ("unpinned", "split")


class Placer:
    """Pins this process (the client; forked load generators inherit it) and every thread of
    the servers, and puts everything back as it was."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        self.can_pin = len(self.cpus) >= 2

    def rtt_placements(self) -> tuple[str, ...]:
        return RTT_PLACEMENTS if self.can_pin else RTT_PLACEMENTS[:1]

    def load_placements(self) -> tuple[str, ...]:
        return LOAD_PLACEMENTS if self.can_pin else LOAD_PLACEMENTS[:1]

    def place(self, placement: str) -> None:
        if not self.can_pin:
            return
        first = min(self.cpus)
        other = {min(self.cpus - {first})}
        client, server = {
            "unpinned": (self.cpus, self.cpus),
            "same core": ({first}, {first}),
            "other core": ({first}, other),
            "split": ({first}, other),
        }[placement]
        os.sched_setaffinity(0, client)
        for pid in self.pids:
            common.pin_threads(pid, server)

    def reset(self) -> None:
        self.place("unpinned")


@dataclass
class Run:
    daemon_rtt: dict[str, list[float]]
    echo_rtt: dict[str, list[float]]
    daemon_load: dict[str, load.Totals]
    echo_load: dict[str, load.Totals]
    daemon_cpu: dict[str, common.ThreadCpu]
    under_writes: list[float]  # kv.get round trips while 64 clients write
    writes_rate: float


def read_under_writes(path: str, warmup: float, duration: float) -> tuple[list[float], float]:
    """kv.get round trips from one client while the writes benchmark's load (64 clients of
    durable kv.set) runs; and that load's rate."""
    box: dict[str, load.Totals] = {}

    def writing() -> None:
        box["totals"] = load.socket_load(
            path, writes.set_requests, processes=writes.DAEMON_PROCESSES,
            connections=WRITERS, warmup=warmup, duration=duration,
        )  # fmt: skip

    thread = threading.Thread(target=writing)
    thread.start()
    time.sleep(warmup + 0.5)  # the writers are connected and at full speed
    latencies = round_trips(path, 100_000, 0.0, until=time.perf_counter() + duration * 0.6)
    thread.join()
    return latencies, box["totals"].rate


def one_run(daemon: common.Daemon, echo: EchoServer, quick: bool, daemon_first: bool) -> Run:
    count = 2_000 if quick else 20_000
    warmup, duration = (0.2, 1.0) if quick else (0.5, 3.0)
    assert daemon.process is not None and echo.process is not None
    placer = Placer([daemon.process.pid, echo.process.pid])
    paths = [daemon.socket_path, echo.socket_path]
    order = paths if daemon_first else paths[::-1]
    rtt: dict[str, dict[str, list[float]]] = {path: {} for path in paths}
    totals: dict[str, dict[str, load.Totals]] = {path: {} for path in paths}
    cpu: dict[str, common.ThreadCpu] = {}
    try:
        for placement in placer.rtt_placements():
            placer.place(placement)
            for path in order:
                n = count if placement == "unpinned" else count // 2
                rtt[path][placement] = round_trips(path, n, warmup)
        for placement in placer.load_placements():
            placer.place(placement)
            cpu[placement] = common.ThreadCpu(daemon.process.pid)
            for path in order:
                totals[path][placement] = load.socket_load(
                    path,
                    get_requests,
                    processes=PROCESSES,
                    connections=CLIENTS,
                    warmup=warmup,
                    duration=duration,
                    probe=cpu[placement] if path == daemon.socket_path else None,
                )
    finally:
        placer.reset()
    under, writes_rate = read_under_writes(daemon.socket_path, warmup, duration)
    d, e = paths
    return Run(rtt[d], rtt[e], totals[d], totals[e], cpu, under, writes_rate)


def main(runs: int, quick: bool) -> int:
    results: list[Run] = []
    parts: list[request_parts.Parts] = []
    with common.Daemon() as daemon, EchoServer() as echo:
        daemon.call("kv.set", {"namespace": "bench", "key": "hot", "value": VALUE})
        check = daemon.call("kv.get", {"namespace": "bench", "key": "hot"})
        if not check or check.get("value") != VALUE:
            raise RuntimeError(f"kv.get did not return the value just set: {check!r}")
        for i in range(runs):
            run = one_run(daemon, echo, quick, daemon_first=i % 2 == 0)
            results.append(run)
            parts.append(request_parts.measure())
            p = common.percentile
            rtts = "; ".join(
                f"{where} {fmt_us(p(run.daemon_rtt[where], 50))} "
                f"(echo {fmt_us(p(run.echo_rtt[where], 50))})"
                for where in run.daemon_rtt
            )
            rates = "; ".join(
                f"{where} {fmt_rate(run.daemon_load[where].rate)} "
                f"(echo {fmt_rate(run.echo_load[where].rate)})"
                for where in run.daemon_load
            )
            print(f"run {i + 1}/{runs}: kv.get p50 {rtts}; {CLIENTS} clients: {rates}", flush=True)
    print()
    print(report(results))
    print()
    where = "same core" if "same core" in results[0].daemon_rtt else "unpinned"
    rtt = [common.percentile(r.daemon_rtt[where], 50) for r in results]
    echo_rtt = [common.percentile(r.echo_rtt[where], 50) for r in results]
    print(request_parts.table(parts, rtt, echo_rtt, where))
    errors = sum(t.errors for r in results for t in r.daemon_load.values())
    return 0 if errors == 0 else 1


def report(results: list[Run]) -> str:
    p = common.percentile
    first = results[0]
    count = len(first.daemon_rtt["unpinned"])
    duration = first.daemon_load["unpinned"].duration
    table = Table(
        f"rpc: kv.get vs. a bare uvloop echo server, {len(results)} runs "
        f"({count:,} sequential round trips per run unpinned, {count // 2:,} pinned; "
        f"{CLIENTS} clients for {duration:g} s)",
        ["metric", "echo server (floor)", "daemon kv.get", "daemon/echo"],
    )

    def add(label: str, echo: list[float], ours: list[float], fmt: Callable[[float], str]) -> None:
        table.add(
            label, spread(echo, fmt), spread(ours, fmt), fmt_ratio(median(ours), median(echo))
        )

    for where in first.daemon_rtt:
        for q in (50, 99):
            add(
                f"1 client, {where}: round trip p{q}",
                [p(r.echo_rtt[where], q) for r in results],
                [p(r.daemon_rtt[where], q) for r in results],
                fmt_us,
            )
    for where in first.daemon_load:
        add(
            f"{CLIENTS} clients, {where}: requests/s",
            [r.echo_load[where].rate for r in results],
            [r.daemon_load[where].rate for r in results],
            fmt_rate,
        )
        for q in (50, 99):
            add(
                f"{CLIENTS} clients, {where}: latency p{q}",
                [p(r.echo_load[where].latencies, q) for r in results],
                [p(r.daemon_load[where].latencies, q) for r in results],
                fmt_us,
            )
    for q in (50, 99):
        idle = [p(r.daemon_rtt["unpinned"], q) for r in results]
        busy = [p(r.under_writes, q) for r in results]
        table.add(
            f"1 client during {WRITERS} writers: round trip p{q}",
            "",
            spread(busy, fmt_us),
            f"{median(busy) / median(idle):.2f}x idle",
        )
    p50 = median([p(r.daemon_rtt["unpinned"], 50) for r in results])
    p99 = median([p(r.daemon_rtt["unpinned"], 99) for r in results])
    rate = median([r.daemon_load["unpinned"].rate for r in results])
    of_echo = median([r.daemon_load["unpinned"].rate / r.echo_load["unpinned"].rate
                      for r in results])  # fmt: skip
    busy99 = median([p(r.under_writes, 99) for r in results])
    writes_rate = median([r.writes_rate for r in results])
    cpu = "; ".join(
        f"{where}: {common.fmt_cpu([r.daemon_cpu[where] for r in results])}"
        for where in first.daemon_cpu
    )
    table.notes += [
        "Medians across runs, with the range in brackets; percentiles are nearest-rank per run. "
        "Unpinned is what a user gets. `same core` / `other core` pin the client to one CPU and "
        "every thread of the server to the same or the other one: the two cases unpinned runs "
        f"flip between. Load: {PROCESSES} client processes x {CLIENTS // PROCESSES} connections, "
        "each waiting for its reply before sending the next request; `split` puts the load "
        "generators on one core and the server on the other.",
        f"Daemon CPU under load: {cpu}.",
        f"Goal (unpinned) p50 <= {fmt_us(GOAL_P50)} and p99 <= {fmt_us(GOAL_P99)}: "
        + ("met" if p50 <= GOAL_P50 and p99 <= GOAL_P99 else "NOT met")
        + f" (p50 {fmt_us(p50)}, p99 {fmt_us(p99)}).",
        f"Goal (unpinned) >= {GOAL_RATE:,.0f} req/s at {CLIENTS} clients and >= "
        f"{GOAL_OF_ECHO:g}x the echo server: "
        + ("met" if rate >= GOAL_RATE and of_echo >= GOAL_OF_ECHO else "NOT met")
        + f" ({fmt_rate(rate)} = {rate / GOAL_RATE:.0%} of the goal, {of_echo:.2f}x echo).",
        f"During {WRITERS} writers: the writes benchmark's load (durable kv.set, "
        f"{writes.DAEMON_PROCESSES} processes; {fmt_rate(writes_rate)} acknowledged meanwhile) "
        "with one more client timing kv.get round trips, unpinned. Goal p99 <= "
        f"{GOAL_UNDER_WRITES:g}x idle: "
        + ("met" if busy99 <= GOAL_UNDER_WRITES * p99 else "NOT met")
        + f" ({fmt_us(busy99)} against {fmt_us(p99)} idle).",
    ]
    return table.render()
