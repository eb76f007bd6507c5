"""The paging fields every `*.list` method takes."""

from __future__ import annotations

from typing import Annotated

import msgspec

MAX_PAGE = 10_000

Limit = Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE, description="page size")]
Offset = Annotated[int, msgspec.Meta(ge=0, description="items to skip")]
