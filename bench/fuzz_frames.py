"""What the fuzz sends: the methods of `rpc.discover` with their params, odd values, and
FrameGen, which makes seeded groups of frames of every kind."""

from __future__ import annotations

import collections
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.fuzz_vocab import (
    BAD_ESCAPES,
    BAD_TOKENS,
    BAD_UTF8,
    EXTRA_KEYS,
    LSP_BENIGN,
    LSP_FATAL,
    ODD_METHODS,
    WEIRD,
    Raw,
)
from bench.fuzz_wire import frame

EXCLUDED = frozenset({"daemon.shutdown"})  # the one method that stops the daemon on purpose
# Methods that replace the whole database: the watchdog's value may vanish after one.
REPLACES_DATABASE = frozenset({"db.reset", "db.restore", "db.import"})
# Swapping the file under the paused writer, many times a second, wipes what the rest of the
# fuzz builds up, so by default these are sent with wrong params only; `valid_swaps=True` sends
# them valid too (that is how a cancelled swap leaving reads waiting for ever was found: see
# bench/RESULTS.md; tests/test_swap_traffic.py keeps it fixed).
SWAPS = REPLACES_DATABASE | {"db.repair"}
# Too slow to put hundreds of in one batch (each copies or walks something).
HEAVY = frozenset({"db.backup", "db.repair", "db.reset", "db.restore", "db.import", "db.export",
                   "db.check", "jobs.run", "projects.scan", "quality.scan",
                   "projects.register"})  # fmt: skip


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
            if "maxLength" in branch and branch["maxLength"] < self.max_message // 2:
                # (one past a limit larger than a message is the message limit's case: huge())
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
        body = self.dumps(message)
        if len(body) >= self.max_message:
            # Several fields each one past its own limit can add up past the message's: that
            # is the message limit's case (the daemon says too_large and closes).
            return Frame("params", frame(framing, body), end="closed", expect="too_large")
        return Frame("params", frame(framing, body), replaces=replaces)

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
