"""context.brief: what an agent starting work somewhere needs to know, in one call, within a
size budget.

For a project (or any path inside one): the agent's own claims, the latest continue point, the
instructions that apply to the path (most specific first), the top ready tasks, the last
session's summary, the skills that fit, and the recent decisions and notes. The short
sections are laid out first and keep their place; the instructions' text gets what is left of
`max_chars`, most specific first, cut at a line end with a marker; when even the short
sections do not fit, the least useful go first (notes, then skills, …). The Markdown (for a
session-start hook, `pm brief`) is never longer than `max_chars`; the structured fields hold
exactly what the Markdown shows.
"""

from __future__ import annotations

import sqlite3
from typing import Annotated

import msgspec

from daemon.domain.app import App
from daemon.domain.continue_points import ContinuePoint, latest_where, newest
from daemon.domain.documents import instructions, skills
from daemon.domain.documents.instructions import Applicable
from daemon.domain.documents.model import DOCUMENTS, Document
from daemon.domain.documents.skills import MatchParams, SkillMatch
from daemon.domain.projects.ref import ProjectRef, resolve
from daemon.domain.work import ready
from daemon.domain.work.settings import Urgency
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidParams
from daemon.rpc.registry import Methods, Params
from daemon.store.clock import utc_now
from daemon.store.table import Where

methods = Methods()

LINE_MAX = 300  # one task, note or skill line
READY_MAX, NOTES_MAX, SKILLS_MAX = 5, 5, 3
_CUT = "\n… (cut to fit the brief; documents.get {id} has it all)"


class BriefParams(Params, frozen=True):
    project: ProjectRef | None = None
    path: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)] | None = None
    agent: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    max_chars: Annotated[int, msgspec.Meta(ge=200, le=200_000)] = 8000


class TaskLine(msgspec.Struct, kw_only=True):
    id: int
    title: str
    status: str
    priority: int
    plan_id: int | None
    lease_until: str | None


class SessionLine(msgspec.Struct, kw_only=True):
    id: int
    kind: str
    agent: str | None
    started_at: str
    ended_at: str | None
    summary: str


class NoteLine(msgspec.Struct, kw_only=True):
    id: int
    kind: str
    type: str | None
    title: str
    created_at: str


class ProjectLine(msgspec.Struct, kw_only=True):
    id: int
    name: str
    path: str


class Brief(msgspec.Struct, kw_only=True):
    project: ProjectLine | None
    relative_path: str | None
    claims: list[TaskLine]
    continue_point: ContinuePoint | None
    instructions: list[Applicable]  # content cut to fit, most specific first
    ready: list[TaskLine]
    session: SessionLine | None
    skills: list[SkillMatch]
    notes: list[NoteLine]
    omitted: dict[str, int]  # items left out (or cut) to stay within max_chars
    markdown: str  # the same, for a person or a hook; at most max_chars


# --- reading (one reader call) -------------------------------------------------------------------
_TASK = "SELECT id, title, status, priority, plan_id, lease_until FROM tasks"


def _claims(conn: sqlite3.Connection, agent: str) -> list[TaskLine]:
    rows = conn.execute(
        f"{_TASK} WHERE claimed_by = ? AND archived = 0 ORDER BY lease_until", (agent,)
    ).fetchall()
    return [TaskLine(id=r[0], title=r[1], status=r[2], priority=r[3], plan_id=r[4],
                     lease_until=r[5]) for r in rows]  # fmt: skip


def _ready(conn: sqlite3.Connection, weights: Urgency, project: int, now: str) -> list[TaskLine]:
    """The top ready work of the project, as tasks.ready ranks it."""
    items, _total = ready.ready_page(conn, weights, now, project, READY_MAX)
    return [TaskLine(id=t.id, title=t.title, status=t.status, priority=t.priority,
                     plan_id=t.plan_id, lease_until=t.lease_until) for t in items]  # fmt: skip


