"""Small helpers for the figures the daemon reports about itself."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of `values`; 0.0 when there are none."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return float(ordered[rank])


class Window:
    """The last `size` samples of a figure, for medians and tails without unbounded memory."""

    def __init__(self, size: int = 1024) -> None:
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self._samples.append(value)  # deque.append is atomic: safe from the writer's thread

    def p(self, q: float) -> float:
        return percentile(list(self._samples), q)

    def max(self) -> float:
        samples = list(self._samples)
        return max(samples) if samples else 0.0
