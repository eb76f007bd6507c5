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

The machinery here (Wire, Watchdog, FrameGen, Fuzzer, the abusers) is shared with
tests/test_reliability_fuzz.py.
"""

from __future__ import annotations

import collections
import contextlib
import json
import multiprocessing
import os
import random
import re
import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench import common
from bench.common import Table, fmt_ms, fmt_ratio, median, percentile

FRAMINGS = ("ndjson", "lsp")
WATCH_NS, WATCH_KEY, WATCH_VALUE = "reliability-watch", "alive", {"alive": True}
# The fuzzed daemon: small limits so oversized frames are cheap, everything else the default.
FUZZ_MESSAGE_BYTES = 256 * 1024
FUZZ_MAX_BATCH = 5000
FUZZ_CONFIG = {"max_message_bytes": FUZZ_MESSAGE_BYTES, "max_batch": FUZZ_MAX_BATCH}
RSS_GOAL = 20 * 1024 * 1024
WARMUP_GROUPS_PER_KIND = 10  # groups of eight frames of each kind, before the random mix
EXCLUDED = frozenset({"daemon.shutdown"})  # the one method that stops the daemon on purpose
# Methods that replace the whole database: the watchdog's value may vanish after one.
REPLACES_DATABASE = frozenset({"db.reset", "db.restore", "db.import"})
# Swapping the file under the paused writer, many times a second, finds bugs outside the RPC
# layer (one makes the daemon stop answering: see the report), so by default these are sent
# with wrong params only; `valid_swaps=True` sends them valid too.
SWAPS = REPLACES_DATABASE | {"db.repair"}
# Too slow to put hundreds of in one batch (each copies or walks something).
HEAVY = frozenset({"db.backup", "db.repair", "db.reset", "db.restore", "db.import", "db.export",
                   "db.check", "jobs.run", "projects.scan", "quality.scan",
                   "projects.register"})  # fmt: skip


class FuzzFailure(AssertionError):
    """The daemon broke a promise; the message says which, with the group that did it."""


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# --- the wire ------------------------------------------------------------------------------


def frame(framing: str, body: bytes) -> bytes:
    return (
        body + b"\n" if framing == "ndjson" else b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )


def framing_of(first_bytes: bytes) -> str:
    """What the daemon will take the connection for (framing.detect)."""
    stripped = first_bytes.lstrip(b" \t\r\n")
    return "ndjson" if stripped[:1] in (b"{", b"[") else "lsp"


class Wire:
    """One blocking connection in one framing: bytes out, whole frames in."""

    def __init__(self, path: str, framing: str, timeout: float = 30.0) -> None:
        self.framing = framing
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self._buffer = bytearray()
        self._pos = 0  # where the unread part of _buffer starts

    def send(self, data: bytes) -> bool:
        """False if the daemon has closed the connection. Replies that arrive meanwhile are
        kept for read(): a client that sends without reading would deadlock with the daemon
        (it stops reading a connection whose replies are not taken)."""
        view = memoryview(data)
        timeout = self.sock.gettimeout()
        try:
            while view:
                readable, writable, _ = select.select([self.sock], [self.sock], [], timeout)
                if not readable and not writable:
                    raise TimeoutError("the daemon neither read nor wrote")
                if readable and not self._fill():
                    return False
                if writable:
                    view = view[self.sock.send(view[: 1 << 18]) :]
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(1 << 20)
        except ConnectionResetError:
            return False
        if self._pos > len(self._buffer) // 2:  # drop what was read (amortised O(1))
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += chunk
        return bool(chunk)

    def _take(self, end: int, skip: int = 0) -> bytes:
        data = bytes(self._buffer[self._pos : end])
        self._pos = end + skip
        return data

    def read(self) -> bytes | None:
        """The next frame's body; None once the daemon closed the connection."""
        buffer = self._buffer
        if self.framing == "ndjson":
            while (end := buffer.find(b"\n", self._pos)) < 0:
                if not self._fill():
                    return None
            return self._take(end, 1)
        while (end := buffer.find(b"\r\n\r\n", self._pos)) < 0:
            if not self._fill():
                return None
        head = self._take(end, 4)
        match = re.fullmatch(rb"Content-Length: (\d+)", head)
        if match is None:
            raise FuzzFailure(f"the daemon sent a malformed header block {head[:100]!r}")
        size = int(match.group(1))
        while len(buffer) - self._pos < size:
            if not self._fill():
                raise FuzzFailure("the daemon closed the connection in the middle of a frame")
        return self._take(self._pos + size)

    def close(self) -> None:
        self.sock.close()


