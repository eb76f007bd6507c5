"""`pm mcp`: the tool list's size in tokens, a tool call's round trip through the bridge
against the same read straight from the daemon, and start-up to a ready `initialize`.

- Tokens: the core tool list as `tools/list` returns it (compact JSON, as on the wire),
  counted with OpenAI's o200k_base vocabulary by the npm `gpt-tokenizer` (it ships its
  vocabulary; tests/node's lockfile pins it), per tool and whole; `--tools all` beside it.
- Round trip: `show {id}` (tasks.get, brief) sent as raw JSON-RPC lines on the bridge's stdin
  (so the MCP client's own cost is not counted) against `tasks.get` on the daemon's socket
  from one connection; the two alternate call by call, so noise hits both alike.
- Start-up: `pm mcp` spawned and sent `initialize` at once, timed to its answer (and on to the
  first `tools/list`, which needs the daemon); beside it, the time an interpreter takes to say
  a first line after nothing, and after `import mcp.server.lowlevel` (the SDK's own import: a
  floor for any bridge built on it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from bench import common
from bench.common import REPO, Table, fmt_ms, fmt_us, median, percentile, spread
from client.sync import Client

GOAL_TOKENS = 2500
GOAL_ADDED_P50_S = 1e-3
GOAL_START_S = 0.300
NODE_DIR = REPO / "tests" / "node"
PM = Path(sys.executable).parent / "pm"
INITIALIZE = {
    "jsonrpc": "2.0", "id": 0, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {},
               "clientInfo": {"name": "bench", "version": "1"}},
}  # fmt: skip


class RawBridge:
    """`pm mcp` on pipes, spoken to in JSON lines: no MCP client library in the measure."""

    def __init__(self, daemon: common.Daemon, cwd: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [str(PM), "mcp", *args], env=daemon.env, cwd=cwd, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
        )  # fmt: skip
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin: IO[bytes] = self.process.stdin
        self.stdout: IO[bytes] = self.process.stdout
        self._ids = 0

    def send(self, message: dict[str, Any]) -> None:
        self.stdin.write(json.dumps(message).encode() + b"\n")

    def request(self, method: str, params: dict[str, Any] | None = None) -> bytes:
        self._ids += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._ids, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.stdout.readline()

    def initialize(self) -> bytes:
        self.send(INITIALIZE)
        line = self.stdout.readline()
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return line

    def close(self) -> None:
        self.stdin.close()
        self.process.wait(30)
        self.stdout.close()


# --- tokens ------------------------------------------------------------------------------
def count_tokens(texts: list[str]) -> list[int]:
    if not (NODE_DIR / "node_modules" / "gpt-tokenizer").exists():
        subprocess.run(["npm", "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
                       check=True, capture_output=True)  # fmt: skip
    done = subprocess.run(
        ["node", str(NODE_DIR / "count_tokens.mjs")], input=json.dumps(texts),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    counts: list[int] = json.loads(done.stdout)
    return counts


def tool_list(daemon: common.Daemon, cwd: Path, tools: str) -> list[dict[str, Any]]:
    bridge = RawBridge(daemon, cwd, "--tools", tools)
    try:
        bridge.initialize()
        listed: list[dict[str, Any]] = json.loads(bridge.request("tools/list"))["result"]["tools"]
        return listed
    finally:
        bridge.close()


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def token_table(daemon: common.Daemon, cwd: Path) -> tuple[Table, int]:
    core = tool_list(daemon, cwd, "core")
    everything = tool_list(daemon, cwd, "all")
    texts = [compact({"tools": core}), compact({"tools": everything})]
    texts += [compact(tool) for tool in core]
    counts = count_tokens(texts)
    total, all_total, per_tool = counts[0], counts[1], counts[2:]
    table = Table(
        "The tool list in tokens (o200k_base, gpt-tokenizer)",
        ["tool list", "tools", "characters", "tokens", "goal"],
    )
    met = "met" if total <= GOAL_TOKENS else "**not met**"
    table.add("core (default)", str(len(core)), f"{len(texts[0]):,}", f"{total:,}",
              f"≤ {GOAL_TOKENS:,}: {met}")  # fmt: skip
    table.add("--tools all", str(len(everything)), f"{len(texts[1]):,}", f"{all_total:,}", "")
    table.notes.append(
        "Per core tool: "
        + ", ".join(f"{t['name']} {n}" for t, n in zip(core, per_tool, strict=True))
        + ". For scale: claude-task-master's 7 core tools ~5,000, its full set ~21,000."
    )
    return table, total


# --- round trips -------------------------------------------------------------------------
def round_trips(
    daemon: common.Daemon, cwd: Path, task: int, calls: int
) -> tuple[list[float], list[float]]:
    bridge = RawBridge(daemon, cwd)
    client = Client(daemon.socket_path, timeout=30.0).connect()
    through: list[float] = []
    direct: list[float] = []
    try:
        bridge.initialize()
        arguments = {"name": "show", "arguments": {"id": task}}
        for _ in range(50):  # warm: the bridge's discover, both connections, caches
            bridge.request("tools/call", arguments)
            client.call("tasks.get", {"id": task})
        for _ in range(calls):
            started = time.perf_counter()
            line = bridge.request("tools/call", arguments)
            through.append(time.perf_counter() - started)
            started = time.perf_counter()
            client.call("tasks.get", {"id": task})
            direct.append(time.perf_counter() - started)
        assert b'"isError":false' in line or b'"isError"' not in line, line
    finally:
        client.close()
        bridge.close()
    return through, direct


# --- start-up ----------------------------------------------------------------------------
def startups(daemon: common.Daemon, cwd: Path, count: int) -> dict[str, list[float]]:
    names = ("initialize", "tools/list", "python -c pass", "import mcp.server.lowlevel")
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(count):
        started = time.perf_counter()
        bridge = RawBridge(daemon, cwd)
        bridge.initialize()
        times["initialize"].append(time.perf_counter() - started)
        bridge.request("tools/list")
        times["tools/list"].append(time.perf_counter() - started)
        bridge.close()
        times["python -c pass"].append(until_said(daemon, ""))
        times["import mcp.server.lowlevel"].append(until_said(daemon, "import mcp.server.lowlevel"))
    return times


def until_said(daemon: common.Daemon, code: str) -> float:
    """Spawn to the first line of `python -c CODE; print(...)` (not to its exit: a process
    with the SDK loaded takes a while to tear down, which no client waits for)."""
    started = time.perf_counter()
    with subprocess.Popen(
        [sys.executable, "-c", f"{code}\nprint('ready', flush=True)"],
        env=daemon.env, stdout=subprocess.PIPE,
    ) as child:  # fmt: skip
        assert child.stdout is not None
        child.stdout.readline()
        said = time.perf_counter() - started
    return said


# --- the run -----------------------------------------------------------------------------
def project_folder(daemon: common.Daemon) -> Path:
    folder = daemon.root / "dev" / "alpha"
    (folder / "src").mkdir(parents=True)
    (folder / "pyproject.toml").write_text('[project]\nname = "alpha"\n')
    return folder


def main(runs: int, quick: bool) -> int:
    calls = 200 if quick else 2000
    starts = 3 if quick else 10
    daemon = common.Daemon()
    folder = project_folder(daemon)  # before the daemon starts: its first scan finds it
    with daemon:
        common.wait_for(lambda: daemon.call("projects.get", {"project": "alpha"}), 30,
                        "the first scan to find alpha")  # fmt: skip
        project = daemon.call("projects.get", {"project": "alpha"})["id"]
        task = daemon.call("tasks.add", {"project": project, "title": "a task to show"})["id"]
        for i in range(20):
            daemon.call("tasks.add", {"project": project, "title": f"task {i}"})
        tokens, total = token_table(daemon, folder / "src")
        print(tokens.render(), flush=True)

        p50s: dict[str, list[float]] = {"bridge": [], "direct": [], "added": []}
        p99s: dict[str, list[float]] = {"bridge": [], "direct": []}
        started: dict[str, list[float]] = {}
        for run in range(runs):
            through, direct = round_trips(daemon, folder / "src", task, calls)
            p50s["bridge"].append(percentile(through, 50))
            p50s["direct"].append(percentile(direct, 50))
            p50s["added"].append(percentile(through, 50) - percentile(direct, 50))
            p99s["bridge"].append(percentile(through, 99))
            p99s["direct"].append(percentile(direct, 99))
            for name, values in startups(daemon, folder / "src", starts).items():
                started.setdefault(name, []).append(median(values))
            print(f"run {run + 1}/{runs} done", file=sys.stderr, flush=True)

    trips = Table(
        f"A tool call's round trip ({calls:,} calls per run, medians of {runs} runs)",
        ["path", "p50", "p99"],
    )
    trips.add("`show` through pm mcp (stdio → bridge → socket → back)",
              spread(p50s["bridge"], fmt_us), spread(p99s["bridge"], fmt_us))  # fmt: skip
    trips.add("`tasks.get` straight to the daemon (baseline)",
              spread(p50s["direct"], fmt_us), spread(p99s["direct"], fmt_us))  # fmt: skip
    added = median(p50s["added"])
    met = "met" if added <= GOAL_ADDED_P50_S else "**not met**"
    trips.add("added by the bridge", f"{fmt_us(added)} (goal ≤ 1 ms: {met})", "")
    print(trips.render(), flush=True)

    start = Table(
        f"Start-up ({starts} starts per run, medians of {runs} runs)", ["to", "time", "goal"]
    )
    init = median(started["initialize"])
    met = "met" if init <= GOAL_START_S else "**not met**"
    start.add("`pm mcp` → `initialize` answered", spread(started["initialize"], fmt_ms),
              f"≤ 300 ms: {met}")  # fmt: skip
    start.add("`pm mcp` → first `tools/list` answered (daemon asked)",
              spread(started["tools/list"], fmt_ms), "")  # fmt: skip
    start.add("baseline: `python -c pass` (to its first line)",
              spread(started["python -c pass"], fmt_ms), "")  # fmt: skip
    start.add("floor: `python -c 'import mcp.server.lowlevel'` (the SDK alone, to a line)",
              spread(started["import mcp.server.lowlevel"], fmt_ms), "")  # fmt: skip
    print(start.render(), flush=True)
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = total <= GOAL_TOKENS and added <= GOAL_ADDED_P50_S and init <= GOAL_START_S
    return 0 if ok else 1
