"""The scoring items: each thing a component gives points for, and whether it was earned.

Detectors return items; score.py sums the earned points into a component and turns the
unearned ones into gains, so the score and its explanation come from one list.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple

Component = Literal["tests", "ci", "docs", "lint", "maintenance"]


class Item(NamedTuple):
    component: Component
    points: float  # what the item is worth in its component (0-100)
    earned: float  # 0, points, or part of it (rustfmt's defaults: half)
    hint: str  # what a person would do to earn the rest


def item(component: Component, points: float, ok: bool | float, hint: str) -> Item:
    """An item earned in full when `ok` is True, not at all when False, or in part (0.5)."""
    share = float(ok)
    return Item(component, points, points * min(max(share, 0.0), 1.0), hint)


def total(items: Iterable[Item], component: Component) -> float:
    return sum(one.earned for one in items if one.component == component)
