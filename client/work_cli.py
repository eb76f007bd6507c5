"""`pm todo add|list|start|done`, `pm ready`, `pm next`, `pm task claim|done|release|heartbeat|
move|block`: the work shortcuts a person and an agent type most. The rest of tasks is the
generated `pm task list|show|add|update|remove` (client.generated, the `tasks` noun).

A project is the one holding the current directory unless `--project` names one (id, name,
path, `.`). The agent a claim or a completion is for is `--agent`, else $PM_AGENT, else
the user's login name. ($PM_AGENT, not PM_AGENT_*: the daemon warns of an unknown PM_AGENT_*
variable in the environment it is started with.)
"""

from __future__ import annotations

import os

from client import current, errors, output
from client.spec import Arg, Command

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from client.args import Args
    from client.session import Session

OPEN = ["pending", "in_progress", "in_review", "blocked"]
MARKS = {
    "pending": "○", "in_progress": "▶", "in_review": "◐", "blocked": "■", "completed": "✓",
    "failed": "✗", "cancelled": "⊘",
}  # fmt: skip


def agent(args: Args) -> str:
    given = args.get("agent")
    return str(given or os.environ.get("PM_AGENT") or os.environ.get("USER") or "user")


def project_here(args: Args, s: Session) -> int | str:
    return current.project_ref(s, args.get("project"))


def task_line(task: dict[str, Any]) -> str:
    """`  12 ▶ title  (p2, ann, waits)` — what a person needs to pick the next thing."""
    notes = [f"p{task['priority']}"]
    if task.get("claimed_by"):
        notes.append(str(task["claimed_by"]))
    if task.get("blocked"):
        notes.append("waits on a dependency")
    if task.get("open_subtasks"):
        notes.append(f"{task['open_subtasks']} open subtasks")
    if task.get("due_at"):
        notes.append("due " + output.relative_time(task["due_at"]))
    if "urgency" in task:
        notes.append(f"urgency {task['urgency']:.1f}")
    mark = MARKS.get(task["status"], "?")
    return output.visible(f"{task['id']:>5} {mark} {task['title']}  ({', '.join(notes)})")


def print_tasks(page: dict[str, Any], args: Args, empty: str) -> None:
    if args.json:
        output.print_json(page)
        return
    for task in page["items"]:
        print(task_line(task))
    if not page["items"]:
        output.error(empty)
    elif page.get("total", 0) > len(page["items"]):
        output.error(f"showing {len(page['items'])} of {page['total']}")


def print_task(result: Any, args: Args) -> None:
    if args.json:
        output.print_json(result)
    elif isinstance(result, dict) and "title" in result:
        print(task_line(result))


# --- pm todo ---------------------------------------------------------------------------------
def cmd_todo_add(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"project": project_here(args, s), "title": args.title}
    for name in ("priority", "active_form", "due_at"):
        if args.get(name) is not None:
            params[name] = args.get(name)
    print_task(s.call("tasks.add", params), args)
    return 0


def cmd_todo_list(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"project": project_here(args, s), "todo": True,
                              "order": "priority", "limit": args.limit}  # fmt: skip
    if not args.all:
        params["status"] = OPEN
    print_tasks(s.call("tasks.list", params), args, "no open todos here")
    return 0


def cmd_todo_start(args: Args, s: Session) -> int:
    print_task(s.call("tasks.update", {"id": args.id, "status": "in_progress"}), args)
    return 0


def cmd_done(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"id": args.id, "agent": agent(args)}
    if args.get("next"):
        params["next"] = True
    if args.get("force"):
        params["force"] = True
    result = s.call("tasks.complete", params)
    if args.json:
        output.print_json(result)
        return 0
    print(task_line(result["completed"]))
    for task in result["unblocked"]:
        print(output.visible(f"  unblocked {task['id']}: {task['title']}"))
    if result.get("next"):
        print("next, claimed until " + str(result["lease_until"]) + ":")
        print(task_line(result["next"]))
    return 0


