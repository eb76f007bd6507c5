"""Reads: `kv.get` round trips and throughput, beside a bare echo server as the floor.

(a) One blocking client sends one NDJSON line and reads one line back, again and again.
(b) 32 closed-loop clients (in a few processes, on uvloop) each wait for their reply before
sending the next request. The echo server gets the very same request bytes.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from bench import common, load
from bench.common import Table, fmt_rate, fmt_ratio, fmt_us, median, spread
from bench.echo import EchoServer
from bench.load import MakeRequest

CLIENTS = 32
PROCESSES = 2
GOAL_P50 = 150e-6
GOAL_P99 = 1e-3
GOAL_RATE = 40_000.0
_GET = b'{"jsonrpc":"2.0","id":%d,"method":"kv.get","params":{"namespace":"bench","key":"hot"}}\n'
VALUE = {"answer": 42, "text": "a small JSON value"}


def get_requests(worker: int, conn: int) -> MakeRequest:
    def make(n: int) -> bytes:
        return _GET % n

    return make


def round_trips(path: str, count: int, warmup: float) -> list[float]:
    """Latencies of `count` sequential request/reply pairs on one blocking connection, after
    `warmup` seconds of the same (so caches, CPU frequency and the scheduler settle)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30.0)
        sock.connect(path)
        buffer = b""
        latencies: list[float] = []
        clock = time.perf_counter
        warm_until = clock() + warmup
        n = 0
        while len(latencies) < count:
            n += 1
            started = clock()
            sock.sendall(_GET % n)
            while b"\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
                buffer += chunk
            line, _, buffer = buffer.partition(b"\n")
            elapsed = clock() - started
            if b'"error":' in line:
                raise RuntimeError(f"error reply: {line[:300]!r}")
            if started >= warm_until:
                latencies.append(elapsed)
        return latencies


@dataclass
class Run:
    daemon_rtt: list[float]
    echo_rtt: list[float]
    daemon_load: load.Totals
    echo_load: load.Totals
    daemon_cpu: common.ThreadCpu


def one_run(daemon: str, pid: int, echo: str, quick: bool, daemon_first: bool) -> Run:
    count = 2_000 if quick else 20_000
    warmup, duration = (0.2, 1.0) if quick else (0.5, 3.0)
    rtt = {}
    totals = {}
    cpu = common.ThreadCpu(pid)
    order = [daemon, echo] if daemon_first else [echo, daemon]
    for path in order:
        rtt[path] = round_trips(path, count, warmup)
    for path in order:
        totals[path] = load.socket_load(
            path,
            get_requests,
            processes=PROCESSES,
            connections=CLIENTS,
            warmup=warmup,
            duration=duration,
            probe=cpu if path == daemon else None,
        )
    return Run(rtt[daemon], rtt[echo], totals[daemon], totals[echo], cpu)


def main(runs: int, quick: bool) -> int:
    results: list[Run] = []
    with common.Daemon() as daemon, EchoServer() as echo:
        daemon.call("kv.set", {"namespace": "bench", "key": "hot", "value": VALUE})
        check = daemon.call("kv.get", {"namespace": "bench", "key": "hot"})
        if not check or check.get("value") != VALUE:
            raise RuntimeError(f"kv.get did not return the value just set: {check!r}")
        for i in range(runs):
            assert daemon.process is not None
            run = one_run(
                daemon.socket_path,
                daemon.process.pid,
                echo.socket_path,
                quick,
                daemon_first=i % 2 == 0,
            )
            results.append(run)
            p = common.percentile
            print(
                f"run {i + 1}/{runs}: kv.get p50 {fmt_us(p(run.daemon_rtt, 50))} "
                f"p99 {fmt_us(p(run.daemon_rtt, 99))} (echo {fmt_us(p(run.echo_rtt, 50))} / "
                f"{fmt_us(p(run.echo_rtt, 99))}); {CLIENTS} clients: "
                f"{fmt_rate(run.daemon_load.rate)} (echo {fmt_rate(run.echo_load.rate)}), "
                f"errors {run.daemon_load.errors}",
                flush=True,
            )
    print()
    print(report(results, quick))
    return 0 if all(r.daemon_load.errors == 0 for r in results) else 1


def report(results: list[Run], quick: bool) -> str:
    p = common.percentile
    count = len(results[0].daemon_rtt)
    duration = results[0].daemon_load.duration
    table = Table(
        f"rpc: kv.get vs. a bare uvloop echo server, {len(results)} runs "
        f"({count:,} sequential round trips per run; {CLIENTS} clients for {duration:g} s)",
        ["metric", "echo server (floor)", "daemon kv.get", "daemon/echo"],
    )
    rows: dict[str, tuple[list[float], list[float]]] = {}
    for q in (50, 99):
        rows[f"1 client: round trip p{q}"] = (
            [p(r.echo_rtt, q) for r in results],
            [p(r.daemon_rtt, q) for r in results],
        )
    for label, (echo, ours) in rows.items():
        table.add(
            label, spread(echo, fmt_us), spread(ours, fmt_us), fmt_ratio(*map(median, (ours, echo)))
        )
    e_rate = [r.echo_load.rate for r in results]
    d_rate = [r.daemon_load.rate for r in results]
    table.add(
        f"{CLIENTS} clients: requests/s",
        spread(e_rate, fmt_rate),
        spread(d_rate, fmt_rate),
        fmt_ratio(median(d_rate), median(e_rate)),
    )
    for q in (50, 99):
        e = [p(r.echo_load.latencies, q) for r in results]
        d = [p(r.daemon_load.latencies, q) for r in results]
        table.add(
            f"{CLIENTS} clients: latency p{q}",
            spread(e, fmt_us),
            spread(d, fmt_us),
            fmt_ratio(median(d), median(e)),
        )
    p50 = median(rows["1 client: round trip p50"][1])
    p99 = median(rows["1 client: round trip p99"][1])
    rate = median(d_rate)
    table.notes += [
        "Medians across runs, with the range in brackets; percentiles are nearest-rank per run. "
        f"Load: {PROCESSES} client processes x {CLIENTS // PROCESSES} connections, each waiting "
        "for its reply before sending the next request. Daemon CPU under the "
        f"{CLIENTS}-client load: {common.fmt_cpu([r.daemon_cpu for r in results])}.",
        f"Goal p50 <= {fmt_us(GOAL_P50)} and p99 <= {fmt_us(GOAL_P99)}: "
        + ("met" if p50 <= GOAL_P50 and p99 <= GOAL_P99 else "NOT met")
        + f" (p50 {fmt_us(p50)}, p99 {fmt_us(p99)}).",
        f"Goal >= {GOAL_RATE:,.0f} req/s at {CLIENTS} clients: "
        + ("met" if rate >= GOAL_RATE else "NOT met")
        + f" ({fmt_rate(rate)} = {rate / GOAL_RATE:.0%} of the goal).",
    ]
    return table.render()
