"""`pm jobs`, `pm jobs show ID`, `pm jobs run KIND`, `pm jobs cancel ID`; `pm jobs list` and
`pm jobs update` are generated (client.commands).

`pm jobs run` waits by polling `jobs.get` until the job is finished: it names no event topic
(topics are the daemon's to rename; `pm events --topic` takes whatever it says)."""

from __future__ import annotations

import sys
import time

from client import errors, output
from client.spec import Arg, Command

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from client.args import Args
    from client.session import Session

LIST = "jobs.list"
FINISHED = frozenset({"completed", "failed", "canceled"})


def _seconds(iso: str | None) -> float | None:
    return output.epoch_seconds(iso) if iso else None


def format_duration(seconds: float) -> str:
    """35ms, 4.2s, 12s, 3m05s, 1h02m, 2d03h."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def duration(job: dict[str, Any], now: float | None = None) -> str:
    """How long its latest attempt took (or has been running so far); — if it never ran."""
    started = _seconds(job.get("started_at"))
    if started is None:
        return "—"
    if job["status"] == "running":
        end = now if now is not None else time.time()
        return format_duration(max(0.0, end - started)) + "…"
    finished = _seconds(job.get("finished_at"))
    if finished is None:  # queued again for a retry
        return "—"
    return format_duration(max(0.0, finished - started))


def _one_line(text: str | None, width: int) -> str:
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _list_spec(s: Session) -> dict[str, Any]:
    """`jobs.list` as the daemon describes it: its filters are `pm jobs`' options."""
    entry = s.noun("jobs") or {}
    spec: dict[str, Any] = entry.get("verbs", {}).get("list", {"method": LIST, "params": []})
    return spec


def _list_args(s: Session) -> list[Arg]:
    from client import generated

    return generated.options(_list_spec(s)["params"])


def cmd_jobs(args: Args, s: Session) -> int:
    from client import generated

    page = s.call(LIST, generated.params(_list_spec(s), args, s))
    if args.json:
        output.print_json(page)
        return 0
    names = _project_names(s, page["items"])
    rows = []
    for job in page["items"]:
        status = job["status"]
        if job["attempts"] > 1:
            status += f" ({job['attempts']} tries)"
        rows.append(
            [
                str(job["id"]),
                job["kind"],
                *([names.get(job.get("project_id"), "")] if names else []),
                status,
                output.relative_time(job.get("started_at")),
                duration(job),
                _one_line(job.get("error"), 60),
            ]
        )
    # a PROJECT column once a shown job is one project's (a quality scan of one, a record)
    headers = ["ID", "KIND", *(["PROJECT"] if names else []), "STATUS", "STARTED", "DURATION"]
    headers.append("ERROR")
    sys.stdout.write(output.table(headers, rows))
    shown = len(page["items"])
    if page["total"] > (args.get(generated.dest("offset")) or 0) + shown:
        output.error(f"showing {shown} of {page['total']}; use --limit/--offset for more")
    return 0


def _project_names(s: Session, jobs: list[dict[str, Any]]) -> dict[Any, str]:
    """project_id → the project's name, for the jobs shown (one call per project)."""
    names: dict[Any, str] = {}
    for project_id in {job.get("project_id") for job in jobs} - {None}:
        try:
            names[project_id] = s.call("projects.get", {"project": project_id})["name"]
        except errors.RemoteError:  # forgotten since: its id is all there is
            names[project_id] = f"#{project_id}"
    return names


