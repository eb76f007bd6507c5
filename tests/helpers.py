"""Test harness: a real pm-agentd subprocess on a real socket with a real SQLite file.

Everything lives in temp dirs (HOME too); the socket sits in a short /tmp folder because a
Unix socket path must fit in ~107 bytes. Readiness is polled, never slept for.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from client.errors import ClientError, RemoteError
from client.sync import Client

REPO = Path(__file__).resolve().parent.parent


def short_socket_dir() -> str:
    return tempfile.mkdtemp(prefix="pm-", dir="/tmp")


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `predicate` with a short backoff until it returns something truthy."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class DaemonProcess:
    """One pm-agentd in its own temp world."""

    def __init__(
        self,
        root: Path,
        *,
        config: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        socket_path: str | None = None,
        argv: list[str] | None = None,
    ) -> None:
        self.root = root
        self.home = root / "home"
        self.dev_root = root / "dev"
        self.data_dir = root / "data"
        self.home.mkdir(parents=True, exist_ok=True)
        self._socket_dir = None if socket_path else short_socket_dir()
        self.socket_path = socket_path or os.path.join(self._socket_dir or "", "pm.sock")
        self.log_path = root / "daemon.log"
        self.config_path = root / "config.toml"
        if config:
            self.config_path.write_text(
                "".join(f"{k} = {toml_value(v)}\n" for k, v in config.items())
            )
        self.env = self.base_env()
        if config:
            self.env["PM_AGENT_CONFIG"] = str(self.config_path)
        self.env.update(env or {})
        self.argv = argv or [sys.executable, "-m", "daemon"]
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "db" / "pm-agent.db"

    def base_env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "PM_AGENT_DEV_ROOT": str(self.dev_root),
            "PM_AGENT_DATA_DIR": str(self.data_dir),
            "PM_AGENT_SOCKET": self.socket_path,
            "PM_AGENT_LOG_FILE": "-",
        }
        for name in ("PYTHONPATH", "VIRTUAL_ENV", "SYSTEMROOT"):
            if name in os.environ:
                env[name] = os.environ[name]
        return env

    # --- process ----------------------------------------------------------------------
    def start(self, *, wait: bool = True, **popen: Any) -> DaemonProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            **popen,
        )
        if wait:
            self.wait_ready()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def status(self) -> dict[str, Any] | None:
        try:
            with Client(self.socket_path, timeout=5.0).connect() as client:
                result: dict[str, Any] = client.call("daemon.status")
                return result
        except ClientError:
            return None

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"pm-agentd exited with {self.process.returncode}:\n{self.log()}"
                )
            st = self.status()
            return st if st and st["state"] == "ready" else None

        result: dict[str, Any] = wait_for(ready, timeout, "the daemon to be ready")
        return result

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        code = self.process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self._log is not None:
            self._log.close()
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    # --- talking ----------------------------------------------------------------------
    def client(self, framing: str = "ndjson") -> Client:
        return Client(self.socket_path, timeout=30.0, framing=framing).connect()

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        with self.client() as client:
            return client.call(method, params)

    def call_error(self, method: str, params: dict[str, Any] | None = None) -> RemoteError:
        try:
            self.call(method, params)
        except RemoteError as e:
            return e
        raise AssertionError(f"{method} succeeded but an error was expected")


class RawConnection:
    """Bytes in, frames out: for protocol conformance, in either framing."""

    def __init__(self, path: str, framing: str = "ndjson", timeout: float = 10.0) -> None:
        self.framing = framing
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buffer = b""

    def frame(self, body: bytes) -> bytes:
        if self.framing == "ndjson":
            return body + b"\n"
        return b"Content-Length: %d\r\n\r\n" % len(body) + body

    def send(self, body: bytes) -> None:
        self.sock.sendall(self.frame(body))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def read_frame(self) -> bytes | None:
        """The next frame's body, or None if the daemon closed the connection."""
        if self.framing == "ndjson":
            while b"\n" not in self.buffer:
                if not self._fill():
                    return None
            line, _, self.buffer = self.buffer.partition(b"\n")
            return line
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                return None
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = int(head.split(b":", 1)[1])
        self.buffer = rest
        while len(self.buffer) < length:
            if not self._fill():
                return None
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        self.last_header = head
        return body

    def closed_by_peer(self) -> bool:
        try:
            return not self._fill() and not self.buffer
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def other_install(dest: Path, *, version: str | None = None, protocol: int | None = None) -> Path:
    """A copy of this source tree (daemon, schema, client) with another version or protocol:
    a real pm-agentd "from another install". Run it with PYTHONPATH=dest and cwd=dest."""
    repo = Path(__file__).resolve().parent.parent
    for package in ("daemon", "schema", "client"):
        shutil.copytree(
            repo / package, dest / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    init = dest / "daemon" / "__init__.py"
    text = init.read_text()
    if version is not None:
        text = re.sub(r'__version__ = "[^"]*"', f'__version__ = "{version}"', text)
    if protocol is not None:
        text = re.sub(r"PROTOCOL_VERSION = \d+", f"PROTOCOL_VERSION = {protocol}", text)
    init.write_text(text)
    return dest


REQUIRE_TOOLS_ENV = "PM_TEST_REQUIRE_TOOLS"  # CI sets it to 1: a missing tool fails the test


def require_tool(name: str, hint: str = "") -> str:
    """The tool's path. Without it the test is skipped — or fails, when CI says every tool
    must be there (so a test can never pass in CI by not running)."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed" + (f" ({hint})" if hint else "")
        if os.environ.get(REQUIRE_TOOLS_ENV) == "1":
            pytest.fail(f"{reason}, and {REQUIRE_TOOLS_ENV}=1 says it must be")
        pytest.skip(reason)
    return path
