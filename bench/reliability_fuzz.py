"""Reliability: the wire fuzzed (issue 7, item 3) and resource abuse (item 4).

Fuzz. A real daemon gets frames in groups of one to eight, over both framings: random bytes,
truncated, oversized and malformed Content-Length headers, invalid UTF-8, deeply nested JSON,
huge arrays, every method of `rpc.discover` with params of the wrong type, missing, extra, out
of range or random-but-valid, unknown methods, batches of thousands. After each group another
client does a kv.get round trip on its own connection (the daemon must answer) and the
daemon's VmRSS is read. Every frame the daemon sends must be a well-formed JSON-RPC response or
notification; a connection it closes must have been told why. The baseline is the same
client's round trip with nothing else going on.

Abuse. While (a) clients that never read their replies, (b) one opening connections beyond
`max_connections`, or (c) slow senders (a byte now and then) do their worst, a good client's
kv.get round trips are timed beside its round trips with nothing else going on, and what the
daemon did to each abuser is recorded.

The machinery (Wire and Watchdog in bench.fuzz_wire, FrameGen in bench.fuzz_frames, Fuzzer in
bench.fuzz_run, the abusers in bench.abuse) is shared with tests/test_reliability_fuzz.py.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import common
from bench.abuse import (
    Abuse,
    abusers,
    connection_hog,
    merge,
    non_reader,
    round_trips_for,
    slow_sender,
)
from bench.common import Table, fmt_ms, fmt_ratio, median, percentile
from bench.fuzz_run import (
    FUZZ_CONFIG,
    Fuzzer,
    FuzzStats,
    crashes,
    handler_failures,
    logged_errors,
)
from bench.fuzz_wire import FuzzFailure, Watchdog, rss_bytes

# --- the benchmark --------------------------------------------------------------------------


@dataclass
class FuzzRun:
    stats: FuzzStats
    idle: list[float]  # the watchdog's round trips before the fuzz
    tail_frames: int  # the last frames, sent without the 128-256 KiB ones
    tail_growth: int  # bytes of RSS growth over those
    events: int  # events in the database at the end
    failures: collections.Counter[str]  # handler_failures
    errors: collections.Counter[str]  # logged_errors


def fuzz_report(run: FuzzRun) -> str:
    p = percentile
    stats, idle, rtts = run.stats, run.idle, run.stats.rtts
    table = Table(
        f"reliability: {stats.frames:,} fuzz frames in {stats.groups:,} groups "
        f"({stats.elapsed:,.0f} s), a kv.get from another client after every group",
        ["metric", "idle (baseline)", "during the fuzz", "fuzz/idle"],
    )
    for q in (50, 99):
        table.add(
            f"other client's kv.get round trip p{q}",
            fmt_ms(p(idle, q)),
            fmt_ms(p(rtts, q)),
            fmt_ratio(p(rtts, q), p(idle, q)),
        )
    table.add("other client's slowest round trip", fmt_ms(max(idle)), fmt_ms(max(rtts)), "")
    mib = 1024 * 1024
    table.add(
        "daemon RSS after warm-up → max → end",
        f"{stats.rss_start / mib:.1f} MiB",
        f"{stats.rss_max / mib:.1f} → {stats.rss_end / mib:.1f} MiB",
        f"+{(stats.rss_max - stats.rss_start) / mib:.1f} MiB (goal ≤ 20)",
    )
    table.add(
        f"… growth over the last {run.tail_frames:,} frames, none of 128-256 KiB",
        "",
        "",
        f"+{run.tail_growth / mib:.1f} MiB (goal ≤ 20)",
    )
    kinds = ", ".join(f"{k} {n:,}" for k, n in stats.by_kind.most_common())
    codes = ", ".join(f"{c} x{n:,}" for c, n in sorted(stats.codes.items()))
    closed = ", ".join(f"{k} {n:,}" for k, n in stats.closed_by_daemon.most_common())
    valid = "; ".join(
        f"{m}: " + ", ".join(f"{k} {n}" for k, n in c.most_common())
        for m, c in sorted(stats.valid.items())
    )
    internal = ", ".join(f"{k} x{n}" for k, n in run.failures.most_common()) or "none"
    errors = ", ".join(f"{k} x{n}" for k, n in run.errors.most_common()) or "none"
    table.notes += [
        f"Frames by kind: {kinds}.",
        f"Replies {stats.replies:,} (error codes: {codes}), notifications {stats.notifications:,}; "
        f"connections the daemon closed as it must, with the right error: {closed}.",
        f"Random-but-valid calls and what they did: {valid}. The database held {run.events:,} "
        "events at the end.",
        f"-32603 (a handler's bug), by the exception the daemon logged: {internal}. Other "
        f"errors the daemon logged: {errors}.",
        "Config: max_message_bytes 256 KiB, max_batch 5,000 (so oversized frames are cheap); "
        "everything else the default. db.reset/restore/import/repair are sent with wrong "
        "params only (valid ones, many a second, would wipe what the fuzz builds up; they "
        "are fuzzed valid with Fuzzer(..., valid_swaps=True)).",
    ]
    return table.render()


def fuzz(frames: int, tail: int) -> FuzzRun | None:
    """The fuzz, on a daemon of its own: `frames` of every kind, then `tail` without the
    biggest. None (after saying why) if the daemon broke a promise."""
    with common.Daemon({k: str(v) for k, v in FUZZ_CONFIG.items()}) as daemon:
        assert daemon.process is not None
        pid = daemon.process.pid
        fuzzer = Fuzzer(daemon.socket_path, pid, daemon.root / "data", daemon.root / "dev", seed=7)
        try:
            idle = round_trips_for(fuzzer.watchdog, 2.0)
            fuzzer.watchdog.rtts.clear()

            def progress(s: FuzzStats) -> None:
                print(
                    f"fuzz: {s.frames:,} frames, RSS {rss_bytes(pid) / 2**20:.1f} MiB, "
                    f"kv.get p99 {fmt_ms(percentile(fuzzer.watchdog.rtts, 99))}",
                    flush=True,
                )

            stats = fuzzer.run(frames, warmup=min(5_000, frames // 5), progress=progress)
            fuzzer.gen.kinds = fuzzer.gen.mix(without=frozenset({"huge"}))
            before, stats.rss_max = rss_bytes(pid), 0
            stats = fuzzer.run(frames + tail, warmup=0, progress=progress)
            events = fuzzer.call_once("events.list", {"limit": 1})["total"]
        except FuzzFailure as e:
            print(f"FUZZ FAILURE: {e}\n{daemon.output()}")
            return None
        finally:
            fuzzer.close()
        if daemon.process.poll() is not None:
            print(f"THE DAEMON DIED\n{daemon.output()}")
            return None
        log_text = daemon.log_path.read_text(errors="replace") if daemon.log_path.exists() else ""
        if crashes(log_text):
            print("FAILED: " + "; ".join(crashes(log_text)[:5]))
            return None
        return FuzzRun(
            stats, idle, tail, stats.rss_max - before, events,
            handler_failures(log_text), logged_errors(log_text),
        )  # fmt: skip


@dataclass
class AbuseRun:
    idle: list[float]
    during: list[float]
    abuse: Abuse


ABUSE_SCENARIOS = ("non-reader", "stalled", "connections", "slowloris")
BIG_GET = b'{"jsonrpc":"2.0","id":1,"method":"kv.get","params":{"namespace":"big","key":"v"}}\n'
SMALL_GET = b'{"jsonrpc":"2.0","id":1,"method":"kv.get","params":{"namespace":"a","key":"b"}}\n'


def abuse_run(daemon: common.Daemon, scenario: str, seconds: float) -> AbuseRun:
    assert daemon.process is not None
    path = daemon.socket_path
    watchdog = Watchdog(path)
    try:
        idle = round_trips_for(watchdog, seconds)
        until = time.monotonic() + seconds
        jobs: list[tuple[Callable[..., Abuse], tuple[Any, ...]]]
        if scenario == "non-reader":
            jobs = [(non_reader, (path, BIG_GET * 64, until)) for _ in range(2)]
        elif scenario == "stalled":
            jobs = [(non_reader, (path, SMALL_GET * 64, until)) for _ in range(2)]
        elif scenario == "connections":
            jobs = [(connection_hog, (path, ABUSE_MAX_CONNECTIONS + 200, until))]
        else:
            body = b'{"jsonrpc":"2.0","id":1,"method":"daemon.hello"}\n'
            jobs = [(slow_sender, (path, 8, 1.0, body, until))]
        with abusers(jobs) as results:
            time.sleep(0.2)  # let them start
            during = round_trips_for(watchdog, max(0.1, until - time.monotonic()))
        return AbuseRun(idle, during, merge(results))
    finally:
        watchdog.close()


ABUSE_MAX_CONNECTIONS = 512  # the default


def abuse_report(runs: dict[str, list[AbuseRun]], seconds: float, idle_timeout: float) -> str:
    p = percentile
    table = Table(
        f"reliability: a good client's kv.get round trip while others abuse the daemon "
        f"({len(next(iter(runs.values())))} runs of {seconds:g} s each, idle then abused)",
        ["abuser", "idle p50 / p99", "abused p50 / p99", "p99 abused/idle", "what the daemon did"],
    )
    for scenario, results in runs.items():
        idle50 = median([p(r.idle, 50) for r in results])
        idle99 = median([p(r.idle, 99) for r in results])
        on50 = median([p(r.during, 50) for r in results])
        on99 = median([p(r.during, 99) for r in results])
        abuse = merge([r.abuse for r in results])
        cut = abuse.cut_after
        if scenario in ("non-reader", "stalled"):
            did = (
                f"{len(cut)} cut off, median {median(cut):.2f} s after connecting, having sent "
                f"{median([float(b) for b in abuse.sent_before_cut]) / 1024:,.0f} KiB"
                if cut
                else "none cut off"
            )
        elif scenario == "connections":
            did = (
                f"{abuse.refused} refused at once, {abuse.admitted} admitted (closed idle after "
                f"{median(cut) if cut else float('nan'):.1f} s): "
                + "; ".join(f"{m} x{n}" for m, n in abuse.messages.most_common(2))
            )
        else:
            did = (
                f"{len(cut)} closed, median {median(cut) if cut else float('nan'):.1f} s after "
                f"connecting: " + "; ".join(f"{m} x{n}" for m, n in abuse.messages.most_common(2))
            )
        table.add(
            {
                "non-reader": "(a) 2 clients sending kv.get of a 1 MiB value, never reading",
                "stalled": "(a') 2 clients sending kv.get of a small value, never reading",
                "connections": f"(b) {ABUSE_MAX_CONNECTIONS + 200} connections at once",
                "slowloris": "(c) 8 clients sending 1 byte/s",
            }[scenario],
            f"{fmt_ms(idle50)} / {fmt_ms(idle99)}",
            f"{fmt_ms(on50)} / {fmt_ms(on99)}",
            fmt_ratio(on99, idle99),
            did,
        )
    table.notes += [
        "What the daemon did is counted over all runs. "
        "Medians across runs; percentiles nearest-rank within a run, over back-to-back round "
        "trips on one connection opened before the abuse. Goal: abused p99 ≤ 2x idle p99.",
        f"Config: defaults (max_output_buffer_bytes 32 MiB, max_connections 512, "
        f"max_inflight_per_connection 128) but idle_timeout_s {idle_timeout:g}, which makes the "
        f"message deadline min(30 s, idle timeout) = {min(30.0, idle_timeout):g} s.",
    ]
    return table.render()


def main(runs: int, quick: bool) -> int:
    seconds = 4.0 if quick else 9.0
    idle_timeout = 1.0 if quick else 3.0
    run = fuzz(5_000, 2_000) if quick else fuzz(100_000, 20_000)
    if run is None:
        return 1
    print()
    print(fuzz_report(run))
    return abuse(runs, seconds, idle_timeout)


def abuse(runs: int, seconds: float = 9.0, idle_timeout: float = 3.0) -> int:
    """The abuse part alone: `runs` rounds of every scenario on one daemon."""
    results: dict[str, list[AbuseRun]] = {s: [] for s in ABUSE_SCENARIOS}
    with common.Daemon({"idle_timeout_s": str(idle_timeout)}) as daemon:
        big = {"blob": "x" * (1024 * 1024 - 64)}
        daemon.call("kv.set", {"namespace": "big", "key": "v", "value": big})
        for i in range(runs):
            for scenario in ABUSE_SCENARIOS:
                abused = abuse_run(daemon, scenario, seconds)
                results[scenario].append(abused)
                print(
                    f"run {i + 1}/{runs} {scenario}: p99 idle "
                    f"{fmt_ms(percentile(abused.idle, 99))}, abused "
                    f"{fmt_ms(percentile(abused.during, 99))}",
                    flush=True,
                )
                time.sleep(idle_timeout + 1)  # what the abuser left behind is swept
        if daemon.process is None or daemon.process.poll() is not None:
            print("THE DAEMON DIED")
            return 1
    print()
    print(abuse_report(results, seconds, idle_timeout))
    return 0
