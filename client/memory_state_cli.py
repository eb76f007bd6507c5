"""`pm agents`, `pm checkpoint save|list|restore`, `pm metrics`: who is working, snapshots of
a project's work, and token use over time."""

from __future__ import annotations

import sys

from client import current, errors, output
from client.spec import Arg, Command

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from client.args import Args
    from client.session import Session

_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """One block per value, scaled to the largest (a gap for none)."""
    top = max(values, default=0.0)
    if top <= 0:
        return " " * len(values)
    return "".join(" " if v <= 0 else _BARS[min(7, int(v / top * 7.999))] for v in values)


# --- pm agents ----------------------------------------------------------------------------------
def cmd_agents(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"limit": args.limit, "order": "recent"}
    if args.status:
        params["status"] = args.status
    page = s.call("agents.list", params)
    if args.json:
        output.print_json(page)
        return 0
    rows = [
        [a["name"], a["type"], a["status"], a.get("model_name") or "",
         f"{a['tokens_used']:,}", f"{a['tasks_completed']}/{a['tasks_failed']}",
         output.relative_time(a.get("last_activity_at") or a["created_at"])]
        for a in page["items"]
    ]  # fmt: skip
    headers = ["NAME", "TYPE", "STATUS", "MODEL", "TOKENS", "DONE/FAILED", "LAST SEEN"]
    sys.stdout.write(output.table(headers, rows, [30, 12, 10, 24]))
    if not rows:
        output.error("no agent has registered (agents.heartbeat registers one)")
    return 0


# --- pm checkpoint --------------------------------------------------------------------------
def _counts(c: dict[str, Any]) -> str:
    counts = c.get("counts") or {t: len(v) for t, v in (c.get("state") or {}).items()
                                 if isinstance(v, list)}  # fmt: skip
    return ", ".join(f"{n} {t}" for t, n in counts.items() if n) or "nothing yet"


def cmd_checkpoint_save(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"project": current.project_ref(s, args.project)}
    for name in ("name", "reason", "agent"):
        if args.get(name):
            params[name] = args.get(name)
    made = s.call("checkpoints.save", params)
    if args.json:
        output.print_json(made)
    else:
        commit = f" at {made['git_commit'][:12]}" if made.get("git_commit") else ""
        print(f"checkpoint #{made['id']} {output.visible(made['name'])}{commit}: {_counts(made)}")
    return 0


def cmd_checkpoint_list(args: Args, s: Session) -> int:
    project = current.project_ref(s, args.project)
    page = s.call("checkpoints.list", {"project": project, "limit": args.limit})
    if args.json:
        output.print_json(page)
        return 0
    rows = [
        [str(c["id"]), c["name"], c["kind"], (c.get("git_commit") or "")[:12], _counts(c),
         output.relative_time(c["created_at"])]
        for c in page["items"]
    ]  # fmt: skip
    sys.stdout.write(output.table(["ID", "NAME", "KIND", "COMMIT", "HOLDS", "TAKEN"], rows,
                                  [None, 40]))  # fmt: skip
    return 0


def cmd_checkpoint_restore(args: Args, s: Session) -> int:
    if not args.yes:
        raise errors.UsageError(
            "this puts the project's plans and tasks back as the checkpoint holds them (the "
            "current state is saved first as a safety checkpoint): add --yes to confirm"
        )
    done = s.call("checkpoints.restore", {"id": args.id})
    if args.json:
        output.print_json(done)
        return 0
    back = ", ".join(f"{n} {t}" for t, n in done["restored"].items() if n)
    gone = ", ".join(f"{n} {t}" for t, n in done["deleted"].items() if n)
    print(f"restored checkpoint #{args.id}: {back or 'nothing'}; deleted since: {gone or 'none'}")
    safety = done["safety_checkpoint"]["id"]
    print(f"the state before is checkpoint #{safety}: pm checkpoint restore {safety} --yes")
    return 0


# --- pm metrics -----------------------------------------------------------------------------
def cmd_metrics(args: Args, s: Session) -> int:
    base: dict[str, Any] = {"type": args.type}
    if args.project is not None:
        base["project"] = current.project_ref(s, args.project)
    totals = s.call("metrics.totals", {**base, "by": args.by, "limit": args.top})
    rows = []
    lines: dict[str, Any] = {}
    for total in totals["items"]:
        key = total["key"]
        series_params = dict(base)
        if key is not None and args.by == "agent":
            series_params["agent"] = key
        elif key is not None and args.by == "session":
            series_params["session"] = key
        elif key is not None and args.by == "project":
            series_params["project"] = key
        series = s.call("metrics.series", {**series_params, "limit": args.days})
        lines[str(key)] = series["days"]
        days = [d["sum"] for d in series["days"]]
        rows.append([str(key if key is not None else "—"), f"{total['sum']:,.0f}",
                     str(total["count"]), sparkline(days)])  # fmt: skip
    if args.json:
        output.print_json({"totals": totals, "series": lines})
        return 0
    heading = f"{args.by.upper()}"
    sys.stdout.write(output.table([heading, args.type.upper(), "POINTS",
                                   f"PER DAY (last {args.days} with data)"], rows))  # fmt: skip
    if not rows:
        output.error(f"no {args.type} metrics yet (metrics.add records them)")
    return 0


def command(word: str) -> Command:
    project = Arg(
        "project",
        "--project",
        complete="project",
        help="an id, name or path (default: the project holding this folder)",
    )
    made = {
        "agents": Command(
            "agents",
            cmd_agents,
            [Arg("status", "--status", choices=("idle", "assigned", "working", "paused",
                                                 "error", "stale", "terminated")),
             Arg("limit", "--limit", convert=int, default=100, metavar="N")],
            help="the agents at work, most recently seen first",
        ),
        "checkpoint": Command(
            "checkpoint",
            help="snapshots of a project's plans and tasks: save, list, restore",
            verbs=[
                Command("save", cmd_checkpoint_save,
                        [Arg("name", optional=True), Arg("reason", "--reason"),
                         Arg("agent", "--agent"), project],
                        help="snapshot the project's work now, with its git commit"),
                Command("list", cmd_checkpoint_list,
                        [project, Arg("limit", "--limit", convert=int, default=50, metavar="N")],
                        help="the project's checkpoints, newest first"),
                Command("restore", cmd_checkpoint_restore,
                        [Arg("id", convert=int, metavar="ID"),
                         Arg("yes", "--yes", flag=True, help="confirm")],
                        help="put the work back as it was (a safety checkpoint first)"),
            ],
        ),
        "metrics": Command(
            "metrics",
            cmd_metrics,
            [Arg("type", "--type", default="token_usage"),
             Arg("by", "--by", choices=("agent", "session", "project"), default="agent"),
             Arg("days", "--days", convert=int, default=30, metavar="N"),
             Arg("top", "--top", convert=int, default=10, metavar="N"), project],
            help="token use (or another metric) over time, as a sparkline table",
        ),
    }  # fmt: skip
    return made[word]
