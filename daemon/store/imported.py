"""Reading an import back before it is swapped in: every row must come out as its own type.

An export is data, never instructions: its rows are held to what the daemon itself would have
written (daemon/store/importer.py checks every value against the API's limits), and here every
row of every table the caller names is read through the very reader the API reads with. A row
that parses but that no method could serve (a JSON column of the wrong shape, text where a
number belongs, a value over a field's limit) refuses the import, instead of failing a list
method for everyone afterwards. What a domain settles about its imported rows (projects
outside the Dev folder) is the domain's, wired by the runtime (daemon/runtime/care.py).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from daemon.store.connection import quote
from daemon.store.export import ExportError
from daemon.store.table import Table, Where

PAGE = 1000  # rows read back at a time: the memory a read-back takes is bounded by it

_Faults = (msgspec.MsgspecError, TypeError, ValueError, RecursionError, sqlite3.Error)


def _refused(where: str, table: str, what: str, error: BaseException) -> ExportError:
    return ExportError(
        f"{where}: table {table!r}, {what}: no method could read it back ({error}); "
        "correct or remove the row"
    )


def _ids(conn: sqlite3.Connection, table: str) -> Iterator[list[int]]:
    """The ids of `table`'s rows, ascending, PAGE at a time."""
    after = -(2**63)
    while True:
        page = [
            int(r[0])
            for r in conn.execute(
                f"SELECT id FROM {quote(table)} WHERE id > ? ORDER BY id LIMIT ?", (after, PAGE)
            )
        ]
        if not page:
            return
        yield page
        after = page[-1]


def read_back(conn: sqlite3.Connection, where: str, tables: Sequence[Table[Any]]) -> None:
    """Every row of each table through the table's own reader, a page of ids at a time; a row
    that does not decode is named by its id."""
    for table in tables:
        for page in _ids(conn, table.name):
            window = Where().sql("t.id BETWEEN ? AND ?", page[0], page[-1])
            try:
                table.rows(conn, window, budget=False)
            except _Faults as e:
                for row_id in page:  # which one: the page's rows one by one
                    try:
                        table.get(conn, row_id)
                    except _Faults as one:
                        raise _refused(where, table.name, f"the row with id {row_id}", one) from one
                what = f"the rows with ids {page[0]} to {page[-1]}"
                raise _refused(where, table.name, what, e) from e
