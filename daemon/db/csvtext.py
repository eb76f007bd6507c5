"""Reading the CSV an export writes (csv.writer's default dialect: `,`, `"` doubled inside
quoted fields, `\\r\\n`) from a mapped file, with a limit on every field.

The csv module reads a whole physical line before it looks at it, and grows a field four bytes
a character: a 400 MB field cost 800 MB before it could be refused. Here each field is found by
a regular expression over the mapped file (positions only, nothing copied), its length checked
against its limit, and only then copied out: memory depends on the limits, not on the file.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Generator, Sequence

# A quoted field (possessive: no backtracking state, however long), or an unquoted one.
_FIELD = re.compile(rb'"((?:[^"]++|"")*+)"|[^,"\r\n]*+')


class FieldTooLong(ValueError):
    def __init__(self, index: int, size: int, limit: int) -> None:
        super().__init__(f"value {index + 1} is {size} bytes long, over its limit of {limit}")
        self.index = index


def records(
    buf: bytes | mmap.mmap, limits: Sequence[int], header: Sequence[int]
) -> Generator[list[str], None, None]:
    """Each record's fields as text. `limits[i]`: the most bytes field i may stand for
    (`header[i]` in the first record); its text in the file is at most twice that (+2: a
    BLOB's `\\X` and hex). A record with more fields than that, or anything that is not this
    dialect, is a ValueError (so is text that is not UTF-8)."""
    pos, end, current = 0, len(buf), header
    while pos < end:
        fields: list[str] = []
        while True:
            if len(fields) >= len(current):
                raise ValueError(f"has more than {len(current)} values, expected {len(current)}")
            match = _FIELD.match(buf, pos)
            assert match is not None  # the unquoted branch matches the empty string
            quoted = match.start(1) != -1
            start, stop = match.span(1) if quoted else match.span()
            limit = current[len(fields)]
            if stop - start > 2 * limit + 2:
                raise FieldTooLong(len(fields), stop - start, limit)
            raw = buf[start:stop]
            fields.append((raw.replace(b'""', b'"') if quoted else raw).decode("utf-8"))
            pos = match.end()
            after = buf[pos : pos + 2]
            if after[:1] == b",":
                pos += 1
                continue
            if after == b"\r\n":
                pos += 2
            elif after[:1] in (b"\n", b"\r"):
                pos += 1
            elif after:
                raise ValueError(f"unexpected {after[:1]!r} after value {len(fields)}")
            break
        yield fields
        current = limits
