"""The paging fields every `*.list` method takes."""

from __future__ import annotations

from typing import Annotated

import msgspec

MAX_PAGE = 10_000
SQL_INT_MAX = 2**63 - 1  # SQLite integers are 64-bit signed: a larger one cannot be bound

Limit = Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE, description="page size")]
Offset = Annotated[int, msgspec.Meta(ge=0, le=SQL_INT_MAX, description="items to skip")]
