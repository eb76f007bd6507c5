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
