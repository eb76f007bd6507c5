"""`pm`: the command line. This module is the entry point and the fast path only.

`pm status` must start about as fast as Python itself, so it is handled here with the
standard library's C pieces; every other command loads `client.commands` (argparse, json).
"""

from __future__ import annotations

import sys

from client import errors, output
from client.sync import Client

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def split_globals(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The global flags (`--json`, `--socket PATH`, `--no-spawn`), wherever they stand, and
    the rest. Everything after `--` is left as it is."""
    opts: dict[str, Any] = {"json": False, "socket": None, "no_spawn": False}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if arg == "--json":
            opts["json"] = True
        elif arg == "--no-spawn":
            opts["no_spawn"] = True
        elif arg == "--socket" and i + 1 < len(argv):
            opts["socket"] = argv[i + 1]
            i += 1
        elif arg.startswith("--socket="):
            opts["socket"] = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return opts, rest


def _status(opts: dict[str, Any]) -> int:
    from client import locations

    output.use_json_stderr(opts["json"])
    try:
        path = locations.client_socket_path(opts["socket"])
    except locations.ConfigFileError as e:
        return output.fail(str(e), kind="config", exit_code=errors.EXIT_FAILED)
    try:
        spawned = False
        try:
            client = Client(path, timeout=30.0).connect()
        except errors.Unreachable:
            if opts["no_spawn"]:
                raise
            from client import spawn

            spawned = spawn.start(path) is not None
            client = Client(path, timeout=30.0).connect()
        with client:
            status = client.call("daemon.status")
            if spawned:
                status = _until_ready(client, status)
    except errors.ClientError as e:
        return output.fail(str(e), kind=e.kind, exit_code=e.exit_code)
    if _older(status.get("version")) or status.get("protocol_version") != errors.PROTOCOL_VERSION:
        # After an upgrade: the full path greets the daemon, restarts an older one, or says
        # clearly why it cannot talk to it.
        from client.commands import run

        return run([*_global_flags(opts), "status"])
    if opts["json"]:
        output.print_json(status)
    else:
        sys.stdout.write(render_status(status))
    return errors.EXIT_OK


def _older(version: Any) -> bool:
    """Is the daemon's version older than this install's? (Plain release numbers only.)"""
    from client.version import __version__

    def release(v: Any) -> list[int]:
        head = str(v).split("+")[0].split("-")[0]
        return [int(p) for p in head.split(".") if p.isdigit()]

    theirs = release(version)
    return bool(theirs) and theirs < release(__version__)


def _global_flags(opts: dict[str, Any]) -> list[str]:
    flags = ["--json"] if opts["json"] else []
    if opts["socket"]:
        flags += ["--socket", opts["socket"]]
    return flags + (["--no-spawn"] if opts["no_spawn"] else [])


def _until_ready(client: Client, status: dict[str, Any]) -> dict[str, Any]:
    """A daemon we just started: show it once it is ready (migrations can take a moment)."""
    import time

    deadline = time.monotonic() + 120
    while status.get("state") in ("starting", "migrating") and time.monotonic() < deadline:
        time.sleep(0.02)
        status = client.call("daemon.status")
    return status


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def render_status(st: dict[str, Any]) -> str:
    state = st.get("state", "?")
    shade = {"ready": "32", "stopping": "33"}.get(state, "36")
    writer = st.get("writer") or {}
    head = output.visible(f"pm-agentd {st.get('version')}  ") + output.paint(
        output.visible(str(state)), shade
    )
    lines = [
        f"  pid {st.get('pid')}  up {_duration(st.get('uptime_s', 0))}",
        f"socket   {st.get('socket')}"
        + ("  (socket-activated)" if st.get("socket_activated") else ""),
        f"data     {st.get('data_dir')}  (schema {st.get('schema_version')})",
        *(
            f"dev root {r['path']}" + ("" if r.get("exists") else "  (does not exist)")
            for r in st.get("dev_roots") or ()
        ),
        f"writes   {writer.get('writes', 0)} in {writer.get('batches', 0)} batches  "
        f"queue {st.get('queue_depth', 0)}/{writer.get('queue_max', '?')}  "
        f"commit p50 {writer.get('commit_ms_p50', 0)} ms p99 {writer.get('commit_ms_p99', 0)} ms",
        f"clients  {st.get('connections', 0)} connected  {st.get('subscriptions', 0)} subscribed",
    ]
    scan = st.get("last_scan")
    watcher = st.get("watcher") or {}
    if scan:
        found, took = scan.get("found", 0), scan.get("duration_ms", 0)
        lines.append(f"projects {found} in the last full scan ({took} ms)")
    mode = watcher.get("mode")
    if mode in ("watching", "degraded", "polling"):
        line = f"watching {watcher.get('watched_paths', 0)} folders"
        if watcher.get("polled_paths"):
            line += f", polling {watcher['polled_paths']} ({watcher.get('problem')})"
        lines.append(line)
        if watcher.get("fix"):
            lines.append(f"         fix: {watcher['fix']}")
    # Paths and problems can hold any character a folder name can: shown, never obeyed.
    return head + "\n".join(output.visible(line) for line in lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        opts, rest = split_globals(args)
        if rest == ["status"]:
            return _status(opts)
        from client.commands import run

        return run(args)
    except KeyboardInterrupt:  # Ctrl-C ends any command quietly, wherever it was
        return 130
