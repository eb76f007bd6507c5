"""The client library in both framings against a real daemon."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from client.aio import AsyncClient
from client.errors import IncompatibleDaemon, ProtocolError, RemoteError, Unreachable
from client.sync import Client, check_protocol
from tests.helpers import DaemonProcess, short_socket_dir


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_sync_client_in_both_framings(daemon: DaemonProcess, framing: str) -> None:
    with Client(daemon.socket_path, framing=framing) as client:
        hello = client.handshake("test")
        assert hello["protocol_version"] == 1 and "framing.lsp" in hello["capabilities"]
        client.call("kv.set", {"namespace": framing, "key": "k", "value": {"ü": [1]}})
        assert client.call("kv.get", {"namespace": framing, "key": "k"})["value"] == {"ü": [1]}
        with pytest.raises(RemoteError) as caught:
            client.call("kv.get", {"namespace": framing})
        assert caught.value.code == -32602 and caught.value.data["field"] == "key"
        assert caught.value.exit_code == 1


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_async_client_pipelines_in_both_framings(daemon: DaemonProcess, framing: str) -> None:
    async def scenario() -> list[object]:
        client = await AsyncClient.connect(daemon.socket_path, framing=framing)
        assert client.hello is not None and client.hello["protocol_version"] == 1
        results = await asyncio.gather(
            *(
                client.call("kv.set", {"namespace": "aio", "key": f"{framing}{i}", "value": i})
                for i in range(200)
            )
        )
        values = await asyncio.gather(
            *(
                client.call("kv.get", {"namespace": "aio", "key": f"{framing}{i}"})
                for i in range(200)
            )
        )
        await client.close()
        return [r["created"] for r in results] + [v["value"] for v in values]

    out = asyncio.run(scenario())
    assert out[:200] == [True] * 200 and out[200:] == list(range(200))


def test_unreachable_is_clear() -> None:
    path = short_socket_dir() + "/none.sock"
    with pytest.raises(Unreachable, match="nothing answers on") as caught:
        Client(path).connect()
    assert caught.value.exit_code == 69


def test_a_daemon_of_another_protocol_is_refused_clearly() -> None:
    check_protocol(1, "0.1.0")
    with pytest.raises(IncompatibleDaemon, match="pm daemon restart"):
        check_protocol(2, "9.0.0")


def test_busy_and_starting_map_to_exit_75() -> None:
    assert RemoteError(-32003, "busy", {"kind": "busy"}).exit_code == 75
    assert RemoteError(-32005, "starting", {"kind": "starting"}).exit_code == 75
    assert RemoteError(-32006, "stopping", {"kind": "shutting_down"}).exit_code == 75
    assert RemoteError(-32001, "missing", {"kind": "not_found"}).exit_code == 1


def test_async_call_after_the_daemon_closed_fails_at_once(daemon: DaemonProcess) -> None:
    async def scenario() -> None:
        client = await AsyncClient.connect(daemon.socket_path)
        daemon.stop()
        with pytest.raises(ProtocolError):
            await asyncio.wait_for(client.call("daemon.status"), 5)  # the read loop sees EOF
        with pytest.raises(ProtocolError, match="closed the connection"):
            await asyncio.wait_for(client.call("daemon.status"), 5)  # and never waits again
        await client.close()

    asyncio.run(scenario())


def test_clients_find_the_socket_as_pm_does(
    daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # No path given: $PM_AGENT_SOCKET, else the config file's `socket`, as for `pm`.
    monkeypatch.setenv("HOME", str(daemon.home))
    monkeypatch.setenv("PM_AGENT_SOCKET", daemon.socket_path)
    with Client() as client:
        assert client.call("daemon.status")["socket"] == daemon.socket_path
    monkeypatch.delenv("PM_AGENT_SOCKET")
    config = tmp_path / "client.toml"
    config.write_text(f'socket = "{daemon.socket_path}"\n')
    monkeypatch.setenv("PM_AGENT_CONFIG", str(config))

    async def scenario() -> str:
        client = await AsyncClient.connect()
        try:
            status: dict[str, str] = await client.call("daemon.status")
            return status["socket"]
        finally:
            await client.close()

    assert asyncio.run(scenario()) == daemon.socket_path
    assert Client().path == AsyncClient().path == daemon.socket_path