def render_job(job: dict[str, Any]) -> str:
    def line(label: str, value: Any) -> str:  # a client's prompt or error may hold anything
        return f"{label:<12}{'—' if value in (None, '', {}, []) else output.visible(str(value))}\n"

    progress = job.get("progress")
    out = [
        line("id", job["id"]),
        line("kind", job["kind"]),
        line("source", job["source"]),
        line("status", job["status"]),
        line("attempts", job["attempts"]),
        line("created", job["created_at"]),
        line("started", job.get("started_at")),
        line("finished", job.get("finished_at")),
        line("duration", duration(job)),
        line("project", job.get("project_id")),
        line("session", job.get("session_id")),
        line("api", job.get("api_type")),
        line("model", job.get("model_used")),
        line("metadata", output.compact(job["metadata"], 200) if job["metadata"] else None),
    ]
    if progress:
        pct = progress.get("percentage")
        out.append(line("progress", (f"{pct}% " if pct is not None else "") + progress["message"]))
    if job.get("error"):
        out.append(line("error", job["error"]))
    if job.get("output_path"):
        out.append(line("output", job["output_path"]))
    elif job.get("response"):
        out.append(line("response", _one_line(job["response"], 200)))
    return "".join(out)


def cmd_jobs_show(args: Args, s: Session) -> int:
    output.show(s.call("jobs.get", {"id": args.id}), args.json, render_job)
    return 0


def _describe(job: dict[str, Any]) -> str:
    text = f"job {job['id']} ({job['kind']}) {job['status']}"
    progress = job.get("progress")
    if job["status"] == "running" and progress:
        pct = progress.get("percentage")
        text += f": {progress['message']}" + (f" ({pct}%)" if pct is not None else "")
    elif job["status"] == "queued" and job.get("error"):
        text += f" for a retry after: {_one_line(job['error'], 80)}"
    return text


def wait_for_job(s: Session, job: dict[str, Any]) -> dict[str, Any]:
    """Poll until the job finishes, saying on stderr whenever what it shows changes."""
    shown = _describe(job)
    output.error(shown)
    delay = 0.05
    while job["status"] not in FINISHED:
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
        job = s.call("jobs.get", {"id": job["id"]})
        text = _describe(job)
        if text != shown and job["status"] not in FINISHED:
            output.error(text)
            shown = text
    return job


def cmd_jobs_run(args: Args, s: Session) -> int:
    job = s.call("jobs.run", {"kind": args.kind})
    if args.no_wait:
        if args.json:
            output.print_json(job)
        else:
            print(f"job {job['id']}")
        return 0
    if not args.json:
        print(f"job {job['id']}", flush=True)
    try:
        job = wait_for_job(s, job)
    except KeyboardInterrupt:
        output.error(f"stopped waiting; job {job['id']} goes on (pm jobs cancel {job['id']})")
        return 130
    if args.json:
        output.print_json(job)
    else:
        took = duration(job)
        if job["status"] == "completed":
            print(f"job {job['id']} completed in {took}")
        else:
            tries = f" after {job['attempts']} attempts" if job["attempts"] > 1 else ""
            print(f"job {job['id']} {job['status']}{tries}")
            if job.get("error"):
                output.error(job["error"])
    return 0 if job["status"] == "completed" else errors.EXIT_FAILED


def cmd_jobs_cancel(args: Args, s: Session) -> int:
    job = s.call("jobs.cancel", {"id": args.id})
    if args.json:
        output.print_json(job)
    else:
        print(f"job {job['id']} {job['status']}")
    return 0


def command(word: str) -> Command:
    job = Arg("id", convert=int, metavar="ID")
    return Command(
        "jobs",
        cmd_jobs,
        later=_list_args,  # the filters `jobs.list` takes (status, kind, source, project…)
        help="the daemon's runs and the jobs clients recorded",
        description="Without a verb: the jobs as a person reads them (durations, project "
        "names), filtered as `jobs.list` filters. `pm jobs list` is the generated table.",
        verbs=[
            Command("show", cmd_jobs_show, [job], help="one job in full"),
            Command(
                "run",
                cmd_jobs_run,
                [
                    Arg("kind", help="e.g. quality_scan, maintenance, retention"),
                    Arg("no_wait", "--no-wait", flag=True, help="print the job id and return"),
                ],
                help="run one of the daemon's jobs now and wait for it",
            ),
            Command("cancel", cmd_jobs_cancel, [job], help="stop a queued or running job"),
        ],
    )
