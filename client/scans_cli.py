"""`pm scan [PROJECT]` (read the Dev folder now) and `pm quality scan [PROJECT]` (assess now):
a progress bar on stderr, then one line of counts and the problems met."""

from __future__ import annotations

from client import current, output
from client.spec import Arg, Command

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from client.args import Args
    from client.session import Session

_SHOWN_ERRORS = 10


def _summary(summary: dict[str, Any], counts: tuple[str, ...], command: str) -> None:
    line = " · ".join(f"{key} {summary[key]}" for key in counts)
    problems = summary["errors"]
    print(f"{line} · errors {len(problems)}  ({summary['duration_ms'] / 1000:.2f} s)")
    for issue in problems[:_SHOWN_ERRORS]:
        output.error(f"{issue['path'] or 'scan'}: {issue['error']}")
    if len(problems) > _SHOWN_ERRORS:
        more = len(problems) - _SHOWN_ERRORS
        output.error(f"… and {more} more (pm --json {command} lists them all)")


def cmd_scan(args: Args, s: Session) -> int:
    params: dict[str, Any] = {}
    if args.project is not None:
        # A folder no project holds yet goes as it is: the daemon reads it if under a root.
        params["project"] = current.project_ref(s, args.project, or_path=True)
    summary = s.call_with_progress("projects.scan", params)
    if args.json:
        output.print_json(summary)
        return 0
    counts = ("found", "new", "updated", "unchanged", "missing", "moved", "returned")
    _summary(summary, counts, "scan")
    return 0


def cmd_quality_scan(args: Args, s: Session) -> int:
    params: dict[str, Any] = {}
    if args.project is not None:
        params["project"] = current.project_ref(s, args.project)
    summary = s.call_with_progress("quality.scan", params)
    if args.json:
        output.print_json(summary)
        return 0
    _summary(summary, ("projects", "assessed", "refreshed", "unchanged"), "quality scan")
    return 0


def command(word: str) -> Command:
    return Command(
        "scan",
        cmd_scan,
        [
            Arg(
                "project",
                optional=True,
                metavar="PROJECT",
                complete="project",
                help="a name, an id or a path (default: everything)",
            )
        ],
        help="read the Dev folder (or one project) now",
    )


def quality_scan() -> Command:
    """`pm quality scan [PROJECT]` (a verb of `pm quality`: client.quality_cli)."""
    return Command(
        "scan",
        cmd_quality_scan,
        [
            Arg(
                "project",
                optional=True,
                metavar="PROJECT",
                complete="project",
                help="a name, an id or a path (default: every one)",
            )
        ],
        help="assess every project's quality now (or one: a name, an id, a path, .)",
    )
