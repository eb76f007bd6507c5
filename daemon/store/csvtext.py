"""Reading the CSV an export writes (csv.writer's default dialect: `,`, `"` doubled inside
quoted fields, `\\r\\n`) from a mapped file, with a limit on every field.

The csv module reads a whole physical line before it looks at it, and grows a field four bytes
a character: a 400 MB field cost 800 MB before it could be refused. Here it is given only short
lines that are whole records (the common case, at its speed); any other record is read field by
field with a regular expression over the mapped file (positions only, nothing copied), each
field's length checked against its limit before it is copied out: memory depends on the
limits, not on the file.
"""

from __future__ import annotations

import csv
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
        lines, pos = _short_records(buf, pos)
        if lines:  # the common case, parsed by the csv module a batch at a time
            try:
                for fields in csv.reader([line.decode("utf-8") for line in lines], strict=True):
                    if len(fields) > len(current):
                        raise _too_many(current)
                    yield fields
                    current = limits
            except csv.Error as e:
                raise ValueError(str(e)) from None
        else:  # a long line, or a quoted field that goes on over lines
            fields, pos = _quoted(buf, pos, current)
            yield fields
            current = limits


_SHORT = 1 << 20  # a line at most this long is copied out whole
_BATCH = 4 << 20  # bytes of short lines handed to the csv module at a time
csv.field_size_limit(max(csv.field_size_limit(), _SHORT))


def _short_records(buf: bytes | mmap.mmap, pos: int) -> tuple[list[bytes], int]:
    """From `pos`, the lines that are short and each a whole record (an even number of
    quotes: no quoted field is left open at its end); and where they end."""
    lines: list[bytes] = []
    taken = 0
    while taken < _BATCH:
        newline = buf.find(b"\n", pos, pos + _SHORT)
        if newline == -1:
            break
        line = buf[pos : newline + 1]
        if line.count(b'"') % 2:
            break
        lines.append(line)
        taken += len(line)
        pos = newline + 1
    return lines, pos


def _too_many(limits: Sequence[int]) -> ValueError:
    return ValueError(f"has more than {len(limits)} values, expected {len(limits)}")


def _quoted(buf: bytes | mmap.mmap, pos: int, limits: Sequence[int]) -> tuple[list[str], int]:
    """One record from `pos`, field by field: (its fields, where the next one starts)."""
    fields: list[str] = []
    while True:
        if len(fields) >= len(limits):
            raise _too_many(limits)
        match = _FIELD.match(buf, pos)
        assert match is not None  # the unquoted branch matches the empty string
        quoted = match.start(1) != -1
        start, stop = match.span(1) if quoted else match.span()
        limit = limits[len(fields)]
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
            return fields, pos + 2
        if after[:1] in (b"\n", b"\r"):
            return fields, pos + 1
        if after:
            raise ValueError(f"unexpected {after[:1]!r} after value {len(fields)}")
        return fields, pos
