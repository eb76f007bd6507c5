"""The domain modules whose `methods` the runtime binds at start: a new entity's module adds
itself here (README, "How to add an entity")."""

from __future__ import annotations

from types import ModuleType

from daemon.domain import (
    agents,
    brief,
    checkpoints,
    continue_points,
    features,
    kv,
    lineage,
    metrics,
    requirements,
    session_files,
    sessions,
)
from daemon.domain.documents import api as documents
from daemon.domain.documents import code, instructions, skills, vectors
from daemon.domain.events import api as events
from daemon.domain.jobs import api as jobs
from daemon.domain.projects import api as projects
from daemon.domain.quality import api as quality
from daemon.domain.work import archive, claims, deps, plans, portable, programs, tasks

MODULES: tuple[ModuleType, ...] = (
    events,
    kv,
    jobs,
    projects,
    quality,
    documents,
    instructions,
    skills,
    code,
    vectors,
    agents,
    checkpoints,
    continue_points,
    lineage,
    metrics,
    session_files,
    brief,
    # work (issue 15)
    plans,
    tasks,
    deps,
    claims,
    archive,
    programs,
    portable,
    sessions,
    features,
    requirements,
)
