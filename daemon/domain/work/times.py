"""Times given in params (a due date, a deferral, when a session started): ISO 8601 with a
timezone, stored as the daemon stores every time (UTC, fixed width, so they sort as text)."""

from __future__ import annotations

from datetime import datetime

from daemon.rpc.errors import InvalidParams
from daemon.store.clock import iso


def check_time(field: str, value: str | None) -> str | None:
    """`value` as a stored time (None and "" stay None); not ISO 8601 with a timezone is
    -32602 naming `field`."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is not None:
            return iso(moment)
    except (ValueError, OverflowError):  # not a time; or beyond year 1-9999 once in UTC
        raise InvalidParams(
            f"Invalid params: {field} must be an ISO 8601 time with a timezone, not {value!r}",
            field=field,
        ) from None
    raise InvalidParams(
        f"Invalid params: {field} needs a timezone (e.g. 2025-01-31T09:00:00Z)", field=field
    )
