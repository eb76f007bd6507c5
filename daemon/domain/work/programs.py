"""programs: plans grouped (Project Memory's integrated programs), visible across projects.

Generated: programs.add/get/update/delete, program_projects.add/list/delete (a program shown in
another project than its own). Written here: programs.list {project} answers the programs a
project sees — its own and those linked to it; plans.upgrade turns a plan into a program of the
same name that holds it (Project Memory's upgradeToProgram).
"""

from __future__ import annotations

from dataclasses import replace

from daemon.domain.app import App
from daemon.domain.crud import Crud, Id, Ref
from daemon.domain.projects.ref import PROJECT, ProjectRef, project_id
from daemon.domain.work.model import (
    PLANS,
    PROGRAM_PROJECTS,
    PROGRAMS,
    Program,
    ProgramStatus,
)
from daemon.domain.work.plans import writable
from daemon.rpc.dispatcher import Call
from daemon.rpc.errors import Conflict
from daemon.rpc.registry import Methods, Params
from daemon.store.batch import Tx
from daemon.store.limits import Limit, Offset
from daemon.store.table import Page, Where

methods = Methods()
_REQUIRED_PROJECT = replace(PROJECT, required=True)
Crud(PROGRAMS, refs=[_REQUIRED_PROJECT]).register(methods, ("add", "get", "update", "delete"))
Crud(
    PROGRAM_PROJECTS,
    refs=[Ref("program", "program_id", "programs", required=True), _REQUIRED_PROJECT],
    noun="program link",
).register(methods, ("add", "list", "delete"))


class ProgramsListParams(Params, frozen=True):
    project: ProjectRef | None = None
    status: ProgramStatus | None = None
    limit: Limit = 100
    offset: Offset = 0


@methods("programs.list")
async def list_programs(app: App, call: Call, p: ProgramsListParams) -> Page[Program]:
    """Programs, with `{items, total}`; with `project`, those it sees: its own and the ones
    linked to it (program_projects.add)."""
    where = Where(PROGRAMS)
    if p.project is not None:
        pid = await project_id(app, p.project)
        where.sql(
            "t.project_id = ? OR t.id IN (SELECT program_id FROM program_projects"
            " WHERE project_id = ?)",
            pid,
            pid,
        )
    if p.status is not None:
        where.eq("status", p.status)
    return await app.db.read(PROGRAMS.page, where, None, p.limit, p.offset)


class UpgradeParams(Params, frozen=True):
    id: Id


def upgrade(tx: Tx, plan_id: int) -> Program:
    plan = PLANS.must_get(tx.conn, plan_id)
    writable(plan)
    if plan.program_id is not None:
        raise Conflict(
            f"plan {plan_id} is part of program {plan.program_id} already",
            program=plan.program_id,
        )
    program = PROGRAMS.insert(
        tx,
        {
            "project_id": plan.project_id, "title": plan.title,
            "description": plan.description, "category": plan.category,
            "priority": plan.priority, "goals": plan.goals,
            "success_criteria": plan.success_criteria,
        },
    )  # fmt: skip
    PLANS.update(tx, plan_id, {"program_id": program.id})
    return program


@methods("plans.upgrade")
async def upgrade_plan(app: App, call: Call, p: UpgradeParams) -> Program:
    """Upgrade a plan to a program: a new program with the plan's title, description,
    category, priority, goals and success criteria, holding the plan. A plan already in a
    program is a conflict."""
    return await app.db.write(lambda tx: upgrade(tx, p.id))
