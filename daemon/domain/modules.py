"""The domain modules whose `methods` the runtime binds at start: a new entity's module adds
itself here (README, "How to add an entity")."""

from __future__ import annotations

from types import ModuleType

from daemon.domain import kv
from daemon.domain.jobs import api as jobs

MODULES: tuple[ModuleType, ...] = (kv, jobs)
