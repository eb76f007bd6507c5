"""Issue 7, items 3 and 4: the daemon under fuzzed frames and resource abuse, both framings.

After every frame (or group of frames) another client must still get its kv.get answered,
and the daemon's memory must stay flat. An abuser must get the documented treatment (cut
off, refused, or closed at a deadline) while a good client keeps being answered. The
machinery (frame generator, watchdog, abusers) is bench/reliability_fuzz.py's, which runs the
long version: `python -m bench reliability_fuzz`.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.abuse import abusers, connection_hog, merge, non_reader, round_trips_for, slow_sender
from bench.common import percentile
from bench.fuzz_run import (
    FUZZ_CONFIG,
    FUZZ_MESSAGE_BYTES,
    RSS_GOAL,
    Fuzzer,
    crashes,
    handler_failures,
)
from bench.fuzz_vocab import EXTRA_KEYS
from bench.fuzz_wire import FRAMINGS, FuzzFailure, Watchdog, Wire, frame, rss_bytes
from tests.helpers import DaemonProcess, wait_for

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def stop_alive_and_sound(daemon: DaemonProcess) -> None:
    """After a module's abuse: the daemon never died, stops cleanly, and logged no crash."""
    assert daemon.process is not None and daemon.process.poll() is None, "the daemon died"
    log = daemon.log()
    assert daemon.stop() == 0
    daemon.cleanup()
    assert not crashes(log), crashes(log)[:3]


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """A daemon whose world holds nothing precious: the fuzz may reset, restore, register…"""
    daemon = DaemonProcess(Path(tmp_path_factory.mktemp("fuzz")), config=FUZZ_CONFIG)
    daemon.start()
    yield daemon
    stop_alive_and_sound(daemon)


@pytest.fixture(scope="module")
def fuzzer(fuzz_daemon: DaemonProcess) -> Iterator[Fuzzer]:
    assert fuzz_daemon.process is not None
    f = Fuzzer(
        fuzz_daemon.socket_path,
        fuzz_daemon.process.pid,
        fuzz_daemon.data_dir,
        fuzz_daemon.dev_root,
        seed=20261122,
    )
    yield f
    f.close()


def handler_bugs(daemon: DaemonProcess) -> list[str]:
    """`method: Exception: message` of each -32603 the daemon logged."""
    return list(handler_failures(daemon.log()))


# --- item 3: fuzzing ------------------------------------------------------------------------


def test_random_frames_leave_the_daemon_answering_with_flat_memory(
    fuzz_daemon: DaemonProcess, fuzzer: Fuzzer
) -> None:
    """3,000 frames of every kind (bench/fuzz_frames.py FrameGen), a kv.get from another
    client after every group. Then, without the frames of 128-256 KiB, 5,000 to warm up the
    daemon's ~140 methods (each first call compiles statements and builds decoders: ~50 MiB,
    once) and 5,000 more: RSS within 20 MiB of where it was before them (measured: flat over
    four windows after the first; the long run in the bench keeps the big frames in)."""
    stats = fuzzer.run(3_000, warmup=1_000)
    assert len(stats.rtts) == stats.groups  # every group was followed by an answered kv.get
    # The stream-ending frames were met with the documented error, then a close.
    assert stats.closed_by_daemon["oversized"] > 0
    assert stats.closed_by_daemon["bad lsp header"] > 0
    assert stats.codes[-32700] and stats.codes[-32600] and stats.codes[-32602]
    assert stats.codes[-32601] and stats.codes[-32009]
    assert not handler_bugs(fuzz_daemon)
    fuzzer.watchdog.check(fresh=True)

    fuzzer.gen.kinds = fuzzer.gen.mix(without=frozenset({"huge"}))
    fuzzer.run(5_000, warmup=0)
    assert fuzz_daemon.process is not None
    before = rss_bytes(fuzz_daemon.process.pid)
    fuzzer.stats.rss_max = 0
    stats = fuzzer.run(5_000, warmup=0)
    growth = stats.rss_max - before
    assert growth <= RSS_GOAL, f"RSS grew {growth / 2**20:.1f} MiB"
    assert not handler_bugs(fuzz_daemon)


def _exchange(fuzzer: Fuzzer, framing: str, data: bytes, what: str) -> None:
    wire = fuzzer.conn(framing)
    if not wire.send(data):
        raise FuzzFailure(f"the daemon closed the connection after {what}")
    fuzzer.sync(framing, wire, what)
    fuzzer.watchdog.check()


@SETTINGS
@given(framing=st.sampled_from(FRAMINGS), body=st.binary(max_size=4096))
def test_any_bytes_as_a_message_get_an_answer(fuzzer: Fuzzer, framing: str, body: bytes) -> None:
    if framing == "ndjson":
        body = body.replace(b"\n", b" ")
    _exchange(fuzzer, framing, frame(framing, body), f"{body[:80]!r}")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@SETTINGS
@given(data=st.data())
def test_any_params_for_every_method_get_a_well_formed_answer(
    fuzzer: Fuzzer, data: st.DataObject
) -> None:
    """Params of the wrong type, missing, extra, or not an object, for every method the
    daemon lists in rpc.discover (daemon.shutdown aside): never -32603, never silence."""
    method = data.draw(st.sampled_from(fuzzer.gen.names))
    names = [p.name for p in fuzzer.gen.methods[method]] + EXTRA_KEYS
    params = data.draw(
        st.dictionaries(st.sampled_from(names), json_values, max_size=5) | json_values
    )
    framing = data.draw(st.sampled_from(FRAMINGS))
    message = {"jsonrpc": "2.0", "id": fuzzer.gen.next_id(), "method": method, "params": params}
    before = fuzzer.stats.codes[-32603]
    _exchange(fuzzer, framing, frame(framing, json.dumps(message).encode()), f"{message}"[:300])
    assert fuzzer.stats.codes[-32603] == before, f"-32603 for {message}"[:500]


header_names = st.sampled_from([b"Content-Length", b"content-length", b"Content-Type", b"X", b""])
header_values = st.one_of(
    st.integers(min_value=-5, max_value=10**30).map(lambda n: str(n).encode()),
    st.binary(max_size=20),
    st.just(b"application/vscode-jsonrpc; charset=utf-8"),
)


@SETTINGS
@given(headers=st.lists(st.tuples(header_names, header_values), max_size=4), cr=st.booleans())
def test_any_lsp_header_block_is_answered_or_refused(
    fuzz_daemon: DaemonProcess, fuzzer: Fuzzer, headers: list[tuple[bytes, bytes]], cr: bool
) -> None:
    """A request behind any header block: answered, or the stream refused with parse_error or
    too_large and closed; never a hang, never a dead daemon."""
    eol = b"\r\n" if cr else b"\n"
    body = b'{"jsonrpc":"2.0","id":"h","method":"daemon.hello"}'
    block = b"".join(name + b": " + value + eol for name, value in headers)
    wire = Wire(fuzz_daemon.socket_path, "lsp", timeout=10)
    try:
        first = b'{"jsonrpc":"2.0","id":0,"method":"daemon.hello"}'
        wire.send(b"Content-Length: %d\r\n\r\n%s" % (len(first), first) + block + eol + body)
        wire.sock.shutdown(socket.SHUT_WR)
        kinds = fuzzer.read_to_end(wire, repr(block))
    finally:
        wire.close()
    assert set(kinds) <= {"parse_error", "too_large"}
    fuzzer.watchdog.check()


# Found by the fuzz: an integer beyond SQLite's 64 bits, or a date beyond datetime's range,
# reached the database layer and came back as -32603 (the dispatcher now answers -32602).
OUT_OF_RANGE = [
    ("events.list", {"since": 2**63}),
    ("kv.list", {"offset": 2**63}),
    ("jobs.get", {"id": 2**63}),
    ("projects.get", {"project": 2**63}),
    ("kv.set", {"namespace": "n", "key": "k", "value": 1, "ttl_s": 1e308}),
    (
        "kv.set",
        {"namespace": "n", "key": "k", "value": 1, "expires_at": "0001-01-01T00:00:00+14:00"},
    ),
]


@pytest.mark.parametrize(("method", "params"), OUT_OF_RANGE)
def test_out_of_range_params_are_invalid_params(
    fuzz_daemon: DaemonProcess, method: str, params: dict[str, Any]
) -> None:
    assert fuzz_daemon.call_error(method, params).code == -32602


@pytest.mark.parametrize("framing", FRAMINGS)
def test_invalid_utf8_anywhere_is_a_parse_error(fuzz_daemon: DaemonProcess, framing: str) -> None:
    """In an object key (msgspec raised UnicodeDecodeError: -32603 with a traceback) or in a
    value kept raw for the handler (kv.set's value reached the database layer)."""
    wire = Wire(fuzz_daemon.socket_path, framing)
    try:
        for body in (
            b'{"jsonrpc":"2.0","id":1,"method":"kv.get","params":{"\xff":"a","key":"k"}}',
            b'{"jsonrpc":"2.0","id":2,"method":"kv.set","params":{"namespace":"u","key":"k",'
            b'"value":{"a":"\xc3\x28"}}}',
            b'[{"jsonrpc":"2.0","id":3,"\xfe":1}]',
        ):
            assert wire.send(frame(framing, body))
            reply = wire.read()
            assert reply is not None
            error = json.loads(reply)["error"]
            assert (error["code"], error["data"]["kind"]) == (-32700, "parse_error"), error
    finally:
        wire.close()


def test_a_content_length_of_thousands_of_digits_is_too_large(fuzz_daemon: DaemonProcess) -> None:
    """int() refuses more than 4,300 digits: that escaped the framing as a ValueError and the
    connection died without a word."""
    wire = Wire(fuzz_daemon.socket_path, "lsp")
    try:
        wire.send(b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n")
        reply = wire.read()
        assert reply is not None
        assert json.loads(reply)["error"]["data"] == {
            "kind": "too_large",
            "limit": FUZZ_MESSAGE_BYTES,
        }
        assert wire.read() is None  # then closed
    finally:
        wire.close()


# --- item 4: resource abuse -----------------------------------------------------------------

ABUSE_CONFIG = {
    "max_connections": 16,
    "idle_timeout_s": 1.0,  # and so the message deadline: min(30 s, idle_timeout_s)
    "max_output_buffer_bytes": 1024 * 1024,
    "max_message_bytes": 1024 * 1024,
}
BIG_VALUE = {"blob": "x" * (200 * 1024)}


@pytest.fixture(scope="module")
def abused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(Path(tmp_path_factory.mktemp("abuse")), config=ABUSE_CONFIG)
    daemon.start()
    daemon.call("kv.set", {"namespace": "big", "key": "v", "value": BIG_VALUE})
    yield daemon
    stop_alive_and_sound(daemon)


@pytest.fixture
def good(abused: DaemonProcess) -> Iterator[Watchdog]:
    """A good client, connected before the abuse starts; the slots the last test's abusers
    held are free again first."""
    wait_for(lambda: _admitted(abused.socket_path), 10, "a free connection slot")
    watchdog = Watchdog(abused.socket_path, timeout=10)
    yield watchdog
    watchdog.close()


def _admitted(path: str) -> bool:
    wire = Wire(path, "ndjson", timeout=5)
    try:
        wire.send(b'{"jsonrpc":"2.0","id":1,"method":"daemon.hello"}\n')
        reply = wire.read()
        return reply is not None and b'"result"' in reply
    finally:
        wire.close()


def _p99_bound(idle: list[float]) -> float:
    # CI machines are noisy and this one has two cores for the daemon, the abuser and the
    # good client: the bench measures against the 2x goal; here 5x the idle p99, or 0.5 s.
    return max(5 * percentile(idle, 99), 0.5)


def test_a_client_that_never_reads_is_cut_off(abused: DaemonProcess, good: Watchdog) -> None:
    """kv.get of a 200 KiB value, pipelined, never read: its unread replies pass
    max_output_buffer_bytes (1 MiB here) and the connection is cut."""
    request = b'{"jsonrpc":"2.0","id":1,"method":"kv.get","params":{"namespace":"big","key":"v"}}\n'
    idle = round_trips_for(good, 0.5)
    until = time.monotonic() + 2.0
    with abusers([(non_reader, (abused.socket_path, request * 16, until))]) as results:
        during = round_trips_for(good, 2.0, pause=0.002)
    abuse = merge(results)
    assert abuse.cut_after, "the non-reader was never cut off"
    assert "closing a connection that does not read its replies" in abused.log()
    assert percentile(during, 99) <= _p99_bound(idle), (
        percentile(idle, 99),
        percentile(during, 99),
    )


def test_a_stalled_non_reader_does_not_hold_its_slot(abused: DaemonProcess, good: Watchdog) -> None:
    """Small replies never pass the output limit: the connection is stalled (no longer read,
    its reads held) and aborted once its replies have waited unread for the message deadline
    (before, it held its slot for ever and the sweeper logged it every round)."""
    request = b'{"jsonrpc":"2.0","id":1,"method":"kv.get","params":{"namespace":"a","key":"b"}}\n'
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(abused.socket_path)
    sock.settimeout(0.2)
    try:
        opened = time.monotonic()
        for _ in range(2000):  # until the daemon stops reading: the rest stays with us
            try:
                sock.send(request * 50)
            except TimeoutError:
                break
        assert good.check() < 1.0
        aborted = "closing a connection that does not read its replies"
        before = abused.log().count(aborted)
        wait_for(
            lambda: abused.log().count(aborted) > before, 10, "the stalled connection to be aborted"
        )
        closed_after = time.monotonic() - opened
        sock.settimeout(10)
        with pytest.raises(ConnectionResetError):  # what the daemon had written, then a reset
            while sock.recv(1 << 20):
                pass
    finally:
        sock.close()
    # the message deadline (1 s) after its replies stopped being taken, + a sweep or two
    assert 1.0 <= closed_after < 4.0
    good.check(fresh=True)


def test_connections_beyond_the_limit_are_refused_with_busy(
    abused: DaemonProcess, good: Watchdog
) -> None:
    """max_connections 16, the good client holds one: of 25 more, 15 are admitted, 10 are
    told -32003 busy and closed; the admitted silent ones go at the idle timeout."""
    idle = round_trips_for(good, 0.5)
    until = time.monotonic() + 3.0
    with abusers([(connection_hog, (abused.socket_path, 25, until))]) as results:
        time.sleep(0.3)
        refused = Wire(abused.socket_path, "ndjson", timeout=5)  # a new good client, meanwhile
        words = refused.read()
        refused.close()
        during = round_trips_for(good, 1.0, pause=0.002)
    abuse = merge(results)
    # 15 free slots (16 less the good client's), unless a connection of the last test is
    # still being closed
    assert abuse.admitted <= 15 and abuse.refused >= 10 and abuse.admitted + abuse.refused == 25
    busy = "-32003 busy: too many connections (limit 16); retry shortly"
    assert abuse.messages[busy] == abuse.refused
    assert words is not None and json.loads(words)["error"]["data"]["kind"] == "busy"
    assert abuse.messages["closed without a word"] == abuse.admitted  # idle, after 1 s
    assert max(abuse.cut_after) < 2.5
    assert percentile(during, 99) <= _p99_bound(idle), (
        percentile(idle, 99),
        percentile(during, 99),
    )
    good.check(fresh=True)  # the slots are free again


def test_slow_senders_are_closed_at_the_message_deadline(
    abused: DaemonProcess, good: Watchdog
) -> None:
    """Fifteen clients take every free slot and send one byte every 0.1 s: they never go
    idle, but a message must be complete within min(30 s, idle_timeout_s) of its first byte
    (before, they held the slots for ever and locked every new client out)."""
    body = b'{"jsonrpc":"2.0","id":1,"method":"daemon.hello"}\n'
    idle = round_trips_for(good, 0.5)
    until = time.monotonic() + 4.0
    with abusers([(slow_sender, (abused.socket_path, 15, 0.1, body, until))]) as results:
        during = round_trips_for(good, 1.0, pause=0.002)
    abuse = merge(results)
    deadline = "-32700 parse_error: Parse error: message not complete after 1 s; closing"
    assert abuse.messages[deadline] == 15, abuse.messages
    assert min(abuse.cut_after) >= 1.0 and max(abuse.cut_after) < 2.5
    assert percentile(during, 99) <= _p99_bound(idle), (
        percentile(idle, 99),
        percentile(during, 99),
    )
    good.check(fresh=True)


def test_blank_lines_do_not_keep_a_connection_alive(abused: DaemonProcess, good: Watchdog) -> None:
    """A notification, then a newline every 10 ms: only whole messages count as activity, so
    the idle timeout (1 s) closes it (before, any byte kept it alive for ever)."""
    body = b'{"jsonrpc":"2.0","method":"daemon.hello"}\n' + b"\n" * 1000
    until = time.monotonic() + 4.0
    with abusers([(slow_sender, (abused.socket_path, 4, 0.01, body, until))]) as results:
        good.check()
    abuse = merge(results)
    assert abuse.messages == {"closed without a word": 4}
    assert min(abuse.cut_after) > 1.0 and max(abuse.cut_after) < 3.0


@pytest.fixture(scope="module")
def flooded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """Default limits but 1 MiB messages: a client that reads gets all its replies."""
    daemon = DaemonProcess(
        Path(tmp_path_factory.mktemp("flood")), config={"max_message_bytes": 1024 * 1024}
    )
    daemon.start()
    yield daemon
    assert daemon.stop() == 0
    daemon.cleanup()


def _peak_growth(pid: int, work: Any) -> int:
    """How far the daemon's peak RSS rose above its RSS while `work()` ran."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:  # reset VmHWM to the current RSS
        f.write("5")
    before = rss_bytes(pid)
    work()
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    return peak - before


def _flood(path: str, data: bytes, replies: int) -> None:
    wire = Wire(path, "ndjson", timeout=30)
    try:
        assert wire.send(data)
        for _ in range(replies):
            assert wire.read() is not None
    finally:
        wire.close()


def test_pipelined_messages_do_not_become_thousands_of_tasks(flooded: DaemonProcess) -> None:
    """One read of 256 KiB holds ~87,000 three-byte messages (100,000 here): they used to
    start as many tasks at once (+90 MB); now they wait as bytes until there is room."""
    assert flooded.process is not None
    count = 100_000
    growth = _peak_growth(
        flooded.process.pid, lambda: _flood(flooded.socket_path, b"{}\n" * count, count)
    )
    assert growth < 30 * 2**20, f"peak RSS rose {growth / 2**20:.0f} MiB"


def test_pipelined_batches_run_a_bounded_number_at_a_time(flooded: DaemonProcess) -> None:
    """Batches of 5,000 kv.get, pipelined: each batch's requests used to be 5,000 tasks at
    once, times max_inflight_per_connection batches (+1 GB for batches of 10,000)."""
    assert flooded.process is not None
    item = {"jsonrpc": "2.0", "id": 1, "method": "kv.get", "params": {"namespace": "a", "key": "b"}}
    batch = json.dumps([item] * 5000).encode() + b"\n"
    growth = _peak_growth(flooded.process.pid, lambda: _flood(flooded.socket_path, batch * 30, 30))
    assert growth < 60 * 2**20, f"peak RSS rose {growth / 2**20:.0f} MiB"
