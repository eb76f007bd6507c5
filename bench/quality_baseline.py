"""The quality benchmark's baseline: a quality scan's work done in this process, on one thread,
over the very inputs the daemon uses (its `scan_states`): `score.fingerprint` + `score.assess`
per project (a full scan without the database), then `score.fingerprint` +
`score.maintenance` alone (a rescan's); and, to tell the pool's cost from the daemon's own,
the same full work on a thread pool of the daemon's size, in its chunks.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from daemon.domain.quality import score
from daemon.domain.quality.model import Assessment
from daemon.domain.quality.service import QualityService
from daemon.domain.quality.sql import ScanState

CHUNK = 8  # projects per pool task, as QualityService._assess_all


@dataclass
class Baseline:
    full_s: float  # fingerprint + assess per project, one thread
    pool_s: float  # the same on a pool the size of the daemon's, in chunks as it does
    rescan_s: float  # fingerprint + maintenance per project, one thread
    assessments: dict[int, Assessment]

    @property
    def errors(self) -> int:
        return sum(1 for a in self.assessments.values() if a.error)


def pool_size() -> int:
    """The daemon's assessment threads: QualityService's default (lifecycle passes none)."""
    default = inspect.signature(QualityService.__init__).parameters["threads"].default
    return int(default)


def _full(states: Sequence[ScanState], now: datetime) -> list[Assessment]:
    out = []
    for s in states:
        score.fingerprint(s.path)  # the daemon's first pass, before it decides what to read
        out.append(
            score.assess(
                s.path, last_worked_on=s.last_worked_on, now=now, description=s.description
            )
        )
    return out


def baseline(states: Sequence[ScanState], pool_first: bool) -> Baseline:
    now = datetime.now(UTC)
    parts = [states[i : i + CHUNK] for i in range(0, len(states), CHUNK)]

    def on_pool() -> float:
        started = time.perf_counter()
        with ThreadPoolExecutor(pool_size()) as pool:
            list(pool.map(_full, parts, [now] * len(parts)))
        return time.perf_counter() - started

    pool_s = on_pool() if pool_first else 0.0
    started = time.perf_counter()
    assessments = dict(zip([s.project_id for s in states], _full(states, now), strict=True))
    full_s = time.perf_counter() - started
    if not pool_first:
        pool_s = on_pool()
    started = time.perf_counter()
    for s in states:
        score.fingerprint(s.path)
        score.maintenance(s.last_worked_on, now)
    rescan_s = time.perf_counter() - started
    return Baseline(full_s, pool_s, rescan_s, assessments)
