"""What every benchmark shares: a real daemon in a temp world, percentiles, tables, the machine.

The daemon is a real `python -m daemon` subprocess with HOME, its data and its socket in temp
dirs (the socket in a short /tmp folder: a Unix socket path must fit in ~107 bytes). Readiness
is polled with `daemon.status`, never slept for; stopping is SIGTERM, then a kill if need be.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any, Self

from client.errors import ClientError
from client.sync import Client

REPO = Path(__file__).resolve().parent.parent


def short_tmp_dir() -> str:
    return tempfile.mkdtemp(prefix="pm-", dir="/tmp")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
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


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A small environment for children; PYTHONDONTWRITEBYTECODE is deliberately not passed."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    for name in ("PYTHONPATH", "VIRTUAL_ENV"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(extra or {})
    return env


def socket_answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


class Daemon:
    """One pm-agentd in its own temp world; a context manager that always cleans up."""

    def __init__(self, config: Mapping[str, str] | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pm-bench-"))
        self._socket_dir = short_tmp_dir()
        self.socket_path = os.path.join(self._socket_dir, "pm.sock")
        self.home = self.root / "home"
        self.home.mkdir()
        self.log_path = self.root / "daemon.log"
        self.env = child_env(
            {
                "HOME": str(self.home),
                "PM_AGENT_DEV_ROOT": str(self.root / "dev"),
                "PM_AGENT_DATA_DIR": str(self.root / "data"),
                "PM_AGENT_SOCKET": self.socket_path,
                "PM_AGENT_LOG_FILE": str(self.log_path),
                **{f"PM_AGENT_{k.upper()}": v for k, v in (config or {}).items()},
            }
        )
        self.process: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    @property
    def db_path(self) -> Path:
        return self.root / "data" / "db" / "pm-agent.db"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def start(self, timeout: float = 60.0) -> dict[str, Any]:
        self._out = open(self.root / "daemon.out", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daemon"],
            env=self.env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._out,
        )
        status: dict[str, Any] = wait_for(self._ready, timeout, "the daemon to be ready")
        return status

    def _ready(self) -> dict[str, Any] | None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"pm-agentd exited with {self.process.returncode}:\n{self.output()}")
        status = self.call("daemon.status")
        return status if status and status.get("state") == "ready" else None

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        try:
            with Client(self.socket_path, timeout=10.0).connect() as client:
                return client.call(method, params)
        except ClientError:
            return None

    def output(self) -> str:
        parts = [self.root / "daemon.out", self.log_path]
        return "".join(p.read_text(errors="replace") for p in parts if p.exists())[-4000:]

    def stop_cleanly(self) -> None:
        """Stop it; a non-zero exit is an error, with what the daemon printed."""
        code = self.stop()
        if code != 0:
            raise RuntimeError(f"the daemon exited with {code}:\n{self.output()}")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            if self._out is not None:
                self._out.close()
                self._out = None

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.stop(30.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self._out is not None:
            self._out.close()
            self._out = None
        shutil.rmtree(self._socket_dir, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)


def next_line(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    """The next newline-ended message from `sock` (read as needed past what `buffer` holds),
    without its newline, and what is left after it."""
    while b"\n" not in buffer:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the daemon closed the connection")
        buffer += chunk
    line, _, rest = buffer.partition(b"\n")
    return line, rest


def count_rows(db_path: Path | str, table: str = "kv") -> int:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def pin_threads(pid: int, cpus: set[int]) -> None:
    """Set the CPU affinity of every thread of `pid` (new threads inherit their creator's)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # the thread has just exited
            os.sched_setaffinity(int(tid), cpus)


class ThreadCpu:
    """CPU time per thread of a process between `begin` and `end`, from /proc: it shows which
    thread is the bottleneck."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._before: dict[int, float] = {}
        self._started = 0.0
        self.main = 0.0  # fraction of one core
        self.others: list[float] = []  # the other threads' fractions, busiest first
        self.machine = 0.0  # the whole machine's busy fraction (all cores, every process)
        self._machine_before = (0, 0)

    def _sample(self) -> dict[int, float]:
        ticks = os.sysconf("SC_CLK_TCK")
        times: dict[int, float] = {}
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return times
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/stat", encoding="ascii") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            times[int(tid)] = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        return times

    @staticmethod
    def _machine() -> tuple[int, int]:
        """(busy, total) jiffies of all cores, from the first line of /proc/stat."""
        try:
            with open("/proc/stat", encoding="ascii") as f:
                values = [int(v) for v in f.readline().split()[1:]]
        except OSError:
            return (0, 0)
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return (sum(values[:8]) - idle, sum(values[:8]))

    def begin(self) -> None:
        self._machine_before = self._machine()
        self._before = self._sample()
        self._started = time.monotonic()

    def end(self) -> None:
        after = self._sample()
        elapsed = time.monotonic() - self._started
        used = {t: (v - self._before.get(t, 0.0)) / elapsed for t, v in after.items()}
        self.main = used.pop(self.pid, 0.0)
        self.others = sorted((v for v in used.values() if v >= 0.01), reverse=True)
        busy, total = (a - b for a, b in zip(self._machine(), self._machine_before, strict=True))
        self.machine = busy / total if total else 0.0


def fmt_cpu(probes: Sequence[ThreadCpu]) -> str:
    """Medians across runs of the main thread's and the busiest other threads' CPU."""
    main = median([p.main for p in probes])
    width = max(len(p.others) for p in probes)
    others = [
        median([p.others[i] if i < len(p.others) else 0.0 for p in probes]) for i in range(width)
    ]
    rest = ", ".join(f"{x:.0%}" for x in others[:4]) or "none above 1%"
    machine = median([p.machine for p in probes])
    return (
        f"main thread (event loop) {main:.0%} of a core, other threads {rest}; "
        f"the whole machine (all {os.cpu_count()} cores, load generators included) "
        f"{machine:.0%} busy"
    )


def fsync_latency(folder: str, count: int = 500) -> tuple[float, float]:
    """(p50, p99) seconds to fsync a file after appending 4 KiB to it, in `folder`."""
    fd, path = tempfile.mkstemp(dir=folder)
    times: list[float] = []
    try:
        for _ in range(count):
            os.write(fd, b"\0" * 4096)
            started = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        os.unlink(path)
    return percentile(times, 50), percentile(times, 99)


# --- statistics -----------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least p% of values at or below it."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    """The middle value (mean of the two middle ones for an even count)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# --- output ---------------------------------------------------------------------------------


@dataclass
class Table:
    """A Markdown table: readable in a terminal, pasteable into RESULTS.md."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: str) -> None:
        self.rows.append(list(cells))

    def render(self) -> str:
        widths = [
            max(len(r[i]) for r in [self.columns, *self.rows]) for i in range(len(self.columns))
        ]

        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        out = [f"### {self.title}", "", line(self.columns)]
        out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        out.extend(line(r) for r in self.rows)
        if self.notes:
            out.append("")
            out.extend(self.notes)
        return "\n".join(out) + "\n"


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}/s"


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms"


def fmt_ratio(ours: float, baseline: float) -> str:
    return f"{ours / baseline:.2f}x" if baseline else "n/a"


def spread(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """The median across runs, with the range, e.g. `31,000/s (29,500 .. 32,100)`."""
    return f"{fmt(median(values))} ({fmt(min(values))} .. {fmt(max(values))})"


# --- the machine ----------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    try:
        uvloop_version = metadata.version("uvloop")
    except metadata.PackageNotFoundError:
        uvloop_version = "not installed"
    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "uvloop": uvloop_version,
    }


def code_version() -> str:
    """The commit under test, and whether daemon/ or client/ differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "daemon", "client", "schema"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" with local changes in daemon/client/schema" if dirty else " (clean)")


