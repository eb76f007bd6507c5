"""Measuring JSON text without decoding it: how deeply it nests.

Decoding a value nested hundreds of levels deep works in a fresh thread but fails later, when
the value is encoded again deep in a reply's call stack (a RecursionError answered as an
internal error). Limits on nesting are checked on the text, with no recursion at all.
"""

from __future__ import annotations

import itertools
import re

_STRINGS = re.compile(r'"(?:[^"\\]+|\\.)*"', re.DOTALL)  # brackets inside strings do not count
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def depth(text: str) -> int:
    """How many arrays and objects deep `text` (JSON) nests: 0 for a scalar, 1 for `[1]`.
    Linear, in C loops: strings and everything but brackets go first, then a running sum."""
    if "[" not in text and "{" not in text:
        return 0
    brackets = _NOT_BRACKET.sub("", _STRINGS.sub("", text))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)
