"""Durable writes while backups run (`bench backup`): a separate client process does
sequential durable `kv.set` calls (small values, one on the wire at a time) and times each;
an idle window with no backup, then `db.backup` calls back to back for a while. Each slow call
is placed in a backup's copy or verify phase from the backup's start, copy_ms and verify_ms.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench import common
from bench.backup_db import BackupDaemon, our_backup
from bench.sequential_client import SequentialClient
from client.sync import Client
from daemon.store import backup as backup_files

SLOW_S = 0.010  # a kv.set this slow is counted, and where it fell
_SET = (
    b'{"jsonrpc":"2.0","id":%d,"method":"kv.set",'
    b'"params":{"namespace":"bench","key":"lat-%d-%d","value":{"n":%d}}}\n'
)


@dataclass
class Made:
    """One db.backup during the writes window: when it was asked for, its phases, its reply."""

    begin: float  # time.monotonic() when the request was sent
    copy_s: float
    verify_s: float
    end: float  # when the reply came

    @property
    def copy_end(self) -> float:
        return self.begin + self.copy_s

    @property
    def verify_end(self) -> float:
        return self.copy_end + self.verify_s


@dataclass
class Latency:
    idle: list[float]
    during: list[float]
    in_copy: list[float]  # the calls sent while a copy (and its fsync) ran
    in_verify: list[float]  # while an integrity_check ran
    slow: dict[str, int]  # kv.set calls over SLOW_S: idle, copy, verify, the rest of a call
    idle_s: float
    during_s: float
    made: list[Made]
    cpu: common.ThreadCpu  # the daemon's threads during the backups
    commit_p99_idle_ms: float  # db.health writer.commit_ms_p99 at the end of each window
    commit_p99_during_ms: float

    @property
    def idle_rate(self) -> float:
        return len(self.idle) / self.idle_s

    @property
    def during_rate(self) -> float:
        return len(self.during) / self.during_s


def _commit_p99(client: Client) -> float:
    health: dict[str, Any] = client.call("db.health")
    return float(health["writer"]["commit_ms_p99"])


def _phase(made: list[Made], start: float) -> str:
    for m in made:
        if m.begin <= start < m.copy_end:
            return "copy"
        if m.copy_end <= start < m.verify_end:
            return "verify"
    return "rest"


def latency_run(
    daemon: BackupDaemon, client: Client, run: int, idle_s: float, during_s: float
) -> Latency:
    """Idle for `idle_s`, then backups back to back until `during_s` has passed (at least one),
    with the writer going throughout."""
    assert daemon.process is not None
    cpu = common.ThreadCpu(daemon.process.pid)
    made: list[Made] = []
    paths: list[str] = []

    def write(n: int) -> bytes:
        return _SET % (n, run, n, n)

    with SequentialClient("writer", daemon.socket_path, write, 120.0) as writer:
        time.sleep(0.3)  # the writer's connection settles; not counted
        idle_begin = time.monotonic()
        time.sleep(idle_s)
        idle_end = time.monotonic()
        commit_idle = _commit_p99(client)
        during_begin = time.monotonic()
        cpu.begin()
        while not made or time.monotonic() - during_begin < during_s:
            begin = time.monotonic()
            reply, _wall = our_backup(client, keep=True)  # deleted after the window
            paths.append(str(reply["path"]))
            copy_s, verify_s = float(reply["copy_ms"]) / 1000, float(reply["verify_ms"]) / 1000
            made.append(Made(begin, copy_s, verify_s, time.monotonic()))
        cpu.end()
        during_end = time.monotonic()
        commit_during = _commit_p99(client)
        samples = writer.stop()
    for path in paths:
        backup_files.remove_database(path)
    slow = {"idle": sum(1 for lat in samples.within(idle_begin, idle_end) if lat > SLOW_S)}
    for phase in ("copy", "verify", "rest"):
        slow[phase] = 0
    for start, lat in zip(samples.starts, samples.latencies, strict=True):
        if lat > SLOW_S and during_begin <= start < during_end:
            slow[_phase(made, start)] += 1
    return Latency(
        idle=samples.within(idle_begin, idle_end),
        during=samples.within(during_begin, during_end),
        in_copy=[lat for m in made for lat in samples.within(m.begin, m.copy_end)],
        in_verify=[lat for m in made for lat in samples.within(m.copy_end, m.verify_end)],
        slow=slow,
        idle_s=idle_end - idle_begin,
        during_s=during_end - during_begin,
        made=made,
        cpu=cpu,
        commit_p99_idle_ms=commit_idle,
        commit_p99_during_ms=commit_during,
    )
