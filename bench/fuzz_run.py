"""The fuzz run: Fuzzer sends FrameGen's groups to a daemon and checks all it says and does;
FuzzStats counts it; scanners of the daemon's log find what escaped the RPC layer."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fuzz_frames import Frame, FrameGen, catalogue
from bench.fuzz_wire import (
    FRAMINGS,
    FuzzFailure,
    Watchdog,
    Wire,
    check_frame,
    frame,
    framing_of,
    rss_bytes,
)

# The fuzzed daemon: small limits so oversized frames are cheap, everything else the default.
FUZZ_MESSAGE_BYTES = 256 * 1024
FUZZ_MAX_BATCH = 5000
FUZZ_CONFIG = {"max_message_bytes": FUZZ_MESSAGE_BYTES, "max_batch": FUZZ_MAX_BATCH}
RSS_GOAL = 20 * 1024 * 1024
WARMUP_GROUPS_PER_KIND = 10  # groups of eight frames of each kind, before the random mix


# --- the fuzz run ---------------------------------------------------------------------------


@dataclass
class FuzzStats:
    frames: int = 0
    groups: int = 0
    by_kind: collections.Counter[str] = field(default_factory=collections.Counter)
    replies: int = 0
    notifications: int = 0
    codes: collections.Counter[int] = field(default_factory=collections.Counter)
    closed_by_daemon: collections.Counter[str] = field(default_factory=collections.Counter)
    internal: collections.Counter[str] = field(default_factory=collections.Counter)
    valid: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    replacing_groups: int = 0
    rss_start: int = 0  # after warm-up
    rss_max: int = 0
    rss_end: int = 0
    elapsed: float = 0.0
    rtts: list[float] = field(default_factory=list)
    lost: int = 0


class Fuzzer:
    """Sends FrameGen's groups to a daemon and checks everything it says and does."""

    def __init__(
        self,
        socket_path: str,
        pid: int,
        data_dir: Path,
        dev_root: Path,
        *,
        seed: int,
        max_message: int = FUZZ_MESSAGE_BYTES,
        max_batch: int = FUZZ_MAX_BATCH,
        valid_swaps: bool = False,
    ) -> None:
        self.path = socket_path
        self.pid = pid
        self.data_dir = data_dir
        self.watchdog = Watchdog(socket_path)
        discover = self.call_once("rpc.discover")
        self.gen = FrameGen(
            random.Random(seed),
            catalogue(discover),
            max_message=max_message,
            max_batch=max_batch,
            hints=self.world_hints(dev_root),
            valid_swaps=valid_swaps,
        )
        self.stats = FuzzStats()
        self.conns: dict[str, Wire | None] = dict.fromkeys(FRAMINGS)
        self._sentinel = 0
        self._methods: dict[int, str] = {}
        self._replacing_sent = -1e9  # when a db.reset/restore/import (maybe valid) was last sent
        self._last_words = ""  # the last error without an id: why a connection was closed

    def call_once(self, method: str, params: dict[str, Any] | None = None) -> Any:
        wire = Wire(self.path, "ndjson")
        try:
            body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
            wire.send(json.dumps(body).encode() + b"\n")
            reply = wire.read()
            assert reply is not None
            return json.loads(reply)["result"]
        finally:
            wire.close()

    def world_hints(self, dev_root: Path) -> dict[str, list[Any]]:
        """Valid-looking values for params named so: real folders, real backups, real ids."""
        data = self.data_dir
        # Not the data folder: registering data/db makes the daemon rescan it after each of
        # its own writes, for ever (see the report); that is found, and kept out of the mix.
        folders = [str(dev_root), "/", "/tmp", "/proc", "/nonexistent"]
        return {
            "path": [*folders, str(data / "exports" / "x.json")],
            "project": [1, 2, 3, "/", str(dev_root), "proc"],
            "name": ["nope.db"],
            "kind": ["backup", "quality_scan", "maintenance", "retention"],
            "namespace": ["fuzz", "huge", "deep", "a"],
            "since": [None, 2**31],  # a small `since` replays the whole event log, again and again
        }

    def refresh_hints(self) -> None:
        for folder, hint in (("backups", "name"), ("exports", "path")):
            with contextlib.suppress(OSError):
                names = sorted(os.listdir(self.data_dir / folder))[-5:]
                found = (
                    names if hint == "name" else [str(self.data_dir / folder / n) for n in names]
                )
                self.gen.hints[hint] = ["nope.db", *found]

    # connections ------------------------------------------------------------------------
    def conn(self, framing: str) -> Wire:
        """The connection for this framing, opened with a request of ours so that whatever
        the fuzz sends first cannot make it the other framing."""
        wire = self.conns[framing]
        if wire is None:
            wire = Wire(self.path, framing)
            self.conns[framing] = wire
            self.sync(framing, wire, "a new connection")
        return wire

    def drop(self, framing: str) -> None:
        wire = self.conns[framing]
        if wire is not None:
            wire.close()
        self.conns[framing] = None

    def take(self, body: bytes, what: str) -> list[dict[str, Any]]:
        items = check_frame(body)
        for item in items:
            if "id" not in item:
                self.stats.notifications += 1
                continue
            self.stats.replies += 1
            error = item.get("error")
            if error is not None:
                self.stats.codes[error["code"]] += 1
                if error["code"] == -32603:
                    self.stats.internal[error["message"]] += 1
            if item["id"] is None and error is not None:
                self._last_words = error["message"][:200]
            method = self._methods.pop(item["id"], None) if isinstance(item["id"], int) else None
            if method is not None:
                self.stats.valid[method]["ok" if error is None else error["data"]["kind"]] += 1
        return items

    # one group --------------------------------------------------------------------------
    def step(self) -> None:
        framing = self.gen.rng.choice(FRAMINGS)
        self.send_group(framing, self.gen.group(framing))

    def send_group(self, framing: str, frames: list[Frame]) -> None:
        stats = self.stats
        what = ", ".join(f.kind for f in frames)
        wire = self.conn(framing)
        for f in frames:
            stats.by_kind[f.kind] += 1
            self._methods.update(f.methods)
            if f.replaces:
                self._replacing_sent = time.monotonic()
                stats.replacing_groups += 1
        stats.frames += len(frames)
        stats.groups += 1
        usable = [f for f in frames if not f.end]
        if usable:
            if not wire.send(b"".join(f.data for f in usable)):
                self.read_to_end(wire, what)
                raise FuzzFailure(
                    f"the daemon closed a {framing} connection after: {what} "
                    f"(saying {self._last_words or 'nothing'}; "
                    f"{[f.data[:80] for f in usable]!r})"
                )
            self.sync(framing, wire, what)
        ending = next((f for f in frames if f.end), None)
        if ending is not None:
            self.end(framing, wire, ending, what)

    def sync(self, framing: str, wire: Wire, what: str) -> None:
        """Send a request of our own and read everything up to its reply."""
        self._sentinel += 1
        sentinel = f"sentinel-{self._sentinel}"
        message = {"jsonrpc": "2.0", "id": sentinel, "method": "daemon.hello"}
        if not wire.send(frame(framing, json.dumps(message).encode())):
            raise FuzzFailure(f"the daemon closed a {framing} connection after: {what}")
        while True:
            try:
                body = wire.read()
            except TimeoutError:
                raise FuzzFailure(f"no answer on {framing} after: {what}") from None
            if body is None:
                raise FuzzFailure(
                    f"the daemon closed a {framing} connection after: {what} "
                    f"(saying {self._last_words or 'nothing'})"
                )
            if any(item.get("id") == sentinel for item in self.take(body, what)):
                return

    def end(self, framing: str, wire: Wire, ending: Frame, what: str) -> None:
        self.conns[framing] = None
        if ending.kind == "random stream":  # on a new connection: it decides the framing
            wire.close()
            wire = Wire(self.path, framing_of(ending.data))
        try:
            sent = wire.send(ending.data)
            if ending.end == "drop":
                return
            if ending.end == "any" and sent:
                with contextlib.suppress(OSError):
                    wire.sock.shutdown(socket.SHUT_WR)
            kinds = self.read_to_end(wire, what)
            if ending.end == "closed":
                if ending.expect not in kinds:
                    raise FuzzFailure(
                        f"{ending.kind} {ending.data[:60]!r}: closed with {kinds or 'no error'}, "
                        f"expected {ending.expect}"
                    )
                self.stats.closed_by_daemon[ending.kind] += 1
        finally:
            wire.close()

    def read_to_end(self, wire: Wire, what: str) -> list[str]:
        """Every frame until the daemon closes the connection; the error kinds with id null."""
        kinds: list[str] = []
        while True:
            try:
                body = wire.read()
            except TimeoutError:
                raise FuzzFailure(
                    f"the daemon did not close the connection after: {what}"
                ) from None
            if body is None:
                return kinds
            for item in self.take(body, what):
                if item.get("id", 0) is None and "error" in item:
                    kinds.append(item["error"]["data"]["kind"])

    # the run ----------------------------------------------------------------------------
    def run(
        self, frames: int, *, warmup: int, progress: Callable[[FuzzStats], None] | None = None
    ) -> FuzzStats:
        stats = self.stats
        started = time.monotonic()
        next_report = (stats.frames // 10_000 + 1) * 10_000
        warm = not warmup or stats.frames > 0
        while stats.frames < frames:
            if warm:
                self.step()
            else:  # every kind of frame a few times first: the biggest raise the allocator's
                # high-water mark once, and RSS growth after that means something
                make = self.gen.kinds[stats.groups % len(self.gen.kinds)][1]
                framing = FRAMINGS[stats.groups // len(self.gen.kinds) % 2]
                self.send_group(framing, [make(framing) for _ in range(8)])
                warm = stats.groups >= WARMUP_GROUPS_PER_KIND * len(self.gen.kinds)
            lost_before = self.watchdog.lost
            self.watchdog.check(fresh=stats.groups % 100 == 0)
            # A notification (or a reply after ours) may land later: allow a while.
            replacing = time.monotonic() - self._replacing_sent < 60
            if self.watchdog.lost > lost_before and not replacing:
                raise FuzzFailure(
                    "the watchdog's kv value vanished and nothing replaced the database"
                )
            rss = rss_bytes(self.pid)
            if stats.rss_start == 0 and warm and stats.frames >= warmup:
                stats.rss_start = rss
            elif stats.rss_start:
                stats.rss_max = max(stats.rss_max, rss)
            if stats.groups % 500 == 0:
                self.refresh_hints()
            if progress is not None and stats.frames >= next_report:
                next_report += 10_000
                progress(stats)
        for framing in FRAMINGS:
            self.drop(framing)
        stats.rss_end = rss_bytes(self.pid)
        stats.rss_max = max(stats.rss_max, stats.rss_end, stats.rss_start)
        stats.elapsed += time.monotonic() - started
        stats.rtts = self.watchdog.rtts
        stats.lost = self.watchdog.lost
        return stats

    def close(self) -> None:
        for framing in FRAMINGS:
            self.drop(framing)
        self.watchdog.close()


def handler_failures(log_text: str) -> collections.Counter[str]:
    """The exception (type: message) behind each -32603, from the daemon's JSON log lines."""
    found: collections.Counter[str] = collections.Counter()
    for line in log_text.splitlines():
        if '"handler failed"' not in line:
            continue
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            last = record.get("exception", "").strip().splitlines()[-1:]
            found[f"{record.get('method')}: {last[0] if last else '?'}"] += 1
    return found


def crashes(log_text: str) -> list[str]:
    """Log lines that mean something escaped the RPC layer's own handling (a transport
    callback that raised, a dispatch that failed): they must never appear."""
    marks = ("Fatal error", "connection task failed", "dispatch failed", "Exception in callback")
    return [line[:300] for line in log_text.splitlines() if any(m in line for m in marks)]


def logged_errors(log_text: str) -> collections.Counter[str]:
    """Every error the daemon logged, by logger and event, but the -32603 ones (see
    handler_failures): what random-but-valid calls did elsewhere in the daemon."""
    found: collections.Counter[str] = collections.Counter()
    for line in log_text.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if record.get("level") == "error" and record.get("event") != "handler failed":
                found[f"{record.get('logger')}: {record.get('event')}"] += 1
    return found
