"""`pm projects`, `pm project [show] [NAME]`, `pm project set|register|forget`.

Shortcuts for a person: projects are named by name, id or path (`.` or nothing: the one
here), listed with relative times and paths under ~. `pm project set` takes the fields
`projects.update` takes, as the daemon's `rpc.discover` says (client.catalogue).
"""

from __future__ import annotations

import os
import sys

from client import current, errors, output
from client.spec import Arg, Command

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from client.args import Args
    from client.session import Session

UPDATE = "projects.update"
RESET = "reset"  # hands fields back to inference: `--reset FIELD`, repeatable


def cmd_projects(args: Args, s: Session) -> int:
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


def cmd_project(args: Args, s: Session) -> int:
    output.show(current.holding(s, args.project), args.json, render_project)
    return 0


def settable(s: Session) -> list[dict[str, Any]]:
    """The params of `projects.update` but the project itself: the fields set by hand, and
    `reset`."""
    entry = s.noun("projects") or {}
    spec = entry.get("verbs", {}).get("update", {"params": []})
    return [p for p in spec["params"] if p["name"] != "project"]


def cmd_project_set(args: Args, s: Session) -> int:
    from client import generated

    fields = settable(s)
    values = generated.params({"method": UPDATE, "params": fields}, args, s)
    if not values:
        flags = ", ".join("--" + p["name"].replace("_", "-") for p in fields if p["name"] != RESET)
        raise errors.UsageError(f"nothing to set: give one or more of {flags}, or --reset FIELD")
    output.show(
        s.call(UPDATE, {"project": current.project_ref(s, args.project), **values}),
        args.json,
        render_project,
    )
    return 0


def cmd_project_register(args: Args, s: Session) -> int:
    project = s.call("projects.register", {"path": current.absolute(args.path)})
    output.show(project, args.json, render_project)
    return 0


def cmd_project_forget(args: Args, s: Session) -> int:
    project = current.holding(s, args.project)
    gone = s.call("projects.forget", {"project": project["id"]})
    if args.json:
        output.print_json(gone)
        return 0
    print(
        output.visible(
            f"forgot {project['name']} (id {gone['id']}, {gone['path']}); its folder is untouched"
        )
    )
    if gone["ignored"]:
        output.error(
            f"scans pass it by from now on; `pm project register {gone['path']}` brings it back"
        )
    return 0


def _set_args(s: Session) -> list[Arg]:
    from client import generated

    here = Arg(
        "project",
        optional=True,
        metavar="PROJECT",
        complete="project",
        help="a name, an id or a path (default: the one here)",
    )
    return [here, *generated.options(settable(s))]


def command(word: str) -> Command:
    if word == "projects":
        return Command(
            "projects",
            cmd_projects,
            [
                Arg("status", "--status", repeat=True, choices=["active", "on-hold", "archived"]),
                Arg(
                    "query", "--query", "-q", metavar="TEXT", help="match name, path or description"
                ),
                Arg("order", "--order", choices=["recent", "name", "quality"], default="recent"),
                Arg("all", "--all", flag=True, help="include projects whose folder vanished"),
                Arg("limit", "--limit", convert=int, default=100, metavar="N"),
                Arg("offset", "--offset", convert=int, default=0, metavar="N"),
            ],
            help="the projects in your Dev folder",
        )
    project = Arg(
        "project",
        optional=True,
        metavar="PROJECT",
        complete="project",
        help="a name, an id or a path (default: the one here)",
    )
    named = Arg(
        "project",
        metavar="PROJECT",
        complete="project",
        help="a name, an id or a path (. for here)",
    )
    return Command(
        "project",
        cmd_project,  # `pm project NAME` is `pm project show NAME`
        [project],
        help="one project: show it (the default), set fields by hand, register, forget",
        description="PROJECT is a name, an id or a path; `.` or none is the project holding "
        "the current directory. `pm project NAME` is `pm project show NAME`.",
        verbs=[
            Command("show", cmd_project, [project], help="everything known about it (the default)"),
            Command(
                "set",
                cmd_project_set,
                [project],
                later=_set_args,
                help="set fields by hand (a value you set wins over what scans infer)",
            ),
            Command(
                "register",
                cmd_project_register,
                [Arg("path", help="the project's folder")],
                help="track a folder (outside the Dev root too)",
            ),
            Command(
                "forget",
                cmd_project_forget,
                [named],
                help="remove it from pm-agent (never from disk); its history goes with it",
            ),
        ],
    )
