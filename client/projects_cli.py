"""`pm projects`, `pm project NAME`, `pm scan`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from client import output

if TYPE_CHECKING:
    from client.commands import Session


def project_ref(text: str) -> int | str:
    """What the user typed → what the daemon resolves: an id, an absolute path, or a name."""
    if text.isdigit():
        return int(text)
    if text in (".", "..") or os.sep in text or text.startswith("~"):
        return os.path.abspath(os.path.expanduser(text))  # the daemon cannot know our cwd
    return text


def cmd_projects(args: argparse.Namespace, s: Session) -> int:
    params: dict[str, Any] = {
        "status": args.status or [],
        "order": {"name": "name", "quality": "quality"}.get(args.order, "last_worked_on"),
        "include_missing": args.all,
        "limit": args.limit,
        "offset": args.offset,
    }
    if args.query:
        params["query"] = args.query
    page = s.call("projects.list", params)
    if args.json:
        output.print_json(page)
        return 0
    items = page["items"]
    with_quality = any(p.get("quality_score") is not None for p in items)
    headers = (
        ["NAME", "STATUS", "LAST WORKED ON"] + (["QUALITY"] if with_quality else []) + ["PATH"]
    )
    home = os.path.expanduser("~")
    rows = []
    for p in items:
        status = p["status"] if p["present"] else f"{p['status']} (missing)"
        path = p["path"]
        if path.startswith(home + os.sep):
            path = "~" + path[len(home) :]
        row = [p["name"], status, output.relative_time(p["last_worked_on"])]
        if with_quality:
            q = p.get("quality_score")
            row.append("—" if q is None else str(q))
        rows.append([*row, path])
    sys.stdout.write(output.table(headers, rows))
    shown = len(items)
    if page["total"] > args.offset + shown:
        output.error(f"showing {shown} of {page['total']}; use --limit/--offset for more")
    if not items and not args.query and not args.status:
        output.error("no projects yet; `pm scan` reads the Dev folder now")
    return 0


def _field(label: str, value: Any) -> str:
    return f"{label:<16}{'—' if value in (None, '', [], {}) else value}\n"


def render_project(p: dict[str, Any]) -> str:
    mark = set(p.get("user_set") or [])

    def by_hand(name: str) -> str:
        return "  (set by you)" if name in mark else ""

    languages = p.get("languages") or {}
    total = sum(languages.values()) or 1
    top = sorted(languages.items(), key=lambda kv: -kv[1])[:5]
    langs = ", ".join(f"{k} {100 * v // total}%" for k, v in top)
    remotes = ", ".join(f"{r['name']} {r['url']}" for r in p.get("remotes") or [])
    head = p.get("branch") or (p["head_sha"][:12] + " (detached)" if p.get("head_sha") else None)
    where = p["path"] if p["present"] else f"{p['path']}  (missing since {p['missing_since']})"
    last = p.get("last_worked_on")
    out = [
        _field("name", f"{p['name']}{by_hand('name')}"),
        _field("id", p["id"]),
        _field("path", where),
        _field("status", f"{p['status']}{by_hand('status')}"),
        _field("description", p.get("description")),
        _field("last worked on", f"{output.relative_time(last)} ({last})" if last else None),
        _field("origin", f"{p.get('origin_type') or '—'}{by_hand('origin_type')}"),
        _field("ownership", f"{p.get('ownership') or '—'}{by_hand('ownership')}"),
        _field("repository", p.get("repository_url")),
        _field("deployed", p.get("deployed_url")),
        _field("vcs", p.get("vcs")),
        _field("head", head),
        _field("remotes", remotes),
        _field("languages", langs),
        _field("worktree of", p.get("worktree_of")),
        _field("source", p.get("source")),
        _field("scanned", p.get("scanned_at")),
    ]
    if p.get("scan_error"):
        out.append(_field("scan problem", p["scan_error"]))
    return "".join(out)


def cmd_project(args: argparse.Namespace, s: Session) -> int:
    output.show(s.call("projects.get", {"project": project_ref(args.name)}), args.json,
                render_project)  # fmt: skip
    return 0


def cmd_scan(args: argparse.Namespace, s: Session) -> int:
    bar = output.ProgressBar()
    params: dict[str, Any] = {"workDoneToken": "pm-scan"}
    if args.project:
        params["project"] = project_ref(args.project)

    def on_notification(message: dict[str, Any]) -> None:
        if message.get("method") == "$/progress":
            value = message.get("params", {}).get("value", {})
            bar.update(value.get("percentage"), value.get("message", ""))

    try:
        s.client()  # connect (and start the daemon) before the bar appears
        summary = s.call("projects.scan", params, on_notification=on_notification)
    finally:
        bar.close()
    if args.json:
        output.print_json(summary)
        return 0
    counts = " · ".join(
        f"{key} {summary[key]}"
        for key in ("found", "new", "updated", "unchanged", "missing", "moved", "returned")
    )
    errors = summary["errors"]
    print(f"{counts} · errors {len(errors)}  ({summary['duration_ms'] / 1000:.2f} s)")
    for issue in errors[:10]:
        output.error(f"{issue['path'] or 'scan'}: {issue['error']}")
    if len(errors) > 10:
        output.error(f"… and {len(errors) - 10} more (pm --json scan lists them all)")
    return 0


def add_parsers(sub: Any) -> None:
    ps = sub.add_parser("projects", help="the projects in your Dev folder")
    ps.add_argument("--status", action="append", choices=["active", "on-hold", "archived"])
    ps.add_argument("--query", "-q", help="match name, path or description")
    ps.add_argument("--order", choices=["recent", "name", "quality"], default="recent")
    ps.add_argument("--all", action="store_true", help="include projects whose folder vanished")
    ps.add_argument("--limit", type=int, default=100)
    ps.add_argument("--offset", type=int, default=0)
    ps.set_defaults(fn=cmd_projects)
    p = sub.add_parser("project", help="everything known about one project")
    p.add_argument("name", help="a name, a path (. for here) or an id")
    p.set_defaults(fn=cmd_project)
    sc = sub.add_parser("scan", help="read the Dev folder (or one project) now")
    sc.add_argument("project", nargs="?", help="a name, a path or an id (default: everything)")
    sc.set_defaults(fn=cmd_scan)
