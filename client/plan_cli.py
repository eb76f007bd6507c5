"""`pm plan new|show|list|archive|unarchive|export` (the rest of plans is the generated
`pm plan update|remove`), and `pm session start|end` (with the generated `list|show`).

`pm plan show` draws the plan as a tree — phases in order, steps in order, subtasks under their
step — with a mark for each status and, under what waits, what it waits for. `pm plan export`
writes the portable document (`plans.export`); `pm plan new --from FILE` makes a fresh plan from
one (the daemon checks it whole; a file larger than the daemon would take is refused here).
"""

from __future__ import annotations

import sys

from client import current, errors, fastjson, output
from client.spec import Arg, Command
from client.work_cli import MARKS, project_here

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from client.args import Args
    from client.session import Session

MAX_FILE = 16 * 1024 * 1024  # the daemon's own message limit by default


# --- the tree --------------------------------------------------------------------------------
def _names(plan: dict[str, Any]) -> dict[tuple[str, int], str]:
    names = {("plan", plan["id"]): f"plan {plan['id']} ({plan['title']})"}
    for phase in plan["phases"]:
        names[("phase", phase["id"])] = f"phase {phase['position']} ({phase['title']})"
        for task in phase["tasks"]:
            names[("task", task["id"])] = f"{task['id']} ({task['title']})"
    return names


def _waits(plan: dict[str, Any]) -> dict[tuple[str, int], list[str]]:
    """What each node waits for (its live `blocks` dependencies), in words."""
    names = _names(plan)
    out: dict[tuple[str, int], list[str]] = {}
    for dep in plan["dependencies"]:
        if dep["kind"] != "blocks" or dep["archived"]:
            continue
        target = (dep["to_type"], dep["to_id"])
        words = names.get(target, f"{dep['to_type']} {dep['to_id']} (another plan)")
        out.setdefault((dep["from_type"], dep["from_id"]), []).append(words)
    return out


def tree(plan: dict[str, Any]) -> str:
    waits = _waits(plan)
    lines = [f"plan {plan['id']}: {plan['title']}  [{plan['status']}]"
             + ("  (archived)" if plan["archived"] else "")]  # fmt: skip
    lines += [f"  waits for {w}" for w in waits.get(("plan", plan["id"]), [])]
    phases = plan["phases"]
    for n, phase in enumerate(phases):
        last_phase = n == len(phases) - 1
        branch, stem = ("└─ ", "   ") if last_phase else ("├─ ", "│  ")
        mark = MARKS.get(phase["status"], "?")
        kind = f" {phase['kind']}" if phase.get("kind") else ""
        lines.append(f"{branch}{mark} phase {phase['position']}{kind}: {phase['title']}")
        lines += [f"{stem}   waits for {w}" for w in waits.get(("phase", phase["id"]), [])]
        lines += _branch(phase["tasks"], stem, waits)
    return "".join(output.visible(line) + "\n" for line in lines)


def _branch(
    tasks: list[dict[str, Any]], stem: str, waits: dict[tuple[str, int], list[str]]
) -> list[str]:
    """One phase's steps, each with its subtasks under it."""
    children: dict[Any, list[dict[str, Any]]] = {}
    ids = {t["id"] for t in tasks}
    for task in tasks:
        children.setdefault(task["parent_id"] if task["parent_id"] in ids else None, []).append(
            task
        )
    lines: list[str] = []

    def walk(parent: Any, prefix: str) -> None:
        below = children.get(parent, [])
        for i, task in enumerate(below):
            last = i == len(below) - 1
            notes = [str(task["claimed_by"])] if task.get("claimed_by") else []
            if task["blocked"]:
                notes.append("waiting")
            tail = f"  ({', '.join(notes)})" if notes else ""
            mark = MARKS.get(task["status"], "?")
            lines.append(
                f"{prefix}{'└─ ' if last else '├─ '}{mark} {task['id']} {task['title']}{tail}"
            )
            inner = prefix + ("   " if last else "│  ")
            lines.extend(f"{inner}   waits for {w}" for w in waits.get(("task", task["id"]), []))
            walk(task["id"], inner)

    walk(None, stem)
    return lines


# --- pm plan ---------------------------------------------------------------------------------
def cmd_show(args: Args, s: Session) -> int:
    plan = s.call("plans.get", {"id": args.id})
    if args.json:
        output.print_json(plan)
    else:
        sys.stdout.write(tree(plan))
    return 0


def cmd_list(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"order": "recent", "limit": args.limit}
    if not args.everywhere:
        params["project"] = project_here(args, s)
    if args.archived:
        params["include_archived"] = True
    page = s.call("plans.list", params)
    if args.json:
        output.print_json(page)
        return 0
    rows = [[str(p["id"]), p["status"] + (" (archived)" if p["archived"] else ""), p["kind"],
             p["title"], output.relative_time(p["updated_at"])] for p in page["items"]]  # fmt: skip
    sys.stdout.write(output.table(["ID", "STATUS", "KIND", "TITLE", "UPDATED"], rows,
                                  [None, 22, None, 60, None]))  # fmt: skip
    return 0


def read_document(path: str) -> Any:
    """The portable file: bounded, JSON; what is in it is the daemon's to check."""
    try:
        with open(current.absolute(path), "rb") as f:
            data = f.read(MAX_FILE + 1)
    except OSError as e:
        raise errors.ClientError(f"cannot read {path}: {e.strerror}", kind="not_found") from None
    if len(data) > MAX_FILE:
        raise errors.ClientError(f"{path} is larger than {MAX_FILE} bytes", kind="too_large")
    try:
        return fastjson.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise errors.ClientError(f"{path} is not a JSON plan file: {e}", kind="invalid") from None


