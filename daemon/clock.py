"""Timestamps as they appear on the wire and in the database: ISO 8601, UTC, microseconds, "Z"."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> str:
    return iso(datetime.now(UTC))
