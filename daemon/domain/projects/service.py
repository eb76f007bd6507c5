"""Until quality and jobs are on the domain layer (their APIs are classes given a service):
how they resolve a project named in params. Everything else of projects is module functions
(api.py); this goes once nothing constructs it."""

from __future__ import annotations

from daemon.domain.projects.ref import resolve
from daemon.domain.projects.row import Project
from daemon.store.database import Database


class ProjectService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def resolve(self, ref: int | str) -> Project:
        """A project by id, absolute path or name (ref.py)."""
        return await resolve(self._db, ref)
