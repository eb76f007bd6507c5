"""How `pm status` (and `pm daemon status`) show the daemon's state to a person.

Standard library only: the fast `pm status` imports this.
"""

from __future__ import annotations

from client import output

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def duration(seconds: float) -> str:
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
        f"  pid {st.get('pid')}  up {duration(st.get('uptime_s', 0))}",
        f"socket   {st.get('socket')}"
        + ("  (socket-activated)" if st.get("socket_activated") else ""),
        f"data     {st.get('data_dir')}  (schema {st.get('schema_version')})",
        *(
            f"dev root {r['path']}"
            + ("" if r.get("exists") else "  (does not exist: nothing there is found or watched)")
            for r in st.get("dev_roots") or ()
        ),
        f"writes   {writer.get('writes', 0)} in {writer.get('batches', 0)} batches  "
        f"queue {st.get('queue_depth', 0)}/{writer.get('queue_max', '?')}  "
        f"commit p50 {writer.get('commit_ms_p50', 0)} ms p99 {writer.get('commit_ms_p99', 0)} ms",
        f"clients  {st.get('connections', 0)} connected  {st.get('subscriptions', 0)} subscribed",
    ]
    reads = st.get("reads")
    if reads:
        lines.insert(-1, f"reads    {reads.get('on_loop', 0)} on the event loop  "
                         f"{reads.get('on_threads', 0)} on reader threads")  # fmt: skip
    scan = st.get("last_scan")
    watcher = st.get("watcher") or {}
    if scan:
        found, took = scan.get("found", 0), scan.get("duration_ms", 0)
        lines.append(f"projects {found} in the last full scan ({took} ms)")
    lines += watcher_lines(watcher)
    # Paths and problems can hold any character a folder name can: shown, never obeyed.
    return head + "\n".join(output.visible(line) for line in lines) + "\n"


def watcher_lines(watcher: dict[str, Any]) -> list[str]:
    """What the file watcher is doing, in every mode (daemon/runtime/watcher.py): watching,
    degraded or polling with what is polled and why; restarting after a failure (nothing is
    watched meanwhile); starting; off. Folders it cannot watch are named."""
    mode = watcher.get("mode")
    lines: list[str] = []
    if mode in ("watching", "degraded", "polling"):
        line = f"watching {watcher.get('watched_paths', 0)} folders"
        if watcher.get("polled_paths"):
            line += f", polling {watcher['polled_paths']} ({watcher.get('problem')})"
        lines.append(line)
    elif mode == "restarting":
        problem = watcher.get("problem") or "the file watcher failed"
        lines.append(f"watcher  restarting, nothing is watched meanwhile: {problem}")
    elif mode == "starting":
        lines.append("watcher  starting")
    elif mode == "off":
        lines.append("watcher  off: changes are found by rescans only (watch = false)")
    elif mode is not None:
        lines.append(f"watcher  {mode}")
    unwatchable = [str(folder) for folder in watcher.get("unwatchable") or ()]
    if unwatchable:
        shown = ", ".join(unwatchable[:5]) + (" …" if len(unwatchable) > 5 else "")
        lines.append(f"         cannot watch {len(unwatchable)} folder(s), polled instead: {shown}")
    if watcher.get("fix") and mode != "off":
        lines.append(f"         fix: {watcher['fix']}")
    return lines
