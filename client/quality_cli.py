"""`pm quality` (projects ranked, with the trend) and `pm quality NAME` (why that score)."""

from __future__ import annotations

import sys

from client import current, output
from client.spec import Arg, Command

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from client.args import Args
    from client.session import Session

_BARS = "▁▂▃▄▅▆▇█"
_COMPONENTS = [
    ("tests", "tests_component", "T"),
    ("ci", "ci_component", "C"),
    ("docs", "docs_component", "D"),
    ("lint", "lint_component", "L"),
    ("maintenance", "maintenance_component", "M"),
]


def sparkline(scores: list[int | None]) -> str:
    """Oldest to newest, one block per assessment (a gap where there was no score)."""
    return "".join(" " if s is None else _BARS[min(7, max(0, s * 8 // 101))] for s in scores)


def _trend(delta: int | None) -> str:
    if delta is None:
        return "—"
    if delta == 0:
        return "="
    return f"+{delta}" if delta > 0 else str(delta)


def cmd_quality(args: Args, s: Session) -> int:
    if args.name:
        return _one(args, s)
    page = s.call("quality.list", {"limit": args.limit})
    if args.json:
        output.print_json(page)
        return 0
    rows = [
        [
            p["name"],
            "n/a" if p["quality_score"] is None else str(p["quality_score"]),
            _trend(p["trend"]),
            output.relative_time(p["calculated_at"]),
        ]
        for p in page["items"]
    ]
    sys.stdout.write(output.table(["NAME", "SCORE", "WEEK", "ASSESSED"], rows))
    if not rows:
        output.error("no assessments yet; `pm call quality.scan` runs one now")
    return 0


def _one(args: Args, s: Session) -> int:
    ref = current.project_ref(s, args.name)
    view = s.call("quality.get", {"project": ref})
    history = s.call("quality.history", {"project": ref, "limit": 30})
    if args.json:
        output.print_json({**view, "history": history["items"]})
        return 0
    sys.stdout.write(render(view, history["items"]))
    return 0


def render(view: dict[str, Any], history: list[dict[str, Any]]) -> str:
    project, q = view["project"], view["latest"]
    if q is None:
        return output.visible(f"{project['name']}: not assessed yet (pm call quality.scan)") + "\n"
    lines = [
        f"{project['name']}  quality {_score(q)}  (formula v{q['metrics_version']}, "
        f"{output.relative_time(q['calculated_at'])})",
        "",
    ]
    for label, column, letter in _COMPONENTS:
        value = q[column]
        shown = "not measurable" if value is None else f"{value:5.1f}"
        lines.append(f"  {letter} {label:<12} {shown}")
    if q["coverage_source"]:
        stale = "  (stale: older than the last work by 30+ days)" if q["coverage_stale"] else ""
        lines += [
            "",
            f"coverage {q['test_coverage']}% from {q['coverage_path']} "
            f"({q['coverage_source']}){stale}",
        ]
    found = q["detected"]
    facts = [
        ("CI", found.get("ci")),
        ("linters", found.get("linters")),
        ("formatters", found.get("formatters")),
        ("type checkers", found.get("type_checkers")),
        ("hooks", found.get("hooks")),
        ("test runners", found.get("test_runners")),
        ("docs", found.get("docs")),
        ("CI runs", found.get("ci_checks")),
    ]
    lines += ["", "found"]
    for label, items in facts:
        lines.append(f"  {label:<14} {', '.join(items) if items else '—'}")
    lines.append(
        f"  {'tests':<14} {found.get('test_files', 0)} test files, "
        f"{found.get('source_files', 0)} source files"
    )
    if q["gains"]:
        lines += ["", "to gain points"]
        for gain in q["gains"]:
            lines.append(f"  +{gain['points']:g} {gain['component']}: {gain['hint']}")
    scores = [h["quality_score"] for h in reversed(history)]
    if len(scores) > 1:
        lines += ["", f"history  {sparkline(scores)}  ({len(scores)} assessments)"]
    for problem in found.get("problems") or []:
        lines += ["", f"problem: {problem}"]
    # names, paths and problems come from the project's files: shown, never acted on
    return "".join(output.visible(line) + "\n" for line in lines)


def _score(q: dict[str, Any]) -> str:
    """The score, or n/a and why: the assessment failed, or there was too little to measure."""
    if q["quality_score"] is not None:
        return str(q["quality_score"])
    if q.get("error"):
        return f"n/a (the assessment failed: {q['error']})"
    why = (q.get("detected") or {}).get("unscored")
    return f"n/a ({why})" if why else "n/a"


def command(word: str) -> Command:
    from client.scans_cli import quality_scan

    return Command(
        "quality",
        cmd_quality,
        [
            Arg(
                "name",
                optional=True,
                metavar="PROJECT",
                complete="project",
                help="a project (name, path, . or id)",
            ),
            Arg("limit", "--limit", convert=int, default=100, metavar="N"),
        ],
        help="projects ranked by quality, or why one scores as it does",
        verbs=[quality_scan()],
    )
