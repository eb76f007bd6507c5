"""metrics: time series (Nexus' metrics: token_usage, task_duration, qa_iterations, …) with
per-day aggregates, and totals per agent, session, project or type.

Its own rules: a point's `timestamp` is when it was measured (now unless the client says),
stored as ISO 8601 UTC so a day is its first ten characters; aggregates are computed by SQL
over the (project, type, timestamp) index, never kept in a second table that could disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from daemon.domain.app import App
from daemon.domain.crud import Crud, Ref, Rules
from daemon.domain.projects.ref import PROJECT, ProjectRef, project_id
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import InvalidParams
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.clock import iso
from daemon.store.table import Row, Table, Where

MetricType = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        description="token_usage, task_duration, qa_iterations, or a name of your own",
    ),
]
AgentName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Timestamp = Annotated[
    str, msgspec.Meta(max_length=64, description="when it was measured, ISO 8601 with a zone")
]
UtcTime = Annotated[datetime, msgspec.Meta(tz=True)]
MAX_DAYS = 3660


class Metric(Row, kw_only=True):
    project_id: int | None = None
    task_id: int | None = None
    session_id: int | None = None
    agent: AgentName | None = None
    type: MetricType
    value: float
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    timestamp: Timestamp | None = None  # the daemon fills in now


METRICS = Table(
    "metrics",
    Metric,
    orders={"time": "t.timestamp DESC, t.id DESC", "id": "t.id"},
    identity=("type",),
)


class MetricRules(Rules[Metric]):
    def before_add(self, tx: Tx, values: dict[str, Any]) -> None:
        values["timestamp"] = utc(values.get("timestamp")) or tx.now


def utc(text: str | None) -> str | None:
    """A timestamp as stored: ISO 8601 in UTC, so a day is its first ten characters."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidParams(f"Invalid params: timestamp {text!r}: {e}", field="timestamp") from e
    if moment.tzinfo is None:
        raise InvalidParams(
            f"Invalid params: timestamp {text!r} has no time zone (add Z for UTC)",
            field="timestamp",
        )
    return iso(moment)


methods = Methods()
Crud(
    METRICS,
    refs=[
        PROJECT,
        Ref("task", "task_id", "tasks", description="a task's id"),
        Ref("session", "session_id", "sessions", description="a session's id"),
    ],
    create=("agent", "type", "value", "metadata", "timestamp"),
    change=("value", "metadata"),
    filters=("type", "agent"),
    rules=MetricRules(),
).register(methods)


class Filter(Params, frozen=True):
    type: MetricType = "token_usage"
    project: ProjectRef | None = None
    agent: AgentName | None = None
    session: Annotated[int, msgspec.Meta(ge=1)] | None = None
    since: UtcTime | None = None
    until: UtcTime | None = None


class SeriesParams(Filter, frozen=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_DAYS)] = 90


class Day(msgspec.Struct, kw_only=True):
    day: str  # YYYY-MM-DD (UTC)
    count: int
    sum: float
    min: float
    max: float
    avg: float


class Series(msgspec.Struct, kw_only=True):
    type: str
    days: list[Day]  # oldest first, days with no point left out


GroupBy = Literal["agent", "session", "project", "type"]


class TotalsParams(Filter, frozen=True):
    by: GroupBy = "agent"
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 50


class Total(msgspec.Struct, kw_only=True):
    key: str | int | None  # the agent's name, the session's or project's id, or the type
    count: int
    sum: float


class Totals(msgspec.Struct, kw_only=True):
    by: str
    items: list[Total]  # largest sum first


async def _where(app: App, p: Filter, *, with_type: bool = True) -> Where:
    where = Where(METRICS)
    if with_type:
        where.eq("type", p.type)
    if p.project is not None:
        where.eq("project_id", await project_id(app, p.project))
    if p.agent is not None:
        where.eq("agent", p.agent)
    if p.session is not None:
        where.eq("session_id", p.session)
    if p.since is not None:
        where.sql("t.timestamp >= ?", iso(p.since))
    if p.until is not None:
        where.sql("t.timestamp < ?", iso(p.until))
    return where


def _days(conn: Any, where: Where, limit: int) -> list[Day]:
    sql, args = where.render()
    rows = conn.execute(
        "SELECT day, n, s, lo, hi FROM (SELECT substr(t.timestamp, 1, 10) AS day, count(*) AS n, "
        f"sum(t.value) AS s, min(t.value) AS lo, max(t.value) AS hi FROM metrics AS t{sql} "
        "GROUP BY day ORDER BY day DESC LIMIT ?) ORDER BY day",
        (*args, limit),
    ).fetchall()
    return [Day(day=d, count=n, sum=s, min=lo, max=hi, avg=s / n) for d, n, s, lo, hi in rows]


@methods("metrics.series")
async def series(app: App, call: Call, p: SeriesParams) -> Series:
    """Per-day aggregates (count, sum, min, max, avg) of one metric type, for the newest
    `limit` days that have points, oldest first; filtered by project, agent, session, time."""
    where = await _where(app, p)
    return Series(type=p.type, days=await app.db.read(_days, where, p.limit))


# The column each grouping reads: SQL is chosen here, never made from the client's string.
_GROUP: dict[GroupBy, str] = {"agent": "t.agent", "session": "t.session_id",
                              "project": "t.project_id", "type": "t.type"}  # fmt: skip


def _totals(conn: Any, where: Where, by: GroupBy, limit: int) -> list[Total]:
    sql, args = where.render()
    column = _GROUP[by]
    rows = conn.execute(
        f"SELECT {column}, count(*), sum(t.value) FROM metrics AS t{sql} "
        f"GROUP BY {column} ORDER BY sum(t.value) DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [Total(key=k, count=n, sum=s) for k, n, s in rows]


@methods("metrics.totals")
async def totals(app: App, call: Call, p: TotalsParams) -> Totals:
    """Totals of one metric type (token use by default) per agent, session, project — or per
    type (then `type` is ignored) — largest first."""
    where = await _where(app, p, with_type=p.by != "type")
    return Totals(by=p.by, items=await app.db.read(_totals, where, p.by, p.limit))
