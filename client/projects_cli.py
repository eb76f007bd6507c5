"""`pm projects`, `pm project [show] [NAME]`, `pm project set|register|forget`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from client import current, errors, output

if TYPE_CHECKING:
    from client.commands import Session


def project_ref(text: str) -> int | str:
    """What the user typed → what the daemon resolves, without asking it: an id, an absolute
    path, or a name. Only for quality_cli, whose NAME commands.py resolves first with
    `current.project_ref` (a subfolder means its project); new code calls that directly."""
    if text.isdigit():
        return int(text)
    if current.is_path(text):
        return current.absolute(text)
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
    return f"{label:<16}{'—' if value in (None, '', [], {}) else output.visible(str(value))}\n"


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
    output.show(current.holding(s, args.project), args.json, render_project)
    return 0


# The fields you set by hand (`projects.update`); tests/test_cli_projects.py holds this to the
# daemon's list. Values are checked by the daemon, whose message names what is allowed.
SETTABLE = ("name", "description", "status", "origin_type", "ownership", "repository_url",
            "deployed_url")  # fmt: skip


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def cmd_project_set(args: argparse.Namespace, s: Session) -> int:
    values = {f: getattr(args, f) for f in SETTABLE if getattr(args, f) is not None}
    reset = [f.replace("-", "_") for f in args.reset or []]
    if not values and not reset:
        flags = ", ".join(_flag(f) for f in SETTABLE)
        raise errors.UsageError(f"nothing to set: give one or more of {flags}, or --reset FIELD")
    params: dict[str, Any] = {"project": current.project_ref(s, args.project), **values}
    if reset:
        params["reset"] = reset
    output.show(s.call("projects.update", params), args.json, render_project)
    return 0


def cmd_project_register(args: argparse.Namespace, s: Session) -> int:
    project = s.call("projects.register", {"path": current.absolute(args.path)})
    output.show(project, args.json, render_project)
    return 0


def cmd_project_forget(args: argparse.Namespace, s: Session) -> int:
    project = current.holding(s, args.project)
    gone = s.call("projects.forget", {"project": project["id"]})
    if args.json:
        output.print_json(gone)
        return 0
    print(output.visible(f"forgot {project['name']} (id {gone['id']}, {gone['path']}); "
                         "its folder is untouched"))  # fmt: skip
    if gone["ignored"]:
        output.error(f"scans pass it by from now on; `pm project register {gone['path']}` "
                     "brings it back")  # fmt: skip
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

    p = sub.add_parser(
        "project",
        help="one project: show it (the default), set fields by hand, register, forget",
        description="PROJECT is a name, an id or a path; `.` or none is the project holding "
        "the current directory. `pm project NAME` is `pm project show NAME`.",
    )
    p.set_defaults(default_verb="show")  # commands.route: `pm project NAME` shows it
    verbs = p.add_subparsers(dest="project_command", required=True, metavar="VERB")
    show = verbs.add_parser("show", help="everything known about it (the default)")
    show.add_argument("project", nargs="?", metavar="PROJECT", help="default: the one here")
    show.set_defaults(fn=cmd_project)

    setter = verbs.add_parser(
        "set", help="set fields by hand (a value you set wins over what scans infer)"
    )
    setter.add_argument("project", nargs="?", metavar="PROJECT", help="default: the one here")
    for field in SETTABLE:
        setter.add_argument(_flag(field), dest=field, metavar=field.split("_")[0].upper())
    setter.add_argument(
        "--reset",
        action="append",
        metavar="FIELD",
        help="hand a field back to inference (repeatable): " + ", ".join(SETTABLE),
    )
    setter.set_defaults(fn=cmd_project_set)

    register = verbs.add_parser("register", help="track a folder (outside the Dev root too)")
    register.add_argument("path", help="the project's folder")
    register.set_defaults(fn=cmd_project_register)

    forget = verbs.add_parser(
        "forget", help="remove it from pm-agent (never from disk); its history goes with it"
    )
    forget.add_argument("project", metavar="PROJECT", help="a name, an id or a path (. for here)")
    forget.set_defaults(fn=cmd_project_forget)