def _session(conn: sqlite3.Connection, project: int) -> SessionLine | None:
    row = conn.execute(
        "SELECT id, kind, agent, started_at, ended_at, summary FROM sessions "
        "WHERE project_id = ? AND summary IS NOT NULL AND summary != '' AND archived = 0 "
        "ORDER BY started_at DESC, id DESC LIMIT 1",
        (project,),
    ).fetchone()
    if row is None:
        return None
    return SessionLine(id=row[0], kind=row[1], agent=row[2], started_at=row[3], ended_at=row[4],
                       summary=row[5])  # fmt: skip


def _notes(conn: sqlite3.Connection, project: int) -> list[NoteLine]:
    where = (
        Where(DOCUMENTS).eq("project_id", project).eq("origin", "stored").eq("archived", False)
        .sql("(t.kind IN ('note', 'knowledge', 'context', 'research') "
             "OR (t.kind = 'episode' AND t.type = 'decision'))")
    )  # fmt: skip
    docs = DOCUMENTS.rows(conn, where, "recent", limit=NOTES_MAX, budget=False)
    return [NoteLine(id=d.id, kind=d.kind, type=d.type, title=d.title, created_at=d.created_at)
            for d in docs]  # fmt: skip


class _Read(msgspec.Struct, kw_only=True):
    project_id: int | None
    relative_path: str | None
    instructions: list[Document]
    skills: list[Document]
    claims: list[TaskLine]
    point: ContinuePoint | None
    ready: list[TaskLine]
    session: SessionLine | None
    notes: list[NoteLine]
    project: ProjectLine | None
    language: str | None  # the project's main language (most bytes)


def _read(
    conn: sqlite3.Connection, path: str, agent: str | None, weights: Urgency, now: str
) -> _Read:
    """Everything the brief shows, in one read (one trip to a reader thread)."""
    project, rel, docs = instructions.lookup(conn, path)
    row = conn.execute(
        "SELECT id, name, path, (SELECT j.key FROM json_each(languages) AS j "
        "ORDER BY j.value DESC LIMIT 1) FROM projects WHERE id = ?",
        (project,),
    ).fetchone()
    return _Read(
        project_id=project,
        relative_path=rel,
        instructions=docs,
        skills=skills.skill_docs(conn, project) if project else [],
        claims=_claims(conn, agent) if agent else [],
        point=newest(conn, latest_where(project, None, None)) if project else None,
        ready=_ready(conn, weights, project, now) if project else [],
        session=_session(conn, project) if project else None,
        notes=_notes(conn, project) if project else [],
        project=ProjectLine(id=row[0], name=row[1], path=row[2]) if row else None,
        language=row[3] if row else None,
    )


# --- laying out within the budget ----------------------------------------------------------------
def _line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= LINE_MAX else text[: LINE_MAX - 1] + "…"


def _task(t: TaskLine) -> str:
    lease = f", lease until {t.lease_until}" if t.lease_until else ""
    return _line(f"- #{t.id} [P{t.priority}, {t.status}{lease}] {t.title}")


def _point(c: ContinuePoint) -> list[str]:
    where = f" at {c.file}:{c.line}" if c.file and c.line else (f" in {c.file}" if c.file else "")
    lines = [_line(f"- Last: {c.last_action}{where} ({c.created_at}, {c.agent or 'unknown'})")]
    lines += [_line(f"- Next: {step}") for step in c.next_steps[:5]]
    return lines


def _session_lines(session: SessionLine | None) -> list[str]:
    if session is None:
        return []
    return [_line(f"- {session.started_at[:10]} ({session.kind}): {session.summary}")]


