"""SIGKILL under load: clients write while the daemon is killed at a random moment, the files
are checked, and it restarts; the table of what was kept and lost."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench import common
from bench.common import Table, median
from bench.crash_shared import (
    Check,
    Ledger,
    Subject,
    _kib,
    _pct,
    _s,
    check_files,
    connect,
    describe,
    flowing,
    ignore_orphaned_futures,
    wal_bytes,
    write_one,
)
from client.aio import AsyncClient

KILL_CYCLES, KILL_CLIENTS = 50, 64


# --- 1. SIGKILL under load --------------------------------------------------------------------
@dataclass
class KillCycle:
    acked_before: int  # acknowledged since the previous restart
    in_flight: int  # sent and unanswered at the instant of the kill
    wal_bytes: int  # the WAL left behind: what the restart has to recover
    restart_s: float  # from the restart to ready
    check: Check


@dataclass
class KillRun:
    clients: int
    cycles: list[KillCycle]
    ledger: Ledger
    final: Check  # after the last restart and a graceful stop
    seconds: float

    @property
    def lost(self) -> int:
        return len({k for c in self.cycles for k in c.check.missing} | set(self.final.missing))

    @property
    def refused_yet_written(self) -> int:
        """Answered with an error (`starting`: not run), yet there."""
        return sum(1 for k in self.ledger.refused if k in self.final.present)

    @property
    def ok(self) -> bool:
        checks = all(c.check.ok for c in self.cycles) and self.final.ok
        return checks and self.refused_yet_written == 0


async def _kill_client(path: str, index: int, ledger: Ledger, stop: asyncio.Event) -> None:
    client: AsyncClient | None = None
    n = 0
    try:
        while not stop.is_set():
            if client is None:
                client = await connect(path, stop)
                if client is None:
                    return
            n += 1
            outcome = await write_one(client, f"k{index}-{n}", n, ledger)
            if outcome in ("cut", "not_sent"):
                await client.close()
                client = None
            elif outcome != "acked":
                await asyncio.sleep(0.01)  # starting, busy: what a real client does
    finally:
        if client is not None:
            await client.close()


def _kill(subject: Subject) -> None:
    process = subject.process
    assert process is not None
    process.kill()
    process.wait(30)
    subject.stop()  # reaps nothing more; closes the log


async def kill_cycles(
    subject: Subject,
    *,
    clients: int,
    cycles: int,
    max_delay_s: float,
    rng: random.Random,
    on_cycle: Callable[[int, KillCycle], None] | None = None,
) -> KillRun:
    """`subject` started; each cycle waits for writes to flow, kills at a random moment,
    checks the files, restarts. Ends with a graceful stop and a last check."""
    ignore_orphaned_futures()
    ledger = Ledger()
    stop = asyncio.Event()
    started = time.monotonic()
    tasks = [
        asyncio.ensure_future(_kill_client(subject.socket_path, i, ledger, stop))
        for i in range(clients)
    ]
    done: list[KillCycle] = []
    try:
        for number in range(cycles):
            base = len(ledger.acked)
            await flowing(ledger, clients)
            await asyncio.sleep(rng.uniform(0.0, max_delay_s))
            in_flight = len(ledger.pending)
            await asyncio.to_thread(_kill, subject)
            acked_before = len(ledger.acked) - base
            wal = wal_bytes(subject.db_path)
            sent, acked = dict(ledger.sent), set(ledger.acked)
            check = await asyncio.to_thread(check_files, subject.db_path, sent, acked)
            restart = time.monotonic()
            await asyncio.to_thread(subject.start)
            cycle = KillCycle(acked_before, in_flight, wal, time.monotonic() - restart, check)
            done.append(cycle)
            if on_cycle is not None:
                on_cycle(number, cycle)
        await flowing(ledger, clients)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    code = await asyncio.to_thread(subject.stop)
    if code != 0:
        raise RuntimeError(f"the daemon exited with {code} at the final stop")
    final = check_files(subject.db_path, ledger.sent, ledger.acked)
    return KillRun(clients, done, ledger, final, time.monotonic() - started)


# --- the benchmark ----------------------------------------------------------------------------
def kill_table(run: KillRun, max_delay_s: float) -> Table:
    cycles = run.cycles
    ledger = run.ledger
    present = run.final.present
    written = len(ledger.cut & present)
    refused: dict[str, int] = {}
    for kind in ledger.refused.values():
        refused[kind] = refused.get(kind, 0) + 1
    table = Table(
        f"kill: SIGKILL under load, {len(cycles)} cycles x {run.clients} clients "
        f"(durable kv.set, each key sent once; kill 0-{max_delay_s:g} s after writes flow)",
        ["metric", "goal", "measured"],
    )
    table.add("writes acknowledged (all cycles)", "", f"{len(ledger.acked):,}")
    table.add("acknowledged writes lost", "0", str(run.lost))
    bad = sum(1 for c in cycles if c.check.integrity != ["ok"]) + (run.final.integrity != ["ok"])
    table.add("integrity_check not ok (after each kill, and at the end)", "0", str(bad))
    for name, what in (
        ("twice", "keys there twice (more than one kv.set event)"),
        ("wrong", "keys there with another value than sent"),
        ("phantom", "keys there that were never sent"),
        ("unlogged", "rows without their event or events without their row"),
    ):
        found = {k for c in cycles for k in getattr(c.check, name)} | set(getattr(run.final, name))
        table.add(what, "0", str(len(found)))
    table.add("answered with an error, yet written", "0", str(run.refused_yet_written))
    table.add(
        "in flight at a kill (sent, never answered)",
        "may or may not be there",
        f"{len(ledger.cut):,}: {written:,} written, {len(ledger.cut) - written:,} not",
    )
    in_flight = [float(c.in_flight) for c in cycles]
    table.add(
        "requests pending at the instant of each kill",
        "",
        f"p50 {median(in_flight):g}, min {min(in_flight):g}, max {max(in_flight):g}",
    )
    acked = [float(c.acked_before) for c in cycles]
    table.add(
        "writes acknowledged between restart and kill",
        "",
        f"p50 {median(acked):,.0f}, min {min(acked):,.0f}, max {max(acked):,.0f}",
    )
    wal = [float(c.wal_bytes) for c in cycles]
    table.add("WAL left by the kill", "", f"p50 {_kib(median(wal))}, max {_kib(max(wal))}")
    restart = [c.restart_s for c in cycles]
    table.add(
        "restart to ready (WAL recovery, quick_check)",
        "",
        f"p50 {_pct(restart, 50, _s)}, p99 {_pct(restart, 99, _s)}",
    )
    table.add(
        "answered with an error (`starting` until ready; the client waits 10 ms, new key)",
        "",
        ", ".join(f"{k}: {n}" for k, n in sorted(refused.items())) or "none",
    )
    table.notes.append(
        f"Files checked read-only after each kill, before the restart; {run.seconds:.0f} s in "
        "all. Cycles with a problem: "
        + (
            ", ".join(
                f"{i + 1}: {describe(c.check)}" for i, c in enumerate(cycles) if not c.check.ok
            )
            or "none"
        )
        + f"; final check after a graceful stop: {describe(run.final)}."
    )
    return table


def _kill_bench(quick: bool, rng: random.Random) -> tuple[Table, bool]:
    cycles, clients, delay = (5, 16, 0.3) if quick else (KILL_CYCLES, KILL_CLIENTS, 1.0)

    def progress(i: int, c: KillCycle) -> None:
        print(
            f"kill {i + 1}/{cycles}: {c.acked_before} acked, {c.in_flight} in flight, "
            f"WAL {_kib(c.wal_bytes)}, restart {_s(c.restart_s)}: {describe(c.check)}",
            flush=True,
        )

    with common.Daemon() as daemon:
        run = asyncio.run(
            kill_cycles(
                daemon,
                clients=clients,
                cycles=cycles,
                max_delay_s=delay,
                rng=rng,
                on_cycle=progress,
            )
        )
    return kill_table(run, delay), run.ok and run.lost == 0
