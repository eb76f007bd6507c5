"""A project named in params — by its id, its absolute path, or its name — one rule for every
method that takes `project`, and the `Ref` generated methods use for it."""

from __future__ import annotations

import os
from typing import Annotated

import msgspec

from daemon.domain.app import App
from daemon.domain.crud import Ref
from daemon.domain.projects import sql
from daemon.domain.projects.row import PROJECTS, Project
from daemon.rpc.errors import Conflict, NotFound
from daemon.store.database import Database

ProjectRef = Annotated[
    int | str, msgspec.Meta(description="a project's id, its absolute path, or its name")
]


async def resolve(db: Database, ref: int | str) -> Project:
    """A project by id, by absolute path, or by name (which must then be unambiguous among
    the present projects, or among all when none is present)."""
    if isinstance(ref, int):
        found = await db.read(PROJECTS.get, ref)
        if found is None:
            raise NotFound(f"no project with id {ref}", project=ref)
        return found
    if ref.startswith(os.sep):
        found = await db.read(sql.get_by_path, _clean(ref))
        if found is None:
            raise NotFound(f"no project at {ref}", project=ref)
        return found
    named = await db.read(sql.find_by_name, ref)
    if not named:
        raise NotFound(f"no project named {ref!r}", project=ref)
    here = [p for p in named if p.present]
    if len(named) > 1 and len(here) == 1:
        return here[0]  # the others are folders that are gone: the name means this one
    if len(named) > 1:
        paths = ", ".join(p.path for p in named)
        raise Conflict(
            f"{len(named)} projects are named {ref!r} ({paths}); use its path or id",
            project=ref,
            candidates=[{"id": p.id, "path": p.path} for p in named],
        )
    return named[0]


def _clean(path: str) -> str:
    return os.path.normpath(path)  # string work only


async def project_id(app: App, ref: int | str) -> int:
    return (await resolve(app.db, ref)).id


PROJECT = Ref(
    "project",
    "project_id",
    "projects",
    kind=ProjectRef,
    resolve=project_id,
    description="a project's id, its absolute path, or its name",
)
