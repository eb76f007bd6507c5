"""Start-up, one instance, the socket's safety, shutdown, and the service manager's doors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from client.aio import AsyncClient
from client.errors import RemoteError, Unreachable
from tests.conftest import DaemonFactory
from tests.helpers import REPO, DaemonProcess, RawConnection, short_socket_dir, wait_for

SLOW_MIGRATION = """
CREATE TABLE slow_marker AS
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000000)
SELECT count(*) AS c FROM n;
"""


def mode(path: str | Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_answers_status_while_migrating_and_refuses_the_rest(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "9000_slow.sql").write_text(SLOW_MIGRATION)
    daemon = make_daemon(
        argv=[sys.executable, str(REPO / "tests" / "extra_migrations_daemon.py")],
        env={"PM_TEST_EXTRA_MIGRATIONS": str(extra)},
    )
    daemon.start(wait=False)
    seen = wait_for(
        lambda: (s := daemon.status()) and s["state"] == "migrating" and s,
        30,
        "the migrating state",
    )
    assert seen["pid"] == daemon.process.pid if daemon.process else False
    error = daemon.call_error("kv.get", {"namespace": "n", "key": "k"})
    assert error.code == -32005 and error.kind == "starting"
    assert error.data["state"] == "migrating"
    assert daemon.call("daemon.hello")["state"] == "migrating"
    daemon.wait_ready()
    assert daemon.call("kv.get", {"namespace": "n", "key": "k"}) == {
        "value": None,
        "updated_at": None,
        "expires_at": None,
    }
    assert daemon.call("daemon.status")["schema_version"] == 9000


def test_second_instance_on_the_same_data_dir_is_refused(make_daemon: DaemonFactory) -> None:
    first = make_daemon("one").start()
    second = make_daemon("two", env={"PM_AGENT_DATA_DIR": str(first.data_dir)})
    second.start(wait=False)
    assert second.wait() == 1
    assert f"another pm-agentd (pid {first.process.pid if first.process else '?'})" in second.log()
    assert first.call("daemon.status")["state"] == "ready"


def test_a_live_socket_is_never_taken_over(make_daemon: DaemonFactory) -> None:
    first = make_daemon("one").start()
    second = make_daemon("two", socket_path=first.socket_path)
    second.start(wait=False)
    assert second.wait() == 1
    assert "already answering" in second.log()
    assert first.call("daemon.status")["pid"] == (first.process.pid if first.process else None)


def test_a_stale_socket_is_reclaimed(make_daemon: DaemonFactory) -> None:
    folder = short_socket_dir()
    path = os.path.join(folder, "pm.sock")
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(path)
    leftover.close()  # the file stays; connecting to it is refused
    daemon = make_daemon(socket_path=path).start()
    assert daemon.call("daemon.status")["state"] == "ready"
    assert "removing a stale socket" in daemon.log()


def test_a_file_in_the_sockets_place_is_left_alone(make_daemon: DaemonFactory) -> None:
    folder = short_socket_dir()
    path = os.path.join(folder, "pm.sock")
    Path(path).write_text("not a socket")
    daemon = make_daemon(socket_path=path)
    daemon.start(wait=False)
    assert daemon.wait() == 1
    assert "exists and is not a socket" in daemon.log()
    assert Path(path).read_text() == "not a socket"


def test_files_and_folders_are_private(daemon: DaemonProcess) -> None:
    assert mode(daemon.socket_path) == 0o600
    assert mode(os.path.dirname(daemon.socket_path)) == 0o700
    assert mode(daemon.data_dir) == 0o700
    assert mode(daemon.db_path.parent) == 0o700
    daemon.call("kv.set", {"namespace": "n", "key": "k", "value": 1})
    for suffix in ("", "-wal", "-shm"):
        assert mode(str(daemon.db_path) + suffix) == 0o600


def test_an_insecure_socket_dir_is_refused(make_daemon: DaemonFactory) -> None:
    folder = short_socket_dir()
    os.chmod(folder, 0o755)
    daemon = make_daemon(socket_path=os.path.join(folder, "pm.sock"))
    daemon.start(wait=False)
    assert daemon.wait() == 1
    assert "has mode 0755; it must be 0700" in daemon.log()
    assert f"chmod 700 {folder}" in daemon.log()
    assert not os.path.exists(os.path.join(folder, "pm.sock"))


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a folder to another user")
def test_a_socket_dir_of_another_user_is_refused(make_daemon: DaemonFactory) -> None:
    folder = short_socket_dir()
    os.chown(folder, 65534, 65534)
    daemon = make_daemon(socket_path=os.path.join(folder, "pm.sock"))
    daemon.start(wait=False)
    assert daemon.wait() == 1
    assert "belongs to uid 65534, not to you" in daemon.log()


def test_a_socket_path_too_long_gets_a_clear_error(make_daemon: DaemonFactory) -> None:
    folder = short_socket_dir()
    deep = os.path.join(folder, "x" * 60, "y" * 60)
    os.makedirs(deep, mode=0o700)
    daemon = make_daemon(socket_path=os.path.join(deep, "pm.sock"))
    daemon.start(wait=False)
    assert daemon.wait() == 1
    assert "a Unix socket address holds at most 107" in daemon.log()
    assert "PM_AGENT_SOCKET" in daemon.log()


@pytest.mark.parametrize(
    ("config", "env", "needle"),
    [
        ({"dev_rot": "/x"}, {}, "unknown field `dev_rot`"),
        ({"busy_timeout_ms": "soon"}, {}, "busy_timeout_ms"),
        ({}, {"PM_AGENT_WRITE_QUEUE_MAX": "lots"}, "PM_AGENT_WRITE_QUEUE_MAX='lots'"),
        ({}, {"PM_AGENT_SYNCHRONOUS": "SOMETIMES"}, "Invalid enum value 'SOMETIMES'"),
    ],
)
def test_config_errors_name_what_is_wrong(
    make_daemon: DaemonFactory, config: dict[str, Any], env: dict[str, str], needle: str
) -> None:
    daemon = make_daemon(config=config, env=env)
    daemon.start(wait=False)
    assert daemon.wait() == 78
    assert needle in daemon.log()


def test_missing_explicit_config_file_is_an_error(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    daemon = make_daemon(env={"PM_AGENT_CONFIG": str(tmp_path / "nope.toml")})
    daemon.start(wait=False)
    assert daemon.wait() == 78
    assert "nope.toml (from PM_AGENT_CONFIG) does not exist" in daemon.log()


def test_config_file_env_and_flag_precedence(make_daemon: DaemonFactory, tmp_path: Path) -> None:
    daemon = make_daemon(config={"synchronous": "NORMAL", "write_queue_max": 77})
    daemon.env["PM_AGENT_WRITE_QUEUE_MAX"] = "88"  # env beats the file
    daemon.argv = [*daemon.argv, "--synchronous", "EXTRA"]  # a flag beats both
    daemon.start()
    health = daemon.call("db.health")
    assert health["synchronous"] == "EXTRA"
    assert health["writer"]["queue_max"] == 88


def test_sigterm_stops_cleanly(daemon: DaemonProcess) -> None:
    daemon.call("kv.set", {"namespace": "n", "key": "k", "value": 1})
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 10
    assert not os.path.exists(daemon.socket_path)
    wal = Path(str(daemon.db_path) + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed on the way out
    assert '"stopped"' in daemon.log()


@pytest.mark.parametrize("max_connections", [None, 1])
def test_sigterm_stops_even_with_peers_that_never_read(
    make_daemon: DaemonFactory, max_connections: int | None
) -> None:
    """A client holding megabytes of unread replies, or (with one connection allowed) a
    refused one that never reads the refusal: a closing socket whose peer does not take its
    last bytes must not keep the daemon from exiting."""
    config = {"max_connections": max_connections} if max_connections else {}
    daemon = make_daemon(config=config).start()

    def store_big() -> bool:
        try:
            daemon.call("kv.set", {"namespace": "n", "key": "big", "value": "x" * (1024**2 - 2)})
        except Unreachable:  # refused: the start-up probe's connection is not yet closed
            return False
        return True

    wait_for(store_big, what="the one connection allowed to be free")
    hog = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.connect(daemon.socket_path)
    request = {"jsonrpc": "2.0", "id": 1, "method": "kv.get",
               "params": {"namespace": "n", "key": "big"}}  # fmt: skip
    hog.sendall(b"".join(json.dumps({**request, "id": i}).encode() + b"\n" for i in range(6)))
    refused = []
    if max_connections:
        for _ in range(3):  # each is told "busy" and never reads it
            peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            peer.connect(daemon.socket_path)
            refused.append(peer)
    time.sleep(1.0)  # the replies are written: megabytes wait in the daemon's buffer
    started = time.monotonic()
    try:
        assert daemon.stop(timeout=20) == 0
    finally:
        hog.close()
        for peer in refused:
            peer.close()
    assert time.monotonic() - started < 10


def test_daemon_shutdown_method(daemon: DaemonProcess) -> None:
    assert daemon.call("daemon.shutdown") == {"stopping": True}
    assert daemon.wait() == 0


def test_pm_daemon_stop_says_stopped_only_once_the_process_has_exited(
    make_daemon: DaemonFactory,
) -> None:
    """A daemon that lets go of its socket and lock but whose process stays (as one waiting at
    exit for a thread stuck in a read did): `pm daemon stop` says so and fails."""
    daemon = make_daemon(
        argv=[sys.executable, str(REPO / "tests" / "hanging_reads_daemon.py")],
        env={"PM_TEST_LINGER": "1"},
    ).start()
    assert daemon.process is not None
    pm = str(Path(sys.executable).parent / "pm")
    done = subprocess.run(
        [pm, "daemon", "stop"], env=daemon.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stdout
    assert "stopped" not in done.stdout
    assert f"pm-agentd (pid {daemon.process.pid})" in done.stderr
    assert "still running" in done.stderr and f"kill {daemon.process.pid}" in done.stderr
    assert daemon.process.poll() is None  # it was telling the truth


def test_shutdown_answers_every_request_and_keeps_every_acknowledged_write(
    make_daemon: DaemonFactory,
) -> None:
    daemon = make_daemon(config={"stop_timeout_s": 5}).start()
    acked: set[str] = set()
    refused: list[str] = []

    async def writer(client: AsyncClient, n: int) -> None:
        for i in range(100_000):
            key = f"{n}-{i}"
            try:
                await client.call("kv.set", {"namespace": "load", "key": key, "value": i})
            except RemoteError as e:
                refused.append(e.kind)
                return
            acked.add(key)

    async def scenario() -> None:
        clients = [await AsyncClient.connect(daemon.socket_path) for _ in range(16)]
        tasks = [asyncio.ensure_future(writer(c, n)) for n, c in enumerate(clients)]
        await asyncio.sleep(0.5)
        daemon.signal(signal.SIGTERM)
        done, _ = await asyncio.wait(tasks, timeout=20)
        assert len(done) == len(tasks)  # nobody was left hanging
        for task in done:
            exc = task.exception()
            assert exc is None or "closed the connection" in str(exc), exc
        for c in clients:
            await c.close()

    asyncio.run(scenario())
    assert daemon.wait() == 0
    assert acked, "no write was acknowledged before the signal"
    assert set(refused) <= {"shutting_down"}
    import sqlite3

    conn = sqlite3.connect(daemon.db_path)
    stored = {row[0] for row in conn.execute("SELECT key FROM kv WHERE namespace = 'load'")}
    conn.close()
    assert acked <= stored


class NotifyListener:
    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(20)

    def next(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines())

    def until(self, key: str) -> tuple[dict[str, str], list[dict[str, str]]]:
        seen = []
        while True:
            message = self.next()
            seen.append(message)
            if key in message:
                return message, seen


def test_sd_notify_ready_status_watchdog_stopping(make_daemon: DaemonFactory) -> None:
    listener = NotifyListener(short_socket_dir())
    daemon = make_daemon(env={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "200000"})
    daemon.start(wait=False)
    ready, before = listener.until("READY")
    # READY only once the socket answers, and the daemon is really ready then.
    status = daemon.status()
    assert status is not None and status["state"] == "ready"
    assert ready["READY"] == "1" and ready["MAINPID"] == str(
        daemon.process.pid if daemon.process else 0
    )
    assert any(m.get("STATUS", "").startswith("migrating") for m in before)
    pings = 0
    while pings < 3:
        pings += "WATCHDOG" in listener.next()
    daemon.signal(signal.SIGTERM)
    stopping, _ = listener.until("STOPPING")
    assert stopping["STOPPING"] == "1"
    assert daemon.wait() == 0
    listener.sock.close()


def test_no_watchdog_pings_when_the_watchdog_is_not_ours(make_daemon: DaemonFactory) -> None:
    listener = NotifyListener(short_socket_dir())
    daemon = make_daemon(
        env={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"}
    )
    daemon.start(wait=False)
    _, before = listener.until("READY")
    time.sleep(0.5)  # five watchdog intervals: a ping, if any, would be here by now
    daemon.signal(signal.SIGTERM)
    _, after = listener.until("STOPPING")
    assert not any("WATCHDOG" in m for m in before + after)
    assert daemon.wait() == 0
    listener.sock.close()


def test_socket_activation_uses_the_passed_fd_and_never_unlinks_it(
    make_daemon: DaemonFactory,
) -> None:
    folder = short_socket_dir()
    path = os.path.join(folder, "activated.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    fd = listener.fileno()
    daemon = make_daemon(env={"PM_AGENT_SOCKET": os.path.join(folder, "unused.sock")})
    # What systemd-socket-activate does: the socket as fd 3, LISTEN_PID = the daemon's pid
    # (exec keeps the pid), the rest in the environment.
    trampoline = (
        "import os, sys\n"
        f"os.dup2({fd}, 3); os.close({fd})\n"
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', "
        "LISTEN_FDNAMES='pm-agent')\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'daemon'])\n"
    )
    daemon.argv = [sys.executable, "-c", trampoline]
    daemon.socket_path = path
    daemon.start(pass_fds=(fd,))
    status = daemon.call("daemon.status")
    assert status["socket_activated"] is True and status["socket"] == path
    assert not os.path.exists(os.path.join(folder, "unused.sock"))
    assert daemon.stop() == 0
    assert stat.S_ISSOCK(os.lstat(path).st_mode)  # still there for the next activation
    listener.close()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_a_peer_of_another_uid_is_refused(daemon: DaemonProcess) -> None:
    # Loosen the folder and socket after start-up (the daemon checks the folder only at
    # start), so uid 65534 can reach the socket: SO_PEERCRED must still keep it out.
    os.chmod(os.path.dirname(daemon.socket_path), 0o711)
    os.chmod(daemon.socket_path, 0o666)
    script = (
        "import os, socket, sys\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"  # drop to nobody, then connect
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({daemon.socket_path!r})\n"
        "try:\n"  # the daemon may have refused and closed before we send: then EPIPE
        '    s.sendall(b\'{"jsonrpc":"2.0","id":1,"method":"daemon.status"}\\n\')\n'
        "except BrokenPipeError:\n"
        "    pass\n"
        "data = b''\n"
        "try:\n"
        "    while chunk := s.recv(4096): data += chunk\n"
        "except ConnectionResetError:\n"  # closed with our request unread: expected
        "    pass\n"
        "sys.stdout.write(data.decode())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=20,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["error"]["data"]["kind"] == "forbidden"
    assert "uid 65534" in reply["error"]["message"]
    assert "result" not in reply
    assert daemon.call("daemon.status")["state"] == "ready"
    assert "refused peer of another user" in daemon.log()


def test_idle_connections_are_closed(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon(config={"idle_timeout_s": 0.3}).start()
    idle = RawConnection(daemon.socket_path)
    idle.send(b'{"jsonrpc":"2.0","id":1,"method":"daemon.hello"}')
    assert idle.read_frame() is not None
    idle.sock.settimeout(10)
    assert idle.closed_by_peer()
    idle.close()


def test_console_logs_on_a_terminal_json_lines_otherwise(make_daemon: DaemonFactory) -> None:
    import pty

    daemon = make_daemon(env={"PM_AGENT_LOG_FILE": ""})  # decide by where stderr goes
    main, sub = pty.openpty()
    daemon.process = subprocess.Popen(
        daemon.argv, env=daemon.env, stdin=subprocess.DEVNULL, stdout=sub, stderr=sub
    )
    os.close(sub)
    seen = b""
    try:
        while b"ready" not in seen:
            seen += os.read(main, 4096)
    finally:
        daemon.stop()
        os.close(main)
    text = seen.decode(errors="replace")
    ready = next(line for line in text.splitlines() if "ready" in line)
    assert not ready.lstrip().startswith("{")  # a person's rendering, not JSON
    json_log = daemon.log()  # the earlier runs in this world wrote JSON lines; none here
    assert json_log == "" or all(line.startswith("{") for line in json_log.splitlines())


def test_a_reader_holding_the_file_open_does_not_break_the_daemon(daemon: DaemonProcess) -> None:
    import sqlite3

    outsider = sqlite3.connect(f"file:{daemon.db_path}?mode=ro", uri=True, isolation_level=None)
    outsider.execute("BEGIN")
    assert outsider.execute("SELECT count(*) FROM kv").fetchone() == (0,)  # a snapshot held
    for i in range(300):
        daemon.call("kv.set", {"namespace": "o", "key": str(i), "value": i})
    assert outsider.execute("SELECT count(*) FROM kv").fetchone() == (0,)  # still its snapshot
    assert daemon.call("kv.list", {"namespace": "o"})["total"] == 300
    assert daemon.stop() == 0  # the WAL cannot be truncated under a reader: fine
    outsider.execute("COMMIT")
    assert outsider.execute("SELECT count(*) FROM kv").fetchone() == (300,)
    outsider.close()


def test_a_daemon_whose_socket_file_is_gone_stops(make_daemon: DaemonFactory) -> None:
    """Nobody can reach a daemon whose socket file was deleted (a temp folder cleaned, an
    `rm` in the wrong place): it stops within a few seconds instead of running for ever, so
    the next client starts one it can reach."""
    d = make_daemon().start()
    os.unlink(d.socket_path)
    assert d.wait(timeout=15) == 0
    assert "the socket file is gone or replaced" in d.log()