def describe_machine() -> str:
    return ", ".join(f"{k}: {v}" for k, v in machine().items())


_FORK = multiprocessing.get_context("fork")


class PipeChild:
    """A client in a process of its own, over a pipe: `target(*args, pipe)` sends "ready" once
    connected, works until it receives "stop", then sends its result (or a traceback, as a
    string). A context manager that always ends the process."""

    def __init__(self, what: str, target: Callable[..., None], *args: Any) -> None:
        self._what = what
        self._pipe, child = _FORK.Pipe()
        self._process = _FORK.Process(target=target, args=(*args, child), daemon=True)
        self._process.start()
        child.close()
        if not self._pipe.poll(30.0):
            self.close()
            raise TimeoutError(f"the {what} did not connect in time")
        message = self._pipe.recv()
        if message != "ready":
            self.close()
            raise RuntimeError(f"the {what} failed:\n{message}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stop(self, timeout_s: float) -> Any:
        self._pipe.send("stop")
        if not self._pipe.poll(timeout_s):
            raise TimeoutError(f"the {self._what} did not stop in time")
        result = self._pipe.recv()
        if isinstance(result, str):
            raise RuntimeError(f"the {self._what} failed:\n{result}")
        return result

    def close(self) -> None:
        self._process.join(5.0)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5.0)
        self._pipe.close()


def met(ok: bool) -> str:
    """How a goal line reads."""
    return "met" if ok else "NOT met"
