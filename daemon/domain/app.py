"""What the handlers of every domain module reach: one object the runtime builds at start.

A domain module's handlers are `async def f(app: App, call, params) -> Result`; the runtime
builds the App from the parts it runs (the database, the event bus, the scanner, the
scheduler…) and binds each module's `methods` to it (daemon/runtime/lifecycle.py). What a
domain needs of the runtime is named by a Protocol in that domain's module, so nothing here
imports the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from daemon.domain.work.settings import WorkSettings

if TYPE_CHECKING:
    from daemon.domain.documents.instructions import RepoIndex
    from daemon.domain.events.bus import EventBus
    from daemon.domain.jobs.service import Scheduling
    from daemon.domain.projects.scanning import Scanning
    from daemon.domain.quality.service import QualityService
    from daemon.store.database import Database


@dataclass
class App:
    db: Database
    bus: EventBus
    data_dir: str
    roots: list[str] = field(default_factory=list)
    scanner: Scanning | None = None  # projects.scan, register, forget; None in tests without one
    scheduling: Scheduling | None = None  # jobs.run, jobs.cancel, a run's progress
    quality: QualityService | None = None  # the assessment pool (quality.scan)
    repo_index: RepoIndex | None = None  # instruction files read from the projects (memory)
    work: WorkSettings = field(default_factory=WorkSettings)  # urgency weights, leases