# --- pm ready, pm next -----------------------------------------------------------------------
def cmd_ready(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.project is not None:
        params["project"] = current.project_ref(s, args.project)
    print_tasks(s.call("tasks.ready", params), args, "nothing is ready")
    return 0


def current_plan(args: Args, s: Session) -> int:
    """`--plan`, else the most recently changed active plan of the project here."""
    if args.get("plan") is not None:
        return int(args.plan)
    page = s.call("plans.list", {"project": project_here(args, s), "status": ["active"],
                                 "order": "recent", "limit": 1})  # fmt: skip
    if not page["items"]:
        raise errors.ClientError("no active plan here: give --plan ID", kind="not_found")
    return int(page["items"][0]["id"])


def cmd_next(args: Args, s: Session) -> int:
    plan = current_plan(args, s)
    result = s.call("tasks.next", {"plan": plan})
    if args.json:
        output.print_json(result)
    elif result["task"] is None:
        output.error(f"nothing is ready in plan {plan}")
    else:
        print(task_line(result["task"]))
    return 0


# --- pm task ---------------------------------------------------------------------------------
def cmd_claim(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"agent": agent(args)}
    if args.id is not None:
        params["id"] = args.id
    elif args.plan is not None:
        params["plan"] = args.plan
    elif args.anywhere is False:
        params["project"] = project_here(args, s)
    if args.lease is not None:
        params["lease_s"] = args.lease
    result = s.call("tasks.claim", params)
    if args.json:
        output.print_json(result)
    elif result["task"] is None:
        output.error("nothing is ready to claim")
    else:
        print(task_line(result["task"]) + f"  claimed until {result['lease_until']}")
    return 0


def cmd_release(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"id": args.id, "agent": agent(args)}
    if args.force:
        params["force"] = True
    print_task(s.call("tasks.release", params), args)
    return 0


def cmd_heartbeat(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"id": args.id, "agent": agent(args)}
    if args.lease is not None:
        params["lease_s"] = args.lease
    result = s.call("tasks.heartbeat", params)
    if args.json:
        output.print_json(result)
    else:
        print(f"held until {result['lease_until']}")
    return 0


def cmd_move(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"id": args.id}
    for name in ("phase", "parent", "position"):
        if args.get(name) is not None:
            params[name] = args.get(name)
    print_task(s.call("tasks.move", params), args)
    return 0


def node(text: str) -> tuple[str, int]:
    """`task:12`, `phase:3`, `plan:7`, or a bare id (a task)."""
    kind, _, number = text.rpartition(":")
    kind = kind or "task"
    if kind not in ("task", "phase", "plan") or not number.isdigit():
        raise ValueError("give task:ID, phase:ID, plan:ID or a task's id")
    return kind, int(number)


def cmd_block(args: Args, s: Session) -> int:
    """`pm task block 12 --on 9`: task 12 waits for task 9 (or a phase or plan)."""
    waiting, on = node(args.waiting), args.on
    params = {"from_type": waiting[0], "from_id": waiting[1], "to_type": on[0], "to_id": on[1],
              "kind": args.kind}  # fmt: skip
    result = s.call("deps.add", params)
    if args.json:
        output.print_json(result)
    else:
        print(output.visible(f"{waiting[0]} {waiting[1]} {args.kind} on {on[0]} {on[1]}"
                             f" (dependency {result['id']})"))  # fmt: skip
    return 0


# --- the commands ----------------------------------------------------------------------------
def _project() -> Arg:
    return Arg("project", "--project", help="id, name or path (default: here)", complete="project")


def _agent() -> Arg:
    return Arg("agent", "--agent", help="who (default: $PM_AGENT, else your login)")


def _id(name: str = "id") -> Arg:
    return Arg(name, convert=int, help="a task's id")


def _done() -> Command:
    return Command("done", cmd_done, [
        _id(), _agent(),
        Arg("next", "--next", flag=True, help="claim the next step for the same agent"),
        Arg("force", "--force", flag=True, help="even if another agent holds it"),
    ], help="complete it (who, when, the project's branch and HEAD)")  # fmt: skip


def _lease() -> Arg:
    return Arg("lease", "--lease", convert=int, metavar="S", help="lease seconds")


def todo() -> Command:
    return Command("todo", help="the todos of the project here", verbs=[
        Command("add", cmd_todo_add, [
            Arg("title"), _project(),
            Arg("priority", "--priority", convert=int, metavar="N", help="1 (highest) to 9"),
            Arg("active_form", "--active-form", help="how it reads while in progress"),
            Arg("due_at", "--due", help="ISO 8601 time with a timezone"),
        ], help="add a todo"),
        Command("list", cmd_todo_list, [
            _project(), Arg("all", "--all", flag=True, help="done and cancelled ones too"),
            Arg("limit", "--limit", convert=int, default=100, metavar="N"),
        ], help="the open todos, by priority"),
        Command("start", cmd_todo_start, [_id()], help="mark it in progress"),
        _done(),
    ])  # fmt: skip


def task() -> Command:
    return Command("task", help="claim, complete, release, move and link tasks", verbs=[
        Command("claim", cmd_claim, [
            Arg("id", convert=int, optional=True, help="this task (default: the next ready)"),
            Arg("plan", "--plan", convert=int, help="the next step of this plan"),
            _project(), Arg("anywhere", "--anywhere", flag=True, help="in any project"),
            _agent(), _lease(),
        ], help="claim a task, or the next ready one (here, in a plan, anywhere)"),
        _done(),
        Command("release", cmd_release, [
            _id(), _agent(), Arg("force", "--force", flag=True, help="even if not yours"),
        ], help="hand a claimed task back"),
        Command("heartbeat", cmd_heartbeat, [_id(), _agent(), _lease()],
                help="renew your lease"),
        Command("move", cmd_move, [
            _id(), Arg("phase", "--phase", convert=int, group="to"),
            Arg("parent", "--parent", convert=int, group="to"),
            Arg("position", "--position", convert=int, metavar="N", help="0-based"),
        ], help="to another position, phase or parent"),
        Command("block", cmd_block, [
            Arg("waiting", help="what waits (a task id, or phase:ID, plan:ID)"),
            Arg("on", "--on", convert=node, required=True, metavar="TYPE:ID",
                help="what it waits for"),
            Arg("kind", "--kind", default="blocks",
                choices=["blocks", "related", "discovered_from", "duplicates"]),
        ], help="make something wait for something else (a dependency)"),
    ])  # fmt: skip


def command(word: str) -> Command:
    if word == "todo":
        return todo()
    if word == "task":
        return task()
    if word == "ready":
        return Command("ready", cmd_ready, [
            Arg("project", "--project", help="only this project (id, name, path, .)",
                complete="project"),
            Arg("limit", "--limit", convert=int, default=20, metavar="N"),
        ], help="ready work across projects, best first")  # fmt: skip
    if word == "next":
        return Command("next", cmd_next, [
            Arg("plan", "--plan", convert=int, help="default: the active plan here"),
            _project(),
        ], help="the next step of the current plan")  # fmt: skip
    raise errors.UsageError(f"unknown command {word!r}")