def layout(brief: Brief, max_chars: int) -> Brief:
    """Cut `brief` to `max_chars` of Markdown, in place; returns it with `markdown` set."""
    short: list[tuple[str, list[str], str]] = [  # (heading, lines, field)
        ("## Your claims", [_task(t) for t in brief.claims], "claims"),
        ("## Where work stopped", _point(brief.continue_point) if brief.continue_point else [],
         "continue_point"),
        ("## Ready next", [_task(t) for t in brief.ready], "ready"),
        ("## Last session", _session_lines(brief.session), "session"),
        ("## Skills that fit", [_line(f"- {s.title}: {s.description or ', '.join(s.matched)}")
                                for s in brief.skills], "skills"),
        ("## Recent decisions and notes", [_line(f"- #{n.id} {n.kind}: {n.title}")
                                           for n in brief.notes], "notes"),
    ]  # fmt: skip
    title = f"# Brief: {brief.project.name}" if brief.project else "# Brief"
    if brief.relative_path:
        title += f" — {brief.relative_path}"

    def size(sections: list[tuple[str, list[str], str]]) -> int:
        return (
            len(title)
            + 1
            + sum(len(h) + 2 + sum(len(x) + 1 for x in ls) for h, ls, _ in sections if ls)
        )

    # The least useful go first when even the short sections do not fit.
    while size(short) > max_chars and any(ls for _, ls, _ in short):
        _heading, lines, field = next(s for s in reversed(short) if s[1])
        lines.pop()
        brief.omitted[field] = brief.omitted.get(field, 0) + 1
        _drop_last(brief, field)
    budget = max_chars - size(short) - len("## Instructions") - 2
    blocks: list[str] = []
    kept: list[Applicable] = []
    for item in brief.instructions:
        head = _line(f"### {item.title} — {item.why}")
        text = (item.content or "").strip()
        room = budget - len(head) - 2
        if room < 80:
            brief.omitted["instructions"] = brief.omitted.get("instructions", 0) + 1
            continue
        if len(text) > room:
            text = text[: room - len(_CUT)].rsplit("\n", 1)[0] + _CUT
            brief.omitted["instructions"] = brief.omitted.get("instructions", 0) + 1
        item.content = text
        blocks.append(f"{head}\n{text}")
        kept.append(item)
        budget -= len(head) + len(text) + 2
    brief.instructions = kept
    parts = [title]
    for heading, lines, _field in short[:2]:
        if lines:
            parts.append(heading + "\n" + "\n".join(lines))
    if blocks:
        parts.append("## Instructions\n" + "\n\n".join(blocks))
    for heading, lines, _field in short[2:]:
        if lines:
            parts.append(heading + "\n" + "\n".join(lines))
    brief.markdown = "\n\n".join(parts)[:max_chars]
    return brief


def _drop_last(brief: Brief, field: str) -> None:
    value = getattr(brief, field)
    if isinstance(value, list):
        value.pop()
    else:
        setattr(brief, field, None)


@methods("context.brief")
async def brief(app: App, call: Call, p: BriefParams) -> Brief:
    """Everything an agent needs to start in a project or at a path, most useful first and
    within `max_chars` (of the Markdown; the fields hold the same): its claims (`agent`), where
    work stopped, the instructions for the path, the top ready tasks, the last session's
    summary, the skills that fit, recent decisions and notes."""
    if p.project is None and p.path is None:
        raise InvalidParams("Invalid params: give project or path", field="project")
    path = p.path or "."
    if p.project is not None:
        root = (await resolve(app.db, p.project)).path
        rel = instructions.relative(root, path)
        if rel is None:
            raise InvalidParams(f"Invalid params: {path} is outside {root}", field="path")
        path = f"{root}/{rel}" if rel else root
    elif not path.startswith("/"):
        raise InvalidParams("Invalid params: path must be absolute (or give project)", field="path")
    read = await app.db.read(_read, path, p.agent, app.work.urgency, utc_now())
    applicable = instructions.rank(
        read.instructions, read.relative_path, content=True, on_request=False
    )
    fits: list[SkillMatch] = []
    if read.project_id is not None:
        wanted = MatchParams(path=p.path, language=read.language, limit=SKILLS_MAX)
        fits = skills.ranked(read.skills, wanted)
    made = Brief(
        project=read.project, relative_path=read.relative_path, claims=read.claims,
        continue_point=read.point, instructions=applicable, ready=read.ready,
        session=read.session, skills=fits, notes=read.notes, omitted={}, markdown="",
    )  # fmt: skip
    return layout(made, p.max_chars)