def cmd_new(args: Args, s: Session) -> int:
    project = project_here(args, s)
    if args.source is not None:
        document = read_document(args.source)
        if args.title and isinstance(document, dict):
            document["title"] = args.title
        plan = s.call("plans.import", {"project": project, "document": document})
    else:
        if not args.title:
            raise errors.UsageError("a plan needs a TITLE (or --from FILE)")
        plan = s.call("plans.add", {"project": project, "title": args.title})
        for title in args.phase:
            s.call("phases.add", {"plan": plan["id"], "title": title})
        plan = s.call("plans.get", {"id": plan["id"]})
    if args.json:
        output.print_json(plan)
    else:
        sys.stdout.write(tree(plan))
    return 0


def cmd_archive(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"id": args.id}
    if args.force:
        params["force"] = True
    return _archived(s.call("plans.archive", params), args)


def cmd_unarchive(args: Args, s: Session) -> int:
    return _archived(s.call("plans.unarchive", {"id": args.id}), args)


def _archived(plan: dict[str, Any], args: Args) -> int:
    if args.json:
        output.print_json(plan)
    else:
        state = "archived" if plan["archived"] else "back"
        print(output.visible(f"plan {plan['id']} ({plan['title']}) {state}"))
    return 0


def cmd_export(args: Args, s: Session) -> int:
    document = s.call("plans.export", {"id": args.id})
    text = output.json_text(document, pretty=True) + "\n"
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    path = current.absolute(args.output)
    try:
        with open(path, "x", encoding="utf-8") as f:  # never over a file already there
            f.write(text)
    except FileExistsError:
        raise errors.ClientError(f"{path} exists; choose another name", kind="conflict") from None
    except OSError as e:
        raise errors.ClientError(f"cannot write {path}: {e.strerror}") from None
    output.error(f"wrote {path}")
    return 0


def plan() -> Command:
    project = Arg("project", "--project", help="id, name or path (default: here)",
                  complete="project")  # fmt: skip
    plan_id = Arg("id", convert=int, help="a plan's id")
    return Command("plan", help="plans: make, draw, list, archive, export", verbs=[
        Command("new", cmd_new, [
            Arg("title", optional=True), project,
            Arg("phase", "--phase", repeat=True, help="a phase (repeat, in order)"),
            Arg("source", "--from", metavar="FILE", help="a file `pm plan export` wrote"),
        ], help="a new plan here (or from a portable file)"),
        Command("show", cmd_show, [plan_id], help="the plan as a tree, what waits on what"),
        Command("list", cmd_list, [
            project, Arg("everywhere", "--everywhere", flag=True, help="every project's"),
            Arg("archived", "--archived", flag=True, help="archived ones too"),
            Arg("limit", "--limit", convert=int, default=100, metavar="N"),
        ], help="the plans here, latest first"),
        Command("archive", cmd_archive, [
            plan_id, Arg("force", "--force", flag=True, help="release claimed steps"),
        ], help="archive it with everything in it"),
        Command("unarchive", cmd_unarchive, [plan_id], help="bring it back as it was"),
        Command("export", cmd_export, [
            plan_id, Arg("output", "-o", "--output", metavar="FILE", help="default: stdout"),
        ], help="write it as a portable file"),
    ])  # fmt: skip


# --- pm session --------------------------------------------------------------------------------
def cmd_session_start(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"project": project_here(args, s), "kind": args.kind,
                              "goals": args.goal}  # fmt: skip
    for name in ("agent", "plan", "task_description"):
        if args.get(name) is not None:
            params[name] = args.get(name)
    result = s.call("sessions.start", params)
    if args.json:
        output.print_json(result)
    else:
        print(f"session {result['id']} started")
    return 0


def cmd_session_end(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"id": args.id, "accomplishments": args.done,
                              "blockers": args.blocker}  # fmt: skip
    if args.tokens is not None:
        params["tokens_used"] = args.tokens
    if args.summary is not None:
        params["summary"] = args.summary
    result = s.call("sessions.end", params)
    if args.json:
        output.print_json(result)
    else:
        print(f"session {result['id']} ended after {result['duration_minutes']} min")
    return 0


def session() -> Command:
    return Command("session", help="work sessions: start with goals, end with what came of it",
                   verbs=[
        Command("start", cmd_session_start, [
            Arg("project", "--project", help="default: here", complete="project"),
            Arg("kind", "--kind", default="development",
                choices=["development", "agent", "interview", "planning", "execution"]),
            Arg("goal", "--goal", repeat=True, help="a goal (repeat)"),
            Arg("agent", "--agent"), Arg("plan", "--plan", convert=int),
            Arg("task_description", "--task", help="what it is about"),
        ], help="start a session"),
        Command("end", cmd_session_end, [
            Arg("id", convert=int),
            Arg("done", "--done", repeat=True, help="an accomplishment (repeat)"),
            Arg("blocker", "--blocker", repeat=True, help="a blocker (repeat)"),
            Arg("tokens", "--tokens", convert=int, metavar="N"),
            Arg("summary", "--summary"),
        ], help="end it: accomplishments, blockers, tokens"),
    ])  # fmt: skip


def command(word: str) -> Command:
    return plan() if word == "plan" else session()
