"""SIGTERM under load: clients write, several requests in flight each, when SIGTERM comes;
every outcome counted, and the table of them."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from dataclasses import dataclass

from bench import common
from bench.common import Table
from bench.crash_shared import (
    NAMESPACE,
    Check,
    Ledger,
    Subject,
    _pct,
    _s,
    check_files,
    connect,
    describe,
    flowing,
    ignore_orphaned_futures,
    write_one,
)
from client.aio import AsyncClient

TERM_CYCLES, TERM_CLIENTS, TERM_DEPTH = 20, (64, 16), 2
STOP_TIMEOUT_S = 10.0  # the daemon's default stop_timeout_s


# --- 2. SIGTERM under load --------------------------------------------------------------------
@dataclass
class TermCycle:
    ledger: Ledger
    exit_code: int
    exit_s: float  # from SIGTERM to the process gone
    check: Check
    hung: int = 0  # clients still waiting 10 s after the daemon exited

    @property
    def unanswered(self) -> int:
        return len(self.ledger.cut)

    @property
    def unanswered_unread(self) -> int:
        """Delivered to the daemon's socket, never read: the connection was reset."""
        return len(self.ledger.reset)

    @property
    def shutting_down(self) -> int:
        return sum(1 for kind in self.ledger.refused.values() if kind == "shutting_down")

    @property
    def other_errors(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for kind in self.ledger.refused.values():
            if kind != "shutting_down":
                found[kind] = found.get(kind, 0) + 1
        return found

    @property
    def refused_yet_written(self) -> int:
        """Answered shutting_down (nothing written), yet the row is there."""
        return sum(1 for k in self.ledger.refused if k in self.check.present)


async def _term_lane(client: AsyncClient, prefix: str, ledger: Ledger, over: asyncio.Event) -> None:
    n = 0
    while not over.is_set():
        n += 1
        if await write_one(client, f"{prefix}-{n}", n, ledger) != "acked":
            over.set()  # shutting_down or closed: this client stops, like a real one


async def _term_client(client: AsyncClient, prefix: str, ledger: Ledger, depth: int) -> None:
    over = asyncio.Event()
    try:
        await asyncio.gather(
            *(_term_lane(client, f"{prefix}.{i}", ledger, over) for i in range(depth))
        )
    finally:
        await client.close()


async def term_cycle(
    subject: Subject,
    cycle: int,
    *,
    clients: int,
    depth: int,
    max_delay_s: float,
    stop_timeout_s: float,
    rng: random.Random,
) -> TermCycle:
    """`subject` started: clients write, SIGTERM at a random moment, every outcome counted."""
    ignore_orphaned_futures()
    ledger = Ledger(namespace=f"{NAMESPACE}-term-{cycle}")
    never = asyncio.Event()
    connected = [await connect(subject.socket_path, never) for _ in range(clients)]
    tasks = [
        asyncio.ensure_future(_term_client(c, f"t{cycle}.{i}", ledger, depth))
        for i, c in enumerate(connected)
        if c is not None
    ]
    await flowing(ledger, clients)
    await asyncio.sleep(rng.uniform(0.0, max_delay_s))
    process = subject.process
    assert process is not None
    signalled = time.monotonic()
    process.terminate()
    try:
        code = await asyncio.to_thread(process.wait, stop_timeout_s + 20)
    except subprocess.TimeoutExpired:
        process.kill()
        code = -9
    exit_s = time.monotonic() - signalled
    await asyncio.to_thread(subject.stop)
    _, late = await asyncio.wait(tasks, timeout=10)
    for task in late:  # a client still waiting for an answer once the daemon is gone
        task.cancel()
    check = check_files(subject.db_path, ledger.sent, ledger.acked, ledger.namespace)
    return TermCycle(ledger, code, exit_s, check, hung=len(late))


# --- the benchmark ----------------------------------------------------------------------------
def _term_rows(runs: list[TermCycle], stop_timeout_s: float) -> list[tuple[str, str, str]]:
    """(metric, goal, measured) for one group of SIGTERM cycles."""
    n = len(runs)
    acked = sum(len(r.ledger.acked) for r in runs)
    lost = sum(len(r.check.missing) for r in runs)
    others: dict[str, int] = {}
    for r in runs:
        for kind, count in r.other_errors.items():
            others[kind] = others.get(kind, 0) + count
    exits = [r.exit_s for r in runs]
    return [
        ("acknowledged writes kept", "all", f"{acked - lost:,} of {acked:,}"),
        ("answered shutting_down", "", f"{sum(r.shutting_down for r in runs):,}"),
        ("answered shutting_down, yet written", "0", str(sum(r.refused_yet_written for r in runs))),
        ("answered another error", "0", ", ".join(f"{k}: {c}" for k, c in others.items()) or "0"),
        (
            "unanswered: the connection closed with the request pending",
            "0",
            f"{sum(r.unanswered for r in runs):,} (in {sum(1 for r in runs if r.unanswered)} of "
            f"{n} cycles)",
        ),
        (
            "... on a reset connection (the daemon closed with requests received, unread)",
            "0",
            f"{sum(r.unanswered_unread for r in runs):,}",
        ),
        ("clients still waiting after the exit", "0", str(sum(r.hung for r in runs))),
        (
            "not sent (the connection had already closed)",
            "",
            str(sum(r.ledger.not_sent for r in runs)),
        ),
        (
            "exit time after SIGTERM",
            f"< {stop_timeout_s:g} s",
            f"p50 {_pct(exits, 50, _s)}, p99 {_pct(exits, 99, _s)}, max {_s(max(exits))}",
        ),
        ("exit code 0", "all", f"{sum(r.exit_code == 0 for r in runs)}/{n}"),
        (
            "integrity_check ok after exit",
            "all",
            f"{sum(r.check.integrity == ['ok'] for r in runs)}/{n}",
        ),
    ]


def term_table(groups: dict[int, list[TermCycle]], depth: int, stop_timeout_s: float) -> Table:
    """One column per number of clients."""
    cycles = len(next(iter(groups.values())))
    table = Table(
        f"term: SIGTERM under load, {cycles} cycles per column, {depth} requests in flight per "
        f"client (durable kv.set), stop_timeout_s = {stop_timeout_s:g}",
        ["metric", "goal", *(f"{clients} clients" for clients in groups)],
    )
    columns = [_term_rows(runs, stop_timeout_s) for runs in groups.values()]
    for i, (metric, goal, _) in enumerate(columns[0]):
        table.add(metric, goal, *(column[i][2] for column in columns))
    table.notes.append(
        "Each client stops at its first error or closed connection, as a real one would. "
        "Unanswered requests come in bursts and vary a lot from run to run: most cycles have "
        "none, some have dozens (connections the daemon closed just after answering their "
        "last request, while the client was sending the next)."
    )
    return table


def term_ok(r: TermCycle) -> bool:
    return bool(
        r.check.ok
        and r.unanswered == 0
        and r.hung == 0
        and not r.other_errors
        and r.refused_yet_written == 0
        and r.exit_code == 0
        and r.exit_s < STOP_TIMEOUT_S
    )


def _term_bench(quick: bool, rng: random.Random) -> tuple[Table, bool]:
    cycles, delay = (3, 0.3) if quick else (TERM_CYCLES, 1.0)
    groups: dict[int, list[TermCycle]] = {}
    for clients in TERM_CLIENTS:
        runs = groups[clients] = []
        with common.Daemon() as daemon:
            for i in range(cycles):
                if i:
                    daemon.start()
                r = asyncio.run(
                    term_cycle(
                        daemon,
                        i,
                        clients=clients,
                        depth=TERM_DEPTH,
                        max_delay_s=delay,
                        stop_timeout_s=STOP_TIMEOUT_S,
                        rng=rng,
                    )
                )
                runs.append(r)
                print(
                    f"term {clients} clients {i + 1}/{cycles}: {len(r.ledger.acked)} acked, "
                    f"{r.shutting_down} shutting_down, {r.unanswered} unanswered "
                    f"({r.unanswered_unread} on a reset), exit {r.exit_code} in "
                    f"{_s(r.exit_s)}: {describe(r.check)}",
                    flush=True,
                )
    ok = all(term_ok(r) for runs in groups.values() for r in runs)
    return term_table(groups, TERM_DEPTH, STOP_TIMEOUT_S), ok
