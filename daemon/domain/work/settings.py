"""What a user may tune about work (`[work]` in config.toml): the urgency weights that rank ready
work after priority, and the claims' leases."""

from __future__ import annotations

from typing import Annotated

import msgspec

Weight = Annotated[float, msgspec.Meta(ge=0, le=1000)]


class Urgency(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Taskwarrior's coefficients: a task due now (or overdue) gains `due`, one due in 14 days
    or more a fifth of it, linearly between; each task waiting on this one adds `blocking`; age
    adds up to `age`, reached at `age_max_days`."""

    due: Weight = 12.0
    blocking: Weight = 8.0
    age: Weight = 2.0
    age_max_days: Annotated[float, msgspec.Meta(gt=0, le=36500)] = 365.0


class WorkSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    urgency: Urgency = msgspec.field(default_factory=Urgency)
    lease_s: Annotated[int, msgspec.Meta(gt=0, le=7 * 24 * 3600)] = 600  # a claim, unless given
    lease_sweep_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0  # expired claims freed
