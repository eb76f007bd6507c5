"""The dispatcher without any transport: bytes in, bytes out, whatever the bytes."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.rpc.dispatcher import Call, Dispatcher, Session
from daemon.rpc.errors import NotFound
from daemon.rpc.registry import Methods, Params, ProgressParams, Registry


class EchoParams(Params, frozen=True):
    text: str
    times: int = 1


class Echoed(msgspec.Struct):
    text: str


class MoodParams(Params, frozen=True):
    mood: Literal["calm", "busy"]
    moods: list[Literal["calm", "busy"]] = msgspec.field(default_factory=list)


class WorkParams(ProgressParams, frozen=True):
    steps: int


methods = Methods()  # a small real module: the dispatcher cannot tell it from the daemon's


@methods("test.echo")
async def echo(ctx: object, call: Call, params: EchoParams) -> Echoed:
    """Repeat the text."""
    return Echoed(params.text * params.times)


@methods("test.missing")
async def missing(ctx: object, call: Call, params: EchoParams) -> Echoed:
    """Always not found."""
    raise NotFound(f"no {params.text}", what=params.text)


@methods("test.bug")
async def bug(ctx: object, call: Call, params: EchoParams) -> Echoed:
    """A handler with a bug."""
    raise ZeroDivisionError("secret internals")


@methods("test.mood")
async def mood(ctx: object, call: Call, params: MoodParams) -> str:
    """Say the mood back."""
    return params.mood


@methods("test.work")
async def work(ctx: object, call: Call, params: WorkParams) -> int:
    """Report progress for each step."""
    for step in range(params.steps):
        call.progress(f"step {step}", 100 * step // params.steps)
        await asyncio.sleep(0)
    return params.steps


@methods("test.phases")
async def phases(ctx: object, call: Call, params: WorkParams) -> int:
    """Two phases, each reporting 0 to 100 (an operation whose phases each count from 0)."""
    for phase in ("copy", "verify"):
        for pct in (0, 50, 100):
            call.progress(f"{phase} {pct}", pct)
        call.progress(f"{phase} done")
    return params.steps


class Recorder(Session):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, Any]] = []

    def notify(self, method: str, params: Any) -> None:
        self.sent.append((method, msgspec.json.decode(msgspec.json.encode(params))))


def make(state: str = "ready") -> Dispatcher:
    registry = Registry()
    methods.bind(registry, None)
    return Dispatcher(registry, lambda: state, max_batch=50)  # type: ignore[arg-type, return-value]


def handle(dispatcher: Dispatcher, frame: bytes, session: Session | None = None) -> Any:
    reply, _ = asyncio.run(dispatcher.handle(frame, session or Recorder()))
    return None if reply is None else json.loads(reply)


def test_result_error_and_internal_error() -> None:
    d = make()
    ok = handle(
        d, b'{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":"ab","times":2}}'
    )
    assert ok == {"jsonrpc": "2.0", "id": 1, "result": {"text": "abab"}}
    nf = handle(d, b'{"jsonrpc":"2.0","id":2,"method":"test.missing","params":{"text":"x"}}')
    assert nf["error"] == {
        "code": -32001,
        "message": "no x",
        "data": {"kind": "not_found", "what": "x"},
    }
    bug = handle(d, b'{"jsonrpc":"2.0","id":3,"method":"test.bug","params":{"text":"x"}}')
    assert bug["error"]["code"] == -32603 and "secret" not in json.dumps(bug)


def test_not_ready_refuses_with_starting() -> None:
    reply = handle(
        make("migrating"), b'{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":"a"}}'
    )
    assert reply["error"]["data"] == {"kind": "starting", "state": "migrating"}
    stopping = handle(
        make("stopping"), b'{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":"a"}}'
    )
    assert stopping["error"]["data"]["kind"] == "shutting_down"


def test_progress_begin_report_end() -> None:
    session = Recorder()
    reply = handle(
        make(),
        b'{"jsonrpc":"2.0","id":1,"method":"test.work","params":{"steps":3,"workDoneToken":"t1"}}',
        session,
    )
    assert reply["result"] == 3
    kinds = [p["value"]["kind"] for m, p in session.sent if m == "$/progress"]
    assert kinds == ["begin", "report", "report", "end"]
    assert all(p["token"] == "t1" for _, p in session.sent)
    quiet = Recorder()
    handle(make(), b'{"jsonrpc":"2.0","id":1,"method":"test.work","params":{"steps":3}}', quiet)
    assert quiet.sent == []  # no token, no progress


def test_too_deep_json_is_a_parse_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert handle(make(), deep)["error"]["code"] == -32700
    nested_params = (
        b'{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"text":'
        + b"[" * 5000
        + b"]" * 5000
        + b"}}"
    )
    assert handle(make(), nested_params)["error"]["code"] in (-32700, -32602)


def test_batch_limit() -> None:
    batch = json.dumps(
        [
            {"jsonrpc": "2.0", "id": i, "method": "test.echo", "params": {"text": "a"}}
            for i in range(51)
        ]
    ).encode()
    reply = handle(make(), batch)
    assert isinstance(reply, dict) and reply["error"]["code"] == -32600
    assert "exceeds the limit of 50" in reply["error"]["message"]


def check_reply(reply: Any) -> None:
    items = reply if isinstance(reply, list) else [reply]
    assert items, "a batch reply is never empty"
    for item in items:
        assert item["jsonrpc"] == "2.0" and "id" in item
        assert ("result" in item) != ("error" in item)
        if "error" in item:
            assert isinstance(item["error"]["code"], int)
            assert item["error"]["data"]["kind"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
request_like = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]) | json_values,
        "method": st.sampled_from(
            ["test.echo", "test.missing", "test.bug", "test.work", "nope", "$/cancelRequest"]
        )
        | json_values,
        "params": json_values
        | st.fixed_dictionaries({"text": st.text() | json_values}, optional={"times": json_values}),
        "id": json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_never_break_the_dispatcher(data: bytes) -> None:
    reply, _ = asyncio.run(make().handle(data, Recorder()))
    if reply is not None:
        check_reply(json.loads(reply))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(request_like, st.lists(request_like, max_size=5), json_values))
def test_random_messages_get_well_formed_answers(message: Any) -> None:
    frame = json.dumps(message).encode()
    reply, _ = asyncio.run(make().handle(frame, Recorder()))
    if reply is None:
        # Only notifications (or a batch of them) go unanswered.
        items = message if isinstance(message, list) else [message]
        assert items and all(isinstance(m, dict) and "id" not in m for m in items)
    else:
        check_reply(json.loads(reply))


def test_progress_never_goes_back() -> None:
    """Whatever an operation reports, a client sees percentages that only rise, and once one
    was given every later message (the end too) carries one: a missing figure read as 0 made a
    finished scan show 100 % then 0 %."""
    session = Recorder()
    reply = handle(
        make(),
        b'{"jsonrpc":"2.0","id":1,"method":"test.phases","params":{"steps":2,"workDoneToken":7}}',
        session,
    )
    assert reply["result"] == 2
    values = [p["value"] for m, p in session.sent if m == "$/progress"]
    assert [v["kind"] for v in values] == ["begin", *["report"] * 7, "end"]
    assert [v["percentage"] for v in values] == [0, 50, *[100] * 7]
    assert values[-1] == {"kind": "end", "message": "done", "percentage": 100}


def test_an_enum_value_that_is_not_one_lists_the_allowed() -> None:
    d = make()
    for params, field in (
        ('{"mood":"sleepy"}', "mood"),
        ('{"mood":"calm","moods":["x"]}', "moods"),
    ):
        frame = b'{"jsonrpc":"2.0","id":1,"method":"test.mood","params":%s}' % params.encode()
        error = handle(d, frame)["error"]
        assert error["code"] == -32602 and error["data"]["field"].startswith(field)
        assert sorted(error["data"]["allowed"]) == ["busy", "calm"]
        assert "allowed: " in error["message"] and "calm" in error["message"].split("allowed")[1]
