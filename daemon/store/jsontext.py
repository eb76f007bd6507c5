"""Measuring JSON text without decoding it: how deeply it nests.

Decoding a value nested hundreds of levels deep works in a fresh thread but fails later, when
the value is encoded again deep in a reply's call stack (a RecursionError answered as an
internal error). Limits on nesting are checked on the text, with no recursion at all.
"""

from __future__ import annotations

import re

_STRINGS = re.compile(r'"(?:[^"\\]+|\\.)*"', re.DOTALL)  # brackets inside strings do not count
_BRACKETS = re.compile(r"[\[\]{}]")


def depth(text: str) -> int:
    """How many arrays and objects deep `text` (JSON) nests: 0 for a scalar, 1 for `[1]`."""
    if "[" not in text and "{" not in text:
        return 0
    deepest = level = 0
    for match in _BRACKETS.finditer(_STRINGS.sub("", text)):
        if match[0] in "[{":
            level += 1
            deepest = max(deepest, level)
        else:
            level -= 1
    return deepest