def check_frame(body: bytes) -> list[dict[str, Any]]:
    """The messages in one frame from the daemon, each checked to be well-formed."""
    try:
        decoded = json.loads(body)
    except ValueError:
        raise FuzzFailure(f"the daemon sent a frame that is not JSON: {body[:200]!r}") from None
    items = decoded if isinstance(decoded, list) else [decoded]
    if not items:
        raise FuzzFailure("the daemon sent an empty batch reply")
    for item in items:
        if not isinstance(item, dict) or item.get("jsonrpc") != "2.0":
            raise FuzzFailure(f"not a JSON-RPC 2.0 message: {body[:200]!r}")
        if "id" not in item and isinstance(item.get("method"), str):
            if isinstance(decoded, list):
                raise FuzzFailure(f"a notification inside a batch reply: {body[:200]!r}")
            continue
        if "id" not in item or ("result" in item) == ("error" in item):
            raise FuzzFailure(f"not a response (id, and result or error): {body[:200]!r}")
        error = item.get("error")
        if error is not None and not (
            isinstance(error.get("code"), int)
            and isinstance(error.get("message"), str)
            and isinstance(error.get("data", {}).get("kind"), str)
        ):
            raise FuzzFailure(f"a malformed error object: {body[:200]!r}")
    return items


class Watchdog:
    """The other client: kv.get round trips on its own connection, timed."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout
        self.wire = Wire(path, "ndjson", timeout)
        self.rtts: list[float] = []
        self.lost = 0  # times its value was gone (a db.reset/restore/import replaced the file)
        self._n = 0
        self.put()

    def _call(self, wire: Wire, method: str, params: dict[str, Any]) -> Any:
        self._n += 1
        message = {"jsonrpc": "2.0", "id": self._n, "method": method, "params": params}
        if not wire.send(json.dumps(message).encode() + b"\n"):
            raise FuzzFailure(f"the watchdog's connection was closed (sending {method})")
        try:
            body = wire.read()
        except TimeoutError:
            raise FuzzFailure(
                f"the daemon did not answer {method} within {self.timeout} s"
            ) from None
        if body is None:
            raise FuzzFailure(f"the watchdog's connection was closed (waiting for {method})")
        reply = check_frame(body)[0]
        if reply.get("id") != self._n or "result" not in reply:
            raise FuzzFailure(f"the watchdog's {method} failed: {body[:300]!r}")
        return reply["result"]

    def put(self) -> None:
        params = {"namespace": WATCH_NS, "key": WATCH_KEY, "value": WATCH_VALUE}
        self._call(self.wire, "kv.set", params)

    def check(self, fresh: bool = False) -> float:
        """One kv.get round trip (on a new connection if `fresh`); its time in seconds."""
        wire = Wire(self.path, "ndjson", self.timeout) if fresh else self.wire
        try:
            started = time.perf_counter()
            result = self._call(wire, "kv.get", {"namespace": WATCH_NS, "key": WATCH_KEY})
            elapsed = time.perf_counter() - started
        finally:
            if fresh:
                wire.close()
        self.rtts.append(elapsed)
        if result.get("value") != WATCH_VALUE:
            self.lost += 1
            self.put()
        return elapsed

    def close(self) -> None:
        self.wire.close()


# --- what to send --------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    required: bool
    schema: dict[str, Any]


def catalogue(discover: dict[str, Any]) -> dict[str, list[Param]]:
    """Every method of the OpenRPC document but daemon.shutdown, with its params."""
    return {
        m["name"]: [Param(p["name"], bool(p.get("required")), p["schema"]) for p in m["params"]]
        for m in discover["methods"]
        if m["name"] not in EXCLUDED
    }


class Raw:
    """A JSON token json.dumps cannot write (NaN, 1e999, a 400-digit integer…)."""

    def __init__(self, token: bytes) -> None:
        self.token = token


WEIRD: list[Any] = [
    None, True, False, 0, -1, 1.5, -0.0, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1,
    10**30, 1e308, -1e308, 5e-324, "", " ", "NaN", "nan", "Infinity", "-Infinity", "1e999", "12",
    "-0", "0x10", "null", "true", "\x00", "x" * 5000, "é" * 300, "\U0001f600", "../../etc/passwd",
    "/", "~", "$HOME", "%s%n", "' OR 1=1 --", "*", "%", "_", "\\", "a\x00b", [], [1, 2], {},
    {"a": 1}, [[[]]], "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00", "2024-02-30T00:00:00Z",
    "not a date", Raw(b"NaN"), Raw(b"Infinity"), Raw(b"-Infinity"), Raw(b"1e999"),
    Raw(b"1" + b"0" * 400), Raw(b"-0"), Raw(b"1.0e+309"),
]  # fmt: skip
BAD_TOKENS = [b"0x10", b"01", b"+1", b".5", b"tru", b"nul", b"'s'", b"undefined", b"1.", b"--1"]
BAD_UTF8 = [b"\xff", b"\xfe", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xf0\x28\x8c\xbc",
            b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\x80",
            b"\xf8\x88\x80\x80\x80"]  # fmt: skip
BAD_ESCAPES = [b"\\ud800", b"\\udfff", b"\\ud800\\u0041", b"\\u00", b"\\x41", b"\\", b"\\u0000"]
ODD_METHODS = ["kv.gte", "KV.GET", "kv.get ", " kv.get", "", "rpc.discover.x", "$/unknown",
               "daemon.shutdown2", "x" * 500, "kv", ".", "kv..get", "été", "__init__",
               "constructor", "rpc.", "kv.get\x00", "kv/get", "$/cancelrequest"]  # fmt: skip
EXTRA_KEYS = ["extra", "nmespace", "Namespace", "__proto__", "constructor", "", "namespace ",
              "workDoneToken", "id", "params", "x" * 300]  # fmt: skip
LSP_BENIGN = [  # header blocks a reader must take (before the body)
    b"content-length: %d\r\n\r\n",
    b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n",
    b"X-Unknown: yes\r\nContent-Length: %d\r\n\r\n",
    b"Content-Length:%d\r\n\r\n",
    b"Content-Length: 000%d\r\n\r\n",
    b"Content-Length: 1\r\nContent-Length: %d\r\n\r\n",
]
LSP_FATAL = [  # header blocks that end the stream: (bytes, the error kind the daemon must send)
    (b"Content-Type: application/json\r\n\r\n{}", "parse_error"),  # no Content-Length
    (b"Content-Length: abc\r\n\r\n", "parse_error"),
    (b"Content-Length: -5\r\n\r\n", "parse_error"),
    (b"Content-Length: +5\r\n\r\n", "parse_error"),
    (b"Content-Length: 5.0\r\n\r\n", "parse_error"),
    (b"Content-Length: 0x10\r\n\r\n", "parse_error"),
    (b"Content-Length: \xef\xbc\x95\r\n\r\n", "parse_error"),  # a fullwidth 5
    (b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n", "too_large"),
    (b"Content-Length: 99999999999999999999999999\r\n\r\n", "too_large"),
    (b"Content-Length 12\r\n\r\n", "parse_error"),  # no colon
    (b"Content-Length: 12\n\n{}", "parse_error"),  # LF without CR
    (b"X-Long: " + b"a" * 9000, "parse_error"),  # a header block with no end
    (b"Content-Length: 2\r\nContent-Type: text/plain; charset=latin-1\r\n\r\n{}", "parse_error"),
    (b"Content-Length: 2\r\n\x00\x00\r\n\r\n{}", "parse_error"),
    (b": 2\r\n\r\n{}", "parse_error"),
]


@dataclass
class Frame:
    kind: str
    data: bytes
    end: str = ""  # "": the connection stays usable; "closed": the daemon must close it, saying
    # `expect`; "any": the stream is garbage (we half-close, then read to the end); "drop": we
    # close it ourselves right after sending
    expect: str = ""
    methods: dict[int, str] = field(default_factory=dict)  # id -> method, for valid calls
    replaces: bool = False  # may replace the database (db.reset/restore/import, valid-looking)


class FrameGen:
    """Frames from a seeded random.Random (the same seed gives the same frames)."""

    def __init__(
        self,
        rng: random.Random,
        methods: dict[str, list[Param]],
        *,
        max_message: int,
        max_batch: int,
        hints: dict[str, list[Any]] | None = None,
        valid_swaps: bool = False,
    ) -> None:
        self.rng = rng
        self.methods = methods
        self.names = sorted(methods)
        self.valid_names = self.names if valid_swaps else [m for m in self.names if m not in SWAPS]
        self.max_message = max_message
        self.max_batch = max_batch
        self.hints = hints if hints is not None else {}
        self.recent_ids: collections.deque[Any] = collections.deque(maxlen=32)
        self._id = 0
        self.kinds = self.mix()  # (cumulative probability, maker) of each usable kind

    # values -----------------------------------------------------------------------------
    def text(self, size: int) -> str:
        alphabet = 'abcxyz019 -_./é€\U0001f600\t"\\'
        return "".join(self.rng.choice(alphabet) for _ in range(size))

    def any_json(self, depth: int = 0) -> Any:
        r = self.rng.random()
        if depth > 2 or r < 0.6:
            return self.rng.choice([None, True, 0, -7, 3.25, "", "v", self.text(8), 2**40])
        if r < 0.8:
            return [self.any_json(depth + 1) for _ in range(self.rng.randint(0, 3))]
        return {self.text(3): self.any_json(depth + 1) for _ in range(self.rng.randint(0, 3))}

    def valid(self, schema: dict[str, Any], name: str = "") -> Any:
        rng = self.rng
        hints = self.hints.get(name)
        if hints and rng.random() < 0.5:
            return rng.choice(hints)
        if "enum" in schema:
            return rng.choice(schema["enum"])
        if "anyOf" in schema:
            return self.valid(rng.choice(schema["anyOf"]), name)
        kind = schema.get("type")
        if kind == "integer":
            low = schema.get("minimum", -5)
            high = schema.get("maximum", low + 1000)
            return rng.choice([low, high, rng.randint(low, high), rng.randint(low, low + 10)])
        if kind == "number":
            return rng.choice([0.001, 1.0, 30.0, 86400.0, 1e6])
        if kind == "string":
            if schema.get("format") == "date-time":
                return rng.choice(["2099-01-01T00:00:00Z", "2030-06-01T12:00:00+02:00"])
            low = schema.get("minLength", 0)
            return self.text(rng.randint(low, max(low, min(schema.get("maxLength", 24), 24))))
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "array":
            return [self.valid(schema.get("items", {}), name) for _ in range(rng.randint(0, 3))]
        if kind == "object":
            return {} if rng.random() < 0.5 else {self.text(4): self.any_json()}
        if kind == "null":
            return None
        return self.any_json()

    def wrong(self, schema: dict[str, Any]) -> Any:
        rng = self.rng
        options: list[Any] = [rng.choice(WEIRD), rng.choice(WEIRD), Raw(rng.choice(BAD_TOKENS))]
        for branch in schema.get("anyOf", [schema]):
            if "maxLength" in branch:
                options.append("y" * (branch["maxLength"] + 1))
            if "minimum" in branch:
                options.append(branch["minimum"] - 1)
            if "maximum" in branch:
                options.append(branch["maximum"] + 1)
            if "enum" in branch:
                options.append(str(branch["enum"][0]).upper() + "x")
            if branch.get("type") == "integer":
                options += ["12", "NaN", 1.5, 2**63, -(2**63) - 1, True]
        return rng.choice(options)

    def params(self, method: str, *, valid: bool) -> Any:
        params = self._params_for(method, valid=valid)
        if not valid and method in SWAPS and self.valid_names is not self.names:
            # A "wrong" value may happen to be right (confirm: true): make sure it is refused.
            return {**params, "__unknown__": 1} if isinstance(params, dict) else {"__unknown__": 1}
        return params

    def _params_for(self, method: str, *, valid: bool) -> Any:
        rng = self.rng
        spec = self.methods[method]
        params = {
            p.name: self.valid(p.schema, p.name) for p in spec if p.required or rng.random() < 0.5
        }
        if valid or (not spec and rng.random() < 0.3):
            return params
        mutation = rng.choice(["type", "type", "missing", "extra", "not_object", "all"])
        required = [p for p in spec if p.required]
        if mutation == "missing" and required:
            params.pop(rng.choice(required).name, None)
        elif mutation == "extra" or not spec:
            for _ in range(rng.randint(1, 3)):
                params[rng.choice(EXTRA_KEYS)] = rng.choice(WEIRD)
        elif mutation == "not_object":
            return rng.choice([[], [1, 2], "x", 1, True, None, 1.5, Raw(b"NaN")])
        else:
            chosen = spec if mutation == "all" else [rng.choice(spec)]
            for p in chosen:
                params[p.name] = self.wrong(p.schema)
        return params

    # messages ---------------------------------------------------------------------------
    def next_id(self) -> int:
        self._id += 1
        self.recent_ids.append(self._id)
        return self._id

    @staticmethod
    def dumps(message: Any) -> bytes:
        """json.dumps, with each Raw written as its bare token."""
        tokens: list[bytes] = []

        def default(value: Any) -> str:
            if isinstance(value, Raw):
                tokens.append(value.token)
                return f"@@raw{len(tokens) - 1}@@"
            raise TypeError(type(value).__name__)

        text = json.dumps(message, default=default, separators=(",", ":")).encode()
        for i, token in enumerate(tokens):
            text = text.replace(b'"@@raw%d@@"' % i, token, 1)
        return text

    def request(self, method: Any, params: Any = None, *, notify: bool = False) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None or self.rng.random() < 0.2:
            message["params"] = params
        if not notify:
            message["id"] = self.next_id()
        return message

    def call(self, *, valid: bool, methods: list[str] | None = None) -> tuple[dict[str, Any], bool]:
        """A request (or, one in ten, a notification) to a known method; whether it may replace
        the database."""
        method = self.rng.choice(methods or (self.valid_names if valid else self.names))
        params = self.params(method, valid=valid)
        message = self.request(method, params, notify=self.rng.random() < 0.1)
        return message, method in REPLACES_DATABASE

    # groups -----------------------------------------------------------------------------
    def group(self, framing: str) -> list[Frame]:
        """One to eight frames that leave the connection usable, sometimes then one that ends
        it."""
        frames = [self.usable(framing) for _ in range(self.rng.choice([1, 1, 2, 3, 5, 8]))]
        if self.rng.random() < 0.12:
            frames.append(self.ending(framing))
        return frames

    def usable(self, framing: str) -> Frame:
        """One frame after which the connection can go on, of a kind drawn by its weight."""
        r = self.rng.random()
        for bound, make in self.kinds:
            if r < bound:
                return make(framing)
        return self._params(framing)

    def mix(
        self, without: frozenset[str] = frozenset()
    ) -> list[tuple[float, Callable[[str], Frame]]]:
        """The kinds of usable frames with their weights (but those named in `without`)."""
        weights: list[tuple[int, Callable[[str], Frame]]] = [
            (30, self._params), (12, self._valid), (4, self._unknown), (6, self._envelope),
            (10, self._random), (5, self._utf8), (3, self._deep), (2, self._huge),
            (6, self._batch), (2, self._cancel), (5, self._headers),
        ]  # fmt: skip
        weights = [(w, make) for w, make in weights if make.__name__[1:] not in without]
        total = sum(w for w, _ in weights)
        kinds: list[tuple[float, Callable[[str], Frame]]] = []
        bound = 0.0
        for weight, make in weights:
            bound += weight / total
            kinds.append((bound, make))
        return kinds

    def _params(self, framing: str) -> Frame:
        message, replaces = self.call(valid=False)
        return Frame("params", frame(framing, self.dumps(message)), replaces=replaces)

    def _valid(self, framing: str) -> Frame:
        message, replaces = self.call(valid=True)
        methods = {message["id"]: message["method"]} if "id" in message else {}
        body = frame(framing, self.dumps(message))
        return Frame("valid", body, methods=methods, replaces=replaces)

    def _unknown(self, framing: str) -> Frame:
        message = self.request(self.rng.choice([*ODD_METHODS, self.text(12)]), self.any_json())
        return Frame("unknown method", frame(framing, self.dumps(message)))

    def _envelope(self, framing: str) -> Frame:
        return Frame("envelope", frame(framing, self.envelope()))

    def _random(self, framing: str) -> Frame:
        return Frame("random bytes", frame(framing, self.random_body(framing)))

    def _utf8(self, framing: str) -> Frame:
        return Frame("invalid utf-8", frame(framing, self.bad_utf8()))

    def _deep(self, framing: str) -> Frame:
        return Frame("deep nesting", frame(framing, self.deep()))

    def _huge(self, framing: str) -> Frame:
        return Frame("huge", frame(framing, self.huge()))

    def _batch(self, framing: str) -> Frame:
        body, replaces = self.batch()
        return Frame("batch", frame(framing, body), replaces=replaces)

    def _cancel(self, framing: str) -> Frame:
        cancel = self.request("$/cancelRequest", {"id": self.cancel_target()}, notify=True)
        return Frame("cancel", frame(framing, self.dumps(cancel)))

    def _headers(self, framing: str) -> Frame:
        if framing == "lsp":
            body = self.dumps(self.request("daemon.hello"))
            return Frame("lsp headers", self.rng.choice(LSP_BENIGN) % len(body) + body)
        junk = b"Content-Length: 5\r\n\r\nhello" if self.rng.random() < 0.5 else b"\r\n \t"
        return Frame("lsp on ndjson", junk + b"\n")

    def cancel_target(self) -> Any:
        if self.recent_ids and self.rng.random() < 0.7:
            return self.rng.choice(list(self.recent_ids))
        return self.rng.choice(WEIRD)

    def envelope(self) -> bytes:
        rng = self.rng
        message, _ = self.call(valid=True, methods=["kv.get", "daemon.status", "kv.list"])
        what = rng.randrange(6)
        if what == 0:
            message["jsonrpc"] = rng.choice(["1.0", 2.0, None, "", "2.0 ", Raw(b"2.0")])
        elif what == 1:
            message["id"] = rng.choice([{"a": 1}, [1], True, 1e308, 2**64, "x" * 10000, -0.0,
                                        Raw(b"1e400"), Raw(b"NaN")])  # fmt: skip
        elif what == 2:
            message["method"] = rng.choice([12, None, [], {}, True])
        elif what == 3:
            message[rng.choice(["result", "error", "jsonrpc2", "ID", ""])] = self.any_json()
        elif what == 4:
            message = {"jsonrpc": "2.0", "id": self.next_id(), "result": self.any_json()}
        else:
            message.pop(rng.choice(["jsonrpc", "method"]))
        body = self.dumps(message)
        if rng.random() < 0.1:  # a duplicate key
            body = body.replace(b"{", b'{"id":"dup","method":"nope",', 1)
        return body

    def random_body(self, framing: str) -> bytes:
        rng = self.rng
        size = rng.choice([0, 1, 2, 7, 64, 512, 4096, rng.randint(0, 65536)])
        body = rng.randbytes(size)
        if rng.random() < 0.5:  # get past the first byte and into the JSON parser
            body = rng.choice([b"{", b"[", b'{"jsonrpc":"2.0","id":1,"method":"kv.get",']) + body
        return body.replace(b"\n", b" ") if framing == "ndjson" else body

    def bad_utf8(self) -> bytes:
        rng = self.rng
        message, _ = self.call(
            valid=True, methods=["kv.get", "kv.set", "projects.get", "daemon.hello"]
        )
        body = self.dumps(message)
        marker = rng.choice(BAD_UTF8 + BAD_ESCAPES)
        spots = [m.end() for m in re.finditer(rb'"', body)]
        where = rng.choice(spots) if spots else len(body)
        return body[:where] + marker + body[where:]

    def deep(self) -> bytes:
        rng = self.rng
        arrays = rng.random() < 0.5
        deepest = (self.max_message - 200) // (2 if arrays else 6)
        depth = min(deepest, rng.choice([64, 256, 1024, 4096, deepest]))
        if arrays:
            opening, closing = (b"[" * depth, b"]" * depth)
        else:
            opening, closing = (b'{"a":' * depth, b"}" * depth)
        nested = opening + b"1" + (closing if rng.random() < 0.9 else b"")
        where = rng.randrange(3)
        if where == 0:
            return nested
        if where == 1:
            return b'{"jsonrpc":"2.0","id":%d,"method":"kv.set","params":{"namespace":"deep",' \
                b'"key":"k","value":%s}}' % (self.next_id(), nested)  # fmt: skip
        return b'[{"jsonrpc":"2.0","id":%d,"method":"daemon.hello","params":%s}]' % (
            self.next_id(),
            nested,
        )

    def huge(self) -> bytes:
        rng = self.rng
        room = self.max_message - 256
        what = rng.randrange(5)
        if what == 0:  # a valid array param with as many items as fit
            method, name, item = rng.choice([
                ("events.list", "topics", "kv"), ("events.list", "topics", None),
                ("jobs.list", "status", "queued"), ("projects.list", "status", "active"),
                ("projects.update", "reset", "name"), ("events.subscribe", "topics", "zz"),
            ])  # fmt: skip
            count = room // 12
            items = [item if item else f"t{i}" for i in range(count)]
            params: dict[str, Any] = {name: items}
            if method == "projects.update":
                params["project"] = 1
            return self.dumps(self.request(method, params))
        if what == 1:  # a kv value as big as fits, refused for a typo (the fuzz stores no big
            # values: a page of them is a reply of up to 10,000 of them, built in memory)
            value = [rng.randint(0, 9) for _ in range(room // 2)]
            params = {"namespace": "huge", "key": "a", "value": value, "ttl": 1}
            return self.dumps(self.request("kv.set", params))
        if what == 2:  # thousands of unknown keys
            params = {f"k{i}": i for i in range(room // 16)}
            return self.dumps(self.request("kv.get", params))
        if what == 3:  # a string far over its maxLength
            return self.dumps(self.request("kv.get", {"namespace": "n" * (room - 64), "key": "k"}))
        return b"[" + b"0," * (room // 2 - 1) + b"0]"  # a huge array as the whole message

    def batch(self) -> tuple[bytes, bool]:
        rng = self.rng
        size = rng.choice([1, 2, 3, 5, 10, 20, 50, 200, rng.choice([1000, 3000, self.max_batch])])
        if size > 500 and rng.random() < 0.25:
            return b"[" + b",".join([b"1"] * (self.max_batch + 1)) + b"]", False  # over the limit
        cheap = [m for m in self.names if m not in HEAVY] if size > 50 else None
        items: list[bytes] = []
        replaces = False
        for _ in range(size):
            r = rng.random()
            if r < 0.5:
                message, may = self.call(valid=r < 0.2, methods=cheap)
                replaces |= may
                items.append(self.dumps(message))
            elif r < 0.6:
                items.append(self.envelope())
            else:
                items.append(self.dumps(rng.choice([1, "x", None, [], {}, [1], self.any_json()])))
        body = b"[" + b",".join(items) + b"]"
        while len(body) >= self.max_message and len(items) > 1:  # under the limit: cut items
            items = items[: len(items) // 2]
            body = b"[" + b",".join(items) + b"]"
        return body, replaces

    def ending(self, framing: str) -> Frame:
        """A frame after which the connection is over, one way or another."""
        rng = self.rng
        r = rng.random()
        if r < 0.3 and framing == "lsp":
            data, kind = rng.choice(LSP_FATAL)
            return Frame("bad lsp header", data, end="closed", expect=kind)
        if r < 0.45:
            if framing == "lsp":  # refused from its header: the body is never sent
                data = b"Content-Length: %d\r\n\r\n" % (self.max_message + rng.randint(1, 10**9))
            elif rng.random() < 0.5:  # a line that never ends
                data = b"[" + b"1," * (self.max_message // 2 + 1)
            else:  # a line that ends, too late
                data = b'{"x":"' + b"y" * self.max_message + b'"}\n'
            return Frame("oversized", data, end="closed", expect="too_large")
        if r < 0.65:  # a message cut short, then the client goes away
            body = self.dumps(self.call(valid=True)[0])
            whole = frame(framing, body)
            return Frame("truncated", whole[: rng.randrange(1, len(whole))], end="drop")
        if r < 0.8:  # a slow request, then the client goes away before its reply
            method = rng.choice(["projects.scan", "quality.scan", "db.backup", "kv.list",
                                 "events.list", "db.check", "db.export"])  # fmt: skip
            params = {"limit": 10000} if method.endswith(".list") else None
            body = self.dumps(self.request(method, params))
            return Frame("gone mid-request", frame(framing, body), end="drop")
        if r < 0.9:  # what the body says is longer or shorter than the body
            body = self.dumps(self.request("daemon.hello"))
            size = len(body) + rng.choice([-10, -1, 1, 50])
            return Frame("wrong content-length", b"Content-Length: %d\r\n\r\n%s" % (size, body),
                         end="any")  # fmt: skip
        return Frame("random stream", self.random_stream(), end="any")

    def random_stream(self) -> bytes:
        rng = self.rng
        start = rng.choice([b"", b"C", b"{", b"[", b" \r\n", b"Content-Length: 5\r\n\r\n"])
        return start + rng.randbytes(rng.choice([1, 16, 300, 5000]))


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


# --- abusers --------------------------------------------------------------------------------

_FORK = multiprocessing.get_context("fork")


@dataclass
class Abuse:
    """What one abuser process saw: one entry per connection it lost, and how."""

    cut_after: list[float] = field(default_factory=list)  # seconds from connect to closed
    sent_before_cut: list[int] = field(default_factory=list)  # bytes
    messages: collections.Counter[str] = field(default_factory=collections.Counter)
    admitted: int = 0
    refused: int = 0
    failure: str = ""


def _first_error(data: bytes) -> str:
    for line in data.splitlines():
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            error = json.loads(line)["error"]
            return f"{error['code']} {error['data']['kind']}: {error['message']}"
    return "closed without a word"


def non_reader(path: str, request: bytes, until: float) -> Abuse:
    """Send `request` again and again, never read; when cut off, start over."""
    out = Abuse()
    while time.monotonic() < until:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.settimeout(0.2)
        opened, sent = time.monotonic(), 0
        try:
            while time.monotonic() < until:
                try:
                    sent += sock.send(request)
                except TimeoutError:
                    continue
        except (BrokenPipeError, ConnectionResetError):
            out.cut_after.append(time.monotonic() - opened)
            out.sent_before_cut.append(sent)
            out.messages["cut off (EPIPE/ECONNRESET)"] += 1
        finally:
            sock.close()
    return out


def connection_hog(path: str, count: int, until: float) -> Abuse:
    """Open `count` connections at once and hold them; note how each is refused or closed."""
    out = Abuse()
    socks: list[tuple[socket.socket, float]] = []
    for _ in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.setblocking(False)
        socks.append((sock, time.monotonic()))
    seen: dict[int, bytes] = {}
    closed: set[int] = set()
    refused_at: set[int] = set()
    while time.monotonic() < until and len(closed) < count:
        for i, (sock, opened) in enumerate(socks):
            if i in closed:
                continue
            try:
                chunk = sock.recv(4096)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                chunk = b""
            seen[i] = seen.get(i, b"") + chunk
            if not chunk:
                closed.add(i)
                message = _first_error(seen[i])
                out.messages[message] += 1
                if "too many connections" in message:
                    refused_at.add(i)
                else:
                    out.cut_after.append(time.monotonic() - opened)
        time.sleep(0.01)
    out.refused = len(refused_at)
    out.admitted = count - out.refused
    for sock, _ in socks:
        sock.close()
    return out


def _poll(sock: socket.socket) -> bytes | None:
    """What a non-blocking socket has for us: None if nothing yet, b"" once closed."""
    try:
        return sock.recv(4096)
    except BlockingIOError:
        return None
    except ConnectionResetError:
        return b""


def slow_sender(path: str, count: int, interval: float, body: bytes, until: float) -> Abuse:
    """`count` connections, each sending `body` one byte every `interval` seconds, round and
    round; note when and how each is closed (looking every 20 ms)."""
    out = Abuse(admitted=count)
    socks: list[tuple[socket.socket, float]] = []
    for _ in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sock.setblocking(False)
        socks.append((sock, time.monotonic()))
    alive = set(range(count))
    received: dict[int, bytes] = collections.defaultdict(bytes)
    position, next_byte = 0, time.monotonic()

    def closed(i: int) -> None:
        alive.discard(i)
        out.cut_after.append(time.monotonic() - socks[i][1])
        out.messages[_first_error(received[i])] += 1

    while time.monotonic() < until and alive:
        send = time.monotonic() >= next_byte
        if send:
            byte = body[position % len(body) : position % len(body) + 1]
            position, next_byte = position + 1, next_byte + interval
        for i in sorted(alive):
            sock = socks[i][0]
            chunk = _poll(sock)
            if chunk is not None:
                received[i] += chunk
                if not chunk:
                    closed(i)
                    continue
            if send:
                try:
                    sock.send(byte)
                except (BrokenPipeError, ConnectionResetError):
                    closed(i)
        time.sleep(min(interval, 0.02))
    for sock, _ in socks:
        sock.close()
    return out


def _child(target: Callable[..., Abuse], args: tuple[Any, ...], pipe: Connection) -> None:
    try:
        result = target(*args)
    except BaseException as e:
        result = Abuse(failure=f"{type(e).__name__}: {e}")
    pipe.send(result)
    pipe.close()


@contextlib.contextmanager
def abusers(jobs: list[tuple[Callable[..., Abuse], tuple[Any, ...]]]) -> Iterator[list[Abuse]]:
    """Run each (target, args) in its own process; the list fills in when the block ends."""
    started: list[tuple[Any, Connection]] = []
    results: list[Abuse] = []
    try:
        for target, args in jobs:
            parent, child = _FORK.Pipe()
            process = _FORK.Process(target=_child, args=(target, args, child), daemon=True)
            process.start()
            child.close()
            started.append((process, parent))
        yield results
        for _, pipe in started:
            if not pipe.poll(120):
                raise TimeoutError("an abuser did not finish")
            result: Abuse = pipe.recv()
            if result.failure:
                raise RuntimeError(f"an abuser failed: {result.failure}")
            results.append(result)
    finally:
        for process, pipe in started:
            pipe.close()
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(10)


def round_trips_for(watchdog: Watchdog, seconds: float, pause: float = 0.0) -> list[float]:
    """kv.get round trips, back to back (or `pause` apart), for `seconds`."""
    rtts: list[float] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        rtts.append(watchdog.check())
        if pause:
            time.sleep(pause)
    return rtts


def merge(results: list[Abuse]) -> Abuse:
    total = Abuse()
    for r in results:
        total.cut_after += r.cut_after
        total.sent_before_cut += r.sent_before_cut
        total.messages.update(r.messages)
        total.admitted += r.admitted
        total.refused += r.refused
    return total


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
        "params only (valid ones, many a second, find the bugs in the report).",
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
