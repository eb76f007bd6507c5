"""TableReader: copies what can still be read of one table of a damaged database.

A table whose plain scan fails is read again by rowid ranges: a range is read from both ends until
each fails, the part in between is split in two, and so on down to single rowids (or to the gap
between rows, for sparse rowids), largest first under a query budget per table.
"""

from __future__ import annotations

import collections
import heapq
import sqlite3
from typing import Any

from daemon.store.connection import quote

MIN_ROWID, MAX_ROWID = -(2**63), 2**63 - 1
_BUDGET = 200_000  # range queries per table, plus a few per expected row
_FLUSH = 1000  # rows per insert batch

Row = tuple[Any, ...]


class TableReader:
    """Copies one table's readable rows from `src` into `dst`."""

    def __init__(
        self, src: sqlite3.Connection, dst: sqlite3.Connection, table: str, notes: list[str]
    ) -> None:
        self.src, self.table, self.notes = src, table, notes
        old = {str(r[1]) for r in src.execute(f"PRAGMA table_info({quote(table)})")}
        cols = [str(r[1]) for r in dst.execute(f"PRAGMA table_info({quote(table)})")]
        if missing := [c for c in cols if c not in old]:
            notes.append(f"{table}: columns {missing} missing from the damaged file")
        cols = [c for c in cols if c in old]
        names = ", ".join(map(quote, cols))
        self.select = f"SELECT rowid, {names} FROM {quote(table)} NOT INDEXED"
        marks = ", ".join("?" for _ in cols)
        self.insert = f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})"
        self.dst = dst
        self.rejected: collections.Counter[str] = collections.Counter()
        self.buffer: list[Row] = []
        self.unreadable: list[tuple[int, int]] = []
        self.high: int | None = None  # the highest rowid known to have been used
        self.taken = 0  # rows read
        self.queries = 0
        self.budget = _BUDGET

    def read(self) -> tuple[int | None, list[tuple[int, int]]]:
        """(rows the damaged file held if known, rowid ranges that could not be read)."""
        try:
            self.src.execute(f"SELECT rowid FROM {quote(self.table)} LIMIT 0")
        except sqlite3.Error:
            return self._read_without_rowid(), []
        stop = self._range(MIN_ROWID, MAX_ROWID, desc=False)  # the plain scan
        if stop > MAX_ROWID:
            self._flush()
            return self.taken, []
        stats = self._index_stats()
        if stats is not None:
            self.budget += 8 * stats[2]
        lo = stop if self.taken else self._bound(stats, 1, down=True)
        self._refine(lo, self._bound(stats, lo - 1, down=False))
        self._flush()
        return (None if stats is None else stats[2]), _merge(self.unreadable)

    def _bound(self, stats: tuple[int, int, int] | None, start: int, *, down: bool) -> int:
        """min(rowid) or max(rowid): from the table, else from an index, else probed."""
        found = self._scalar(f"SELECT {'min' if down else 'max'}(rowid) FROM {quote(self.table)}")
        if found is None and stats is not None:
            found = stats[0 if down else 1]
        if found is not None:
            if not down:
                self.high = found if self.high is None else max(found, self.high)
            return found
        found, exact = self._probe(start, down=down)
        if not exact:
            self.unreadable.append((MIN_ROWID, found - 1) if down else (found + 1, MAX_ROWID))
        return found

    def _refine(self, lo: int, hi: int) -> None:
        """Read [lo, hi] around what fails: narrow each region from both ends, split what is
        left in two, and so on, largest first (good pages between damaged ones are found
        early). A region narrower than the gap between rows read around it is given up."""
        regions = [(lo - hi, lo, hi, 1)]
        while regions:
            _, a, b, gap = heapq.heappop(regions)
            if self.queries >= self.budget:
                self.unreadable.append((a, b))
                continue
            taken = self.taken
            s = self._range(a, b, desc=False)
            e = self._range(s, b, desc=True) if s <= b else b
            if e < s:
                continue
            if self.taken - taken >= 8:
                gap = max(1, (s - a + b - e) // (self.taken - taken))
            if e - s < gap:
                self.unreadable.append((s, e))
                continue
            mid = s + (e - s) // 2
            heapq.heappush(regions, (s - mid, s, mid, gap))
            heapq.heappush(regions, (mid + 1 - e, mid + 1, e, gap))

    def _range(self, a: int, b: int, *, desc: bool) -> int:
        """Read a <= rowid <= b from one end until something fails; returns where reading
        stopped: the next rowid that end would read (b + 1 or a - 1 once all is read)."""
        self.queries += 1
        sign, order = (-1, "DESC") if desc else (1, "ASC")
        sql = f"{self.select} WHERE rowid BETWEEN ? AND ? ORDER BY rowid {order}"
        stop = b if desc else a
        try:
            for row in self.src.execute(sql, (a, b)):
                if not a <= row[0] <= b or (row[0] - stop) * sign < 0:
                    return stop  # out of order: a damaged page that reads as if it were fine
                self._take(row)
                stop = row[0] + sign
        except sqlite3.Error:
            return self._edge(a, b, stop, desc=desc)
        return a - 1 if desc else b + 1

    def _edge(self, a: int, b: int, stop: int, *, desc: bool) -> int:
        """The row the cursor dropped: Python fetches one row ahead, and a step that fails
        loses the row before it. With LIMIT 1 SQLite never steps past that row."""
        lo, hi = (a, stop) if desc else (stop, b)
        if lo > hi:
            return stop
        self.queries += 1
        sql = (
            f"{self.select} WHERE rowid BETWEEN ? AND ? ORDER BY rowid {'DESC' if desc else 'ASC'}"
        )
        try:
            row = self.src.execute(f"{sql} LIMIT 1", (lo, hi)).fetchone()
        except sqlite3.Error:
            return stop
        if row is None:  # nothing left on this side: the failing step was past the range
            return a - 1 if desc else b + 1
        self._take(row)
        return int(row[0]) + (-1 if desc else 1)

    def _probe(self, start: int, *, down: bool) -> tuple[int, bool]:
        """Seek exponentially away from `start`: (bound, exact). Exact when a seek proved that
        no row lies further out. Otherwise seeks failed from some point on (a damaged page whose
        span runs to the end); the bound is where they start failing, found by bisection."""
        sign = -1 if down else 1
        good, bad, step = start, None, 1
        while MIN_ROWID <= (x := start + sign * step) <= MAX_ROWID:
            found = self._seek(x, down=down)
            if found is False:
                return x - sign, True
            if found:
                good, bad = x, None
            elif bad is None:
                bad = x
            step *= 2
        if bad is None:
            return (MIN_ROWID if down else MAX_ROWID), True
        while abs(bad - good) > 1:
            mid = good + (bad - good) // 2
            if self._seek(mid, down=down) is None:
                bad = mid
            else:
                good = mid
        return bad, False

    def _seek(self, x: int, *, down: bool) -> bool | None:
        """Is there a row at or beyond x (None: the seek failed)?"""
        self.queries += 1
        cmp, order = ("<=", "DESC") if down else (">=", "ASC")
        sql = f"SELECT rowid FROM {quote(self.table)} WHERE rowid {cmp} ? ORDER BY rowid {order}"
        try:
            return self.src.execute(f"{sql} LIMIT 1", (x,)).fetchone() is not None
        except sqlite3.Error:
            return None

    def _index_stats(self) -> tuple[int, int, int] | None:
        """(min rowid, max rowid, rows) from the first index that reads in full."""
        for _, index, _, _, partial in self.src.execute(f"PRAGMA index_list({quote(self.table)})"):
            if partial:
                continue
            sql = f"SELECT min(rowid), max(rowid), count(*) FROM {quote(self.table)} INDEXED BY "
            try:
                low, high, count = self.src.execute(sql + quote(index)).fetchone()
            except sqlite3.Error:
                continue
            return (1, 0, 0) if low is None else (int(low), int(high), int(count))
        return None

    def _read_without_rowid(self) -> int | None:
        cols = self.select.removeprefix("SELECT rowid, ")
        try:
            for row in self.src.execute(f"SELECT {cols}"):
                self._take((None, *row))
        except sqlite3.Error:
            self._flush()
            self.notes.append(f"{self.table} (WITHOUT ROWID) was read up to its first bad page")
            return self._scalar(f"SELECT count(*) FROM {quote(self.table)}")
        self._flush()
        return self.taken

    def _scalar(self, sql: str) -> int | None:
        try:
            value = self.src.execute(sql).fetchone()[0]
        except sqlite3.Error:
            return None
        return None if value is None else int(value)

    def _take(self, row: Row) -> None:
        self.taken += 1
        if row[0] is not None and (self.high is None or row[0] > self.high):
            self.high = int(row[0])
        self.buffer.append(row[1:])
        if len(self.buffer) >= _FLUSH:
            self._flush()

    def _flush(self) -> None:
        """Insert a batch; one that breaks a constraint goes row by row, the failures counted."""
        rows, self.buffer = self.buffer, []
        self.dst.execute("SAVEPOINT salvage_batch")
        try:
            self.dst.executemany(self.insert, rows)
        except sqlite3.IntegrityError:
            self.dst.execute("ROLLBACK TO salvage_batch")
            for row in rows:
                try:
                    self.dst.execute(self.insert, row)
                except sqlite3.IntegrityError as e:
                    self.rejected[str(e)] += 1
        self.dst.execute("RELEASE salvage_batch")


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged
