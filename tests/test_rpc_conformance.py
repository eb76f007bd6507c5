"""JSON-RPC 2.0 conformance over both framings, against a real daemon on a real socket."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import DaemonProcess, RawConnection

FRAMINGS = ["ndjson", "lsp"]
MAX_MESSAGE = 65536


@pytest.fixture(scope="module")
def rpc_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(
        Path(tmp_path_factory.mktemp("rpc")), config={"max_message_bytes": MAX_MESSAGE}
    )
    daemon.start()
    yield daemon
    assert daemon.stop() == 0
    daemon.cleanup()


@pytest.fixture(params=FRAMINGS)
def conn(request: pytest.FixtureRequest, rpc_daemon: DaemonProcess) -> Iterator[RawConnection]:
    c = RawConnection(rpc_daemon.socket_path, request.param)
    # The first message fixes the connection's framing; what follows is judged as JSON-RPC.
    assert roundtrip(c, '{"jsonrpc":"2.0","id":0,"method":"daemon.hello"}')["id"] == 0
    yield c
    c.close()


def roundtrip(conn: RawConnection, body: bytes | str) -> Any:
    conn.send(body.encode() if isinstance(body, str) else body)
    frame = conn.read_frame()
    assert frame is not None, "the daemon closed the connection"
    return json.loads(frame)


def assert_error(reply: Any, code: int, id_: Any = None) -> dict[str, Any]:
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == id_ and type(reply["id"]) is type(id_)
    assert "result" not in reply
    assert reply["error"]["code"] == code
    assert reply["error"]["data"]["kind"]
    error: dict[str, Any] = reply["error"]
    return error


def test_parse_error(conn: RawConnection) -> None:
    reply = roundtrip(conn, '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    assert_error(reply, -32700)
    # The connection survives a parse error.
    assert roundtrip(conn, '{"jsonrpc":"2.0","id":1,"method":"daemon.status"}')["result"]


@pytest.mark.parametrize(
    ("body", "id_"),
    [
        ('{"jsonrpc":"2.0","method":1,"params":"bar"}', None),
        ('{"jsonrpc":"2.0","method":"kv.get","params":"bar","id":3}', 3),
        ('{"jsonrpc":"1.0","method":"daemon.status","id":"v1"}', "v1"),
        ('{"jsonrpc":"2.0","method":"daemon.status","id":true}', None),
        ('{"jsonrpc":"2.0","method":"daemon.status","id":{"a":1}}', None),
        ("[1]", None),  # handled below as a batch
        ('"just a string"', None),
    ],
)
def test_invalid_request(conn: RawConnection, body: str, id_: Any) -> None:
    reply = roundtrip(conn, body)
    if body.startswith("["):
        assert isinstance(reply, list) and len(reply) == 1
        reply = reply[0]
    assert_error(reply, -32600, id_)


def test_empty_batch_is_one_invalid_request(conn: RawConnection) -> None:
    reply = roundtrip(conn, "[]")
    assert isinstance(reply, dict)
    assert_error(reply, -32600)


def test_invalid_batch_answers_each_element(conn: RawConnection) -> None:
    reply = roundtrip(conn, "[1,2,3]")
    assert isinstance(reply, list) and len(reply) == 3
    for item in reply:
        assert_error(item, -32600)


def test_batch_of_notifications_gets_no_bytes(conn: RawConnection) -> None:
    conn.send(
        b'[{"jsonrpc":"2.0","method":"daemon.status"},'
        b'{"jsonrpc":"2.0","method":"kv.get","params":{"namespace":"n","key":"k"}},'
        b'{"jsonrpc":"2.0","method":"no.such.method"}]'
    )
    conn.send(b'{"jsonrpc":"2.0","method":"kv.get","params":{"namespace":"n"}}')  # invalid params
    # Nothing came back for either: the next frame answers the request sent after them.
    reply = roundtrip(conn, '{"jsonrpc":"2.0","id":"after","method":"daemon.status"}')
    assert reply["id"] == "after" and reply["result"]["state"] == "ready"


def test_mixed_batch(conn: RawConnection) -> None:
    ns = f"batch-{conn.framing}"
    reply = roundtrip(
        conn,
        json.dumps(
            [
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "kv.set",
                    "params": {"namespace": ns, "key": "a", "value": 1},
                },
                {
                    "jsonrpc": "2.0",
                    "method": "kv.set",
                    "params": {"namespace": ns, "key": "b", "value": 2},
                },
                {"foo": "boo"},
                {"jsonrpc": "2.0", "id": "5", "method": "foo.get"},
                {
                    "jsonrpc": "2.0",
                    "id": 9,
                    "method": "kv.get",
                    "params": {"namespace": ns, "key": "nope"},
                },
            ]
        ),
    )
    assert isinstance(reply, list)
    by_id = {json.dumps(r["id"]): r for r in reply}
    assert set(by_id) == {"1", "null", '"5"', "9"}  # the notification is not answered
    assert by_id["1"]["result"]["created"] is True
    assert_error(by_id["null"], -32600)
    assert_error(by_id['"5"'], -32601, "5")
    assert by_id["9"]["result"] == {"value": None, "updated_at": None, "expires_at": None}
    # The notification in the batch was executed all the same.
    got = roundtrip(
        conn,
        json.dumps(
            {"jsonrpc": "2.0", "id": 2, "method": "kv.get", "params": {"namespace": ns, "key": "b"}}
        ),
    )
    assert got["result"]["value"] == 2


@pytest.mark.parametrize("id_", [0, 7, -3, 2**53, "abc", "", None, 1.5])
def test_id_is_echoed_with_its_type(conn: RawConnection, id_: Any) -> None:
    reply = roundtrip(conn, json.dumps({"jsonrpc": "2.0", "id": id_, "method": "daemon.hello"}))
    assert reply["id"] == id_ and type(reply["id"]) is type(id_)
    assert reply["result"]["protocol_version"] == 1


def test_unknown_method(conn: RawConnection) -> None:
    error = assert_error(
        roundtrip(conn, '{"jsonrpc":"2.0","id":4,"method":"projects.frobnicate"}'), -32601, 4
    )
    assert "projects.frobnicate" in error["message"]


def test_notification_to_unknown_method_is_silent(conn: RawConnection) -> None:
    conn.send(b'{"jsonrpc":"2.0","method":"projects.frobnicate"}')
    assert roundtrip(conn, '{"jsonrpc":"2.0","id":5,"method":"daemon.hello"}')["id"] == 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"namespace": 5, "key": "k"}, "namespace"),
        ({"namespace": "n"}, "key"),
        ({"namespace": "n", "key": "k", "nmespace": "typo"}, "nmespace"),
        ({"namespace": "", "key": "k"}, "namespace"),
        ({"namespace": "n", "key": "x" * 2000}, "key"),
    ],
)
def test_invalid_params_name_the_field(conn: RawConnection, params: Any, field: str) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 6, "method": "kv.get", "params": params})
    error = assert_error(roundtrip(conn, body), -32602, 6)
    assert error["data"]["field"] == field
    assert field in error["message"]


def test_positional_params_are_refused_clearly(conn: RawConnection) -> None:
    body = '{"jsonrpc":"2.0","id":8,"method":"kv.get","params":["n","k"]}'
    error = assert_error(roundtrip(conn, body), -32602, 8)
    assert "by name" in error["message"]


@pytest.mark.parametrize("params", ["null", "[]", "[ ]"])
def test_null_or_empty_params_mean_no_params(conn: RawConnection, params: str) -> None:
    """jsonrpc.el sends nil as null, and some encoders write an empty table as []."""
    body = f'{{"jsonrpc":"2.0","id":9,"method":"daemon.status","params":{params}}}'
    assert roundtrip(conn, body)["result"]["state"] == "ready"
    needs_some = f'{{"jsonrpc":"2.0","id":10,"method":"kv.get","params":{params}}}'
    error = assert_error(roundtrip(conn, needs_some), -32602, 10)
    assert "namespace" in error["message"]


def test_utf8_values_roundtrip(conn: RawConnection) -> None:
    value = "héllo wörld — €😀"
    set_body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "kv.set",
            "params": {"namespace": "utf8", "key": "ключ", "value": value},
        },
        ensure_ascii=False,
    ).encode("utf-8")
    assert len(set_body) != len(set_body.decode("utf-8"))  # bytes differ from characters
    assert roundtrip(conn, set_body)["result"]["created"] in (True, False)
    get_body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "kv.get",
            "params": {"namespace": "utf8", "key": "ключ"},
        },
        ensure_ascii=False,
    ).encode("utf-8")
    assert roundtrip(conn, get_body)["result"]["value"] == value


def test_content_length_counts_utf8_bytes(rpc_daemon: DaemonProcess) -> None:
    conn = RawConnection(rpc_daemon.socket_path, "lsp")
    try:
        value = "€" * 10  # 30 bytes, 10 characters
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "kv.set",
                "params": {"namespace": "cl", "key": "k", "value": value},
            },
            ensure_ascii=False,
        ).encode()
        # Two messages in one write: the daemon must split them at the byte count.
        hello = b'{"jsonrpc":"2.0","id":2,"method":"daemon.hello"}'
        conn.send_bytes(conn.frame(body) + conn.frame(hello))
        replies = {json.loads(conn.read_frame() or b"")["id"] for _ in range(2)}
        assert replies == {1, 2}  # replies may come in any order (JSON-RPC allows it)
        get = b'{"jsonrpc":"2.0","id":3,"method":"kv.get","params":{"namespace":"cl","key":"k"}}'
        conn.send(get)
        reply = conn.read_frame()
        assert reply is not None
        declared = int(conn.last_header.split(b":")[1])
        assert declared == len(reply) > len(reply.decode("utf-8"))
        assert json.loads(reply)["result"]["value"] == value
    finally:
        conn.close()


def test_lsp_headers_may_come_in_pieces_and_carry_content_type(
    rpc_daemon: DaemonProcess,
) -> None:
    conn = RawConnection(rpc_daemon.socket_path, "lsp")
    try:
        body = b'{"jsonrpc":"2.0","id":3,"method":"daemon.hello"}'
        message = (
            b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n"
            % len(body)
            + body
        )
        for i in range(len(message)):
            conn.send_bytes(message[i : i + 1])
        assert json.loads(conn.read_frame() or b"")["id"] == 3
    finally:
        conn.close()


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Lenght: 10\r\n\r\n",
        b"Content-Length: ten\r\n\r\n",
        b"Content-Type: application/json\r\n\r\n",
        b"garbage without a colon\r\n\r\n",
        b"Content-Length: 5\r\nContent-Type: text/plain; charset=latin-1\r\n\r\n",
    ],
)
def test_malformed_header_is_answered_then_closed(rpc_daemon: DaemonProcess, header: bytes) -> None:
    conn = RawConnection(rpc_daemon.socket_path, "lsp")
    try:
        conn.send_bytes(header + b"{}")
        assert_error(json.loads(conn.read_frame() or b""), -32700)
        assert conn.closed_by_peer()
    finally:
        conn.close()
    assert rpc_daemon.call("daemon.status")["state"] == "ready"


def test_oversized_lsp_message_refused_before_its_body(rpc_daemon: DaemonProcess) -> None:
    conn = RawConnection(rpc_daemon.socket_path, "lsp")
    try:
        # Declares 1 GB and sends none of it: the answer must come at once.
        conn.send_bytes(b"Content-Length: 1000000000\r\n\r\n")
        error = assert_error(json.loads(conn.read_frame() or b""), -32009)
        assert error["data"]["kind"] == "too_large"
        assert conn.closed_by_peer()
    finally:
        conn.close()


def test_oversized_ndjson_line_refused(rpc_daemon: DaemonProcess) -> None:
    conn = RawConnection(rpc_daemon.socket_path, "ndjson")
    try:
        conn.send_bytes(b'{"jsonrpc":"2.0","id":1,"method":"kv.set","params":{"value":"')
        chunk = b"x" * 16384
        sent = 0
        try:
            while sent <= MAX_MESSAGE * 2:
                conn.send_bytes(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon stopped reading us, as it should
        frame = conn.read_frame()
        assert frame is not None
        assert_error(json.loads(frame), -32009)
    finally:
        conn.close()
    assert rpc_daemon.call("daemon.status")["state"] == "ready"


def test_rpc_discover_lists_every_method_with_schemas(conn: RawConnection) -> None:
    doc = roundtrip(conn, '{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}')["result"]
    assert doc["openrpc"].startswith("1.")
    methods = {m["name"]: m for m in doc["methods"]}
    for name in [
        "daemon.hello",
        "daemon.status",
        "daemon.shutdown",
        "kv.get",
        "kv.set",
        "kv.delete",
        "kv.list",
        "kv.clear",
        "events.subscribe",
        "events.unsubscribe",
        "events.list",
        "db.health",
        "rpc.discover",
    ]:
        assert name in methods, name
    kv_set = methods["kv.set"]
    params = {p["name"]: p for p in kv_set["params"]}
    assert params["namespace"]["required"] is True
    assert params["namespace"]["schema"]["maxLength"] == 256
    assert params["expires_at"]["required"] is False
    assert kv_set["summary"]
    assert kv_set["paramStructure"] == "by-name"
    result_ref = kv_set["result"]["schema"]["$ref"]
    assert result_ref.split("/")[-1] in doc["components"]["schemas"]
    clear_params = {p["name"] for p in methods["kv.clear"]["params"]}
    assert "workDoneToken" in clear_params


def test_garbage_first_line_is_refused_at_once(rpc_daemon: DaemonProcess) -> None:
    conn = RawConnection(rpc_daemon.socket_path, "lsp")
    try:
        conn.send_bytes(b"hello there\n")  # neither JSON nor a header: no waiting for more
        assert_error(json.loads(conn.read_frame() or b""), -32700)
        assert conn.closed_by_peer()
    finally:
        conn.close()


def test_whitespace_before_the_first_message_is_fine(rpc_daemon: DaemonProcess) -> None:
    conn = RawConnection(rpc_daemon.socket_path, "ndjson")
    try:
        conn.send_bytes(b"\n\n  ")
        assert roundtrip(conn, '{"jsonrpc":"2.0","id":1,"method":"daemon.hello"}')["id"] == 1
    finally:
        conn.close()


# --- the client half-closes (shutdown(SHUT_WR)): `printf … | nc -N`, socat ------------------------
def half_closed(rpc_daemon: DaemonProcess, data: bytes, framing: str = "ndjson") -> RawConnection:
    conn = RawConnection(rpc_daemon.socket_path, framing)
    conn.send_bytes(data)
    conn.sock.shutdown(socket.SHUT_WR)
    return conn


def test_a_last_line_without_newline_is_answered_when_the_client_half_closes(
    rpc_daemon: DaemonProcess,
) -> None:
    conn = half_closed(rpc_daemon, b'{"jsonrpc":"2.0","id":1,"method":"daemon.hello"}')
    try:
        assert json.loads(conn.read_frame() or b"null")["id"] == 1
        assert conn.closed_by_peer()  # then the daemon closes its side too
    finally:
        conn.close()


def test_every_request_before_a_half_close_is_answered(rpc_daemon: DaemonProcess) -> None:
    """Replies still to come when the client stops sending are written, not dropped."""
    lines = [
        json.dumps({"jsonrpc": "2.0", "id": i, "method": "db.check"}).encode() for i in range(20)
    ]
    conn = half_closed(rpc_daemon, b"\n".join(lines) + b"\n  \n")
    try:
        ids = set()
        while (frame := conn.read_frame()) is not None:
            reply = json.loads(frame)
            assert reply["result"]["ok"] is True
            ids.add(reply["id"])
        assert ids == set(range(20))
    finally:
        conn.close()


def test_a_message_cut_short_by_a_half_close_is_a_parse_error(rpc_daemon: DaemonProcess) -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"daemon.hello"}'
    conn = half_closed(rpc_daemon, b"Content-Length: %d\r\n\r\n" % len(body) + body[:-5], "lsp")
    try:
        assert_error(json.loads(conn.read_frame() or b"null"), -32700)
        assert conn.closed_by_peer()
    finally:
        conn.close()


def test_a_subscriber_that_half_closes_is_answered_then_closed(rpc_daemon: DaemonProcess) -> None:
    """Ending one's side means done (Node's `socket.end()` then waits for the daemon's FIN)."""
    conn = half_closed(
        rpc_daemon,
        b'{"jsonrpc":"2.0","id":1,"method":"events.subscribe","params":{"topics":["kv"]}}',
    )
    try:
        assert "subscription" in json.loads(conn.read_frame() or b"null")["result"]
        assert conn.closed_by_peer()
    finally:
        conn.close()


def test_a_cancel_read_with_its_request_still_gets_an_answer(rpc_daemon: DaemonProcess) -> None:
    """A write and its $/cancelRequest in one read of the socket: the write's first step runs
    at once and waits for its batch, the cancel comes before the task that goes on with it
    ever ran. Each gets its answer (the outcome: committed or cancelled), never silence."""
    conn = RawConnection(rpc_daemon.socket_path, timeout=10.0)
    try:
        for i in range(50):
            write = {"jsonrpc": "2.0", "id": i, "method": "kv.set",
                     "params": {"namespace": "cancelled", "key": str(i), "value": i}}  # fmt: skip
            cancel = {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": i}}
            conn.send_bytes(conn.frame(json.dumps(write).encode())
                            + conn.frame(json.dumps(cancel).encode()))  # fmt: skip
            reply = conn.read_frame()
            assert reply is not None
            answer = json.loads(reply)
            assert answer["id"] == i
            assert "result" in answer or answer["error"]["code"] == -32800, answer
    finally:
        conn.close()
