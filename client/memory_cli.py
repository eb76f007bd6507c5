"""`pm note add`, `pm search`, `pm context`, `pm knowledge`, `pm instructions`, `pm brief`,
`pm resume`: the memory, as a person (or an agent's hook) reads and writes it.

A command that works in a project takes `--project` (an id, a name or a path) and otherwise
the project holding the current directory; text someone stored reaches the terminal only
through `output.visible`.
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

KINDS = ("note", "knowledge", "context", "research", "episode", "artifact", "build_script")
# Marks the daemon puts around matches: printable, and rare in notes; made bold on a terminal.
_OPEN, _CLOSE = "\u27e6", "\u27e7"


def _lines(text: str) -> str:
    """Stored text, line by line, each made safe for a terminal."""
    return "\n".join(output.visible(line) for line in text.split("\n"))


def _here(s: Session, text: str | None, *, required: bool) -> int | str | None:
    """The project named, or the one holding the current directory (None when there is none
    and it is not required)."""
    if text is not None or required:
        return current.project_ref(s, text)
    found = current.find_holding(s, current.absolute(current.HERE))
    return int(found["id"]) if found is not None else None


# --- pm note add -------------------------------------------------------------------------------
def _text_from_editor() -> str:
    import subprocess
    import tempfile

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w+", suffix=".md", delete=False) as handle:
        path = handle.name
    try:
        if subprocess.run([*editor.split(), path], check=False).returncode != 0:
            raise errors.ClientError(f"{editor} exited with an error; nothing was saved")
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    finally:
        os.unlink(path)


def cmd_note_add(args: Args, s: Session) -> int:
    if args.text is not None and args.text != "-":
        text = args.text
    elif args.text == "-" or not sys.stdin.isatty():
        text = sys.stdin.read()
    else:
        text = _text_from_editor()
    if not text.strip():
        raise errors.UsageError("the note is empty; nothing was saved")
    title = args.title or text.strip().splitlines()[0].lstrip("# ").strip()[:120]
    params: dict[str, Any] = {"kind": args.kind, "title": title, "content": text,
                              "tags": args.tag}  # fmt: skip
    project = _here(s, args.project, required=False)
    if project is not None:
        params["project"] = project
    if args.agent:
        params["agent"] = args.agent
    made = s.call("documents.add", params)
    if args.json:
        output.print_json(made)
    else:
        print(f"{made['kind']} #{made['id']} saved: {output.visible(made['title'])}")
    return 0


# --- pm search --------------------------------------------------------------------------------
def _marked(snippet: str) -> str:
    shown = output.visible(snippet)
    if output.colour_enabled():
        return shown.replace(_OPEN, "\033[1m").replace(_CLOSE, "\033[0m")
    return shown.replace(_OPEN, "**").replace(_CLOSE, "**")


def cmd_search(args: Args, s: Session) -> int:
    params: dict[str, Any] = {"query": args.query, "limit": args.limit, "offset": args.offset,
                              "marks": [_OPEN, _CLOSE]}  # fmt: skip
    if args.fts:
        params["syntax"] = "fts5"
    if args.kind:
        params["kind"] = args.kind
    if args.tag:
        params["tags"] = args.tag
    if args.project is not None or args.here:
        params["project"] = current.project_ref(s, args.project)
    if args.no_repo:
        params["include_repo"] = False
    page = s.call("documents.search", params)
    if args.json:
        output.print_json(page)
        return 0
    for hit in page["items"]:
        where = f" {hit['path']}" if hit.get("path") else ""
        head = output.paint(f"#{hit['id']} {hit['kind']}{where}", "2")
        print(f"{head}  {output.visible(hit['title'])}")
        print(f"    {_marked(hit['snippet'])}")
    shown = len(page["items"])
    if not shown:
        output.error(f"nothing matches {args.query!r}")
    elif page["total"] > args.offset + shown:
        output.error(f"showing {shown} of {page['total']}; --offset {args.offset + shown} for more")
    return 0


# --- pm context, pm knowledge -----------------------------------------------------------------
def _listing(args: Args, s: Session, kind: str) -> int:
    params: dict[str, Any] = {"kind": kind, "limit": args.limit, "order": "recent"}
    project = _here(s, args.project, required=False)
    if project is not None:
        params["project"] = project
    page = s.call("documents.list", params)
    if args.json:
        output.print_json(page)
        return 0
    rows = [
        [str(d["id"]), d.get("type") or d["metadata"].get("category") or "",
         d["title"], output.relative_time(d["created_at"])]
        for d in page["items"]
    ]  # fmt: skip
    sys.stdout.write(output.table(["ID", "TYPE", "TITLE", "CREATED"], rows, [None, 16, 70]))
    if page["total"] > len(rows):
        output.error(f"showing {len(rows)} of {page['total']}; --limit for more")
    return 0


def cmd_context(args: Args, s: Session) -> int:
    return _listing(args, s, "context")


def cmd_knowledge(args: Args, s: Session) -> int:
    return _listing(args, s, "knowledge")


# --- pm instructions ------------------------------------------------------------------------
def cmd_instructions(args: Args, s: Session) -> int:
    path = current.absolute(args.path or current.HERE)
    result = s.call("instructions.for_path", {"path": path, "content": not args.brief})
    if args.json:
        output.print_json(result)
        return 0
    if not result["items"]:
        output.error(f"no instructions apply to {path}")
    for item in result["items"]:
        print(output.paint(output.visible(item["title"]), "1"), "—", output.visible(item["why"]))
        if item.get("problem"):
            output.error(f"{item['title']}: {item['problem']}")
        if item.get("content"):
            print(_lines(item["content"].rstrip()) + "\n")
    return 0


# --- pm brief, pm resume ----------------------------------------------------------------------
def cmd_brief(args: Args, s: Session) -> int:
    path = current.absolute(args.path or current.HERE)
    params: dict[str, Any] = {"path": path, "max_chars": args.max_chars}
    if args.agent or os.environ.get("PM_AGENT_NAME"):
        params["agent"] = args.agent or os.environ["PM_AGENT_NAME"]
    brief = s.call("context.brief", params)
    if args.json:
        output.print_json(brief)
    else:
        sys.stdout.write(_lines(brief["markdown"]) + "\n")
    return 0


def cmd_resume(args: Args, s: Session) -> int:
    project = current.project_ref(s, args.project)
    found = s.call("continue_points.latest", {"project": project})["continue_point"]
    if args.json:
        output.print_json(found)
        return 0
    if found is None:
        raise errors.ClientError("no continue point in this project yet", kind="not_found")
    where = found.get("file") or ""
    if where and found.get("line"):
        where += f":{found['line']}"
    if found.get("function_name"):
        where += f" ({found['function_name']})"
    print(f"Last: {output.visible(found['last_action'])}")
    if where:
        print(f"Where: {output.visible(where)}")
    who = found.get("agent") or "someone"
    print(f"By: {output.visible(who)}, {output.relative_time(found['created_at'])}")
    if found.get("task_id"):
        print(f"Task: #{found['task_id']}")
    for step in found.get("next_steps") or []:
        print(f"Next: {output.visible(step)}")
    return 0


# --- the commands ---------------------------------------------------------------------------
def _project_option() -> Arg:
    return Arg("project", "--project", complete="project",
               help="an id, name or path (default: the project holding this folder)")  # fmt: skip


def command(word: str) -> Command:
    limit = Arg("limit", "--limit", convert=int, default=20, metavar="N")
    made = {
        "note": Command(
            "note",
            help="add a note (or knowledge, context…) to the memory",
            verbs=[
                Command(
                    "add",
                    cmd_note_add,
                    [
                        Arg("text", optional=True, help="the text; - or a pipe: stdin; "
                            "nothing on a terminal: $EDITOR"),
                        Arg("title", "--title", help="default: the first line"),
                        Arg("kind", "--kind", choices=KINDS, default="note"),
                        Arg("tag", "--tag", repeat=True),
                        Arg("agent", "--agent", help="who wrote it"),
                        _project_option(),
                    ],
                    help="save a note (stdin or editor)",
                )
            ],
        ),
        "search": Command(
            "search",
            cmd_search,
            [
                Arg("query", help="plain words (quote several); --fts for FTS5 syntax"),
                Arg("kind", "--kind", choices=(*KINDS, "instruction", "skill", "agent",
                                                "code_chunk", "stage", "screenshot")),
                Arg("tag", "--tag", repeat=True, help="only documents with every tag given"),
                Arg("here", "--here", flag=True, help="only the project holding this folder"),
                _project_option(),
                Arg("fts", "--fts", flag=True, help="the query is FTS5 syntax"),
                Arg("no_repo", "--no-repo", flag=True, help="leave out files read from repos"),
                limit,
                Arg("offset", "--offset", convert=int, default=0, metavar="N"),
            ],
            help="search every note and document, best first",
        ),
        "context": Command("context", cmd_context, [_project_option(), limit],
                           help="the project's context items, newest first"),
        "knowledge": Command("knowledge", cmd_knowledge, [_project_option(), limit],
                             help="the project's knowledge, newest first"),
        "instructions": Command(
            "instructions",
            cmd_instructions,
            [Arg("path", optional=True, help="a file or folder (default: here)"),
             Arg("brief", "--brief", flag=True, help="why each applies, not its text")],
            help="the instructions that apply to a path, most specific first",
        ),
        "brief": Command(
            "brief",
            cmd_brief,
            [Arg("path", optional=True, help="default: here"),
             Arg("agent", "--agent", help="whose claims (default: $PM_AGENT_NAME)"),
             Arg("max_chars", "--max-chars", convert=int, default=8000, metavar="N")],
            help="what to know before starting here, as Markdown (a session-start hook)",
        ),
        "resume": Command("resume", cmd_resume, [_project_option()],
                          help="where work stopped in this project, and what is next"),
    }  # fmt: skip
    return made[word]
