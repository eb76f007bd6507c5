"""Salvage on real damaged files: pages overwritten with random bytes, then recovered."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.store import migrations
from daemon.store.salvage import Recovery, SalvageError, TableRecovery, damaged, recover
from daemon.store.salvage_read import MAX_ROWID

KV_ROWS, EVENTS, EVENTS_KEPT, PROJECTS = 20_000, 300, 280, 60
Rows = dict[int, tuple[Any, ...]]


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database as the daemon leaves it: WAL mode, closed cleanly (the main file has all)."""
    path = tmp_path_factory.mktemp("original") / "pm.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    migrations.migrate(conn, migrations.load())
    at = "2026-01-02T03:04:05.000000Z"
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO kv (namespace, key, value, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        [("ns", f"key-{i}", json.dumps({"n": i}), at, at) for i in range(KV_ROWS)],
    )
    conn.executemany(
        "INSERT INTO events (ts, topic, type, data) VALUES (?, 'kv', 'kv.set', ?)",
        [(at, json.dumps({"n": i, "pad": "e" * 200})) for i in range(EVENTS)],
    )
    conn.execute("DELETE FROM events WHERE seq > ?", (EVENTS_KEPT,))  # seq high-water stays
    for i in range(1, PROJECTS + 1):
        conn.execute(
            "INSERT INTO projects (id, name, path, description, created_at, updated_at, "
            "worktree_of) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (i, f"p{i}", f"/src/p{i}", "d" * 300, at, at, i - 1 if i % 2 == 0 else None),
        )
        for _ in range(2):
            conn.execute(
                "INSERT INTO quality_metrics (project_id, calculated_at, metrics_version) "
                "VALUES (?, ?, 1)",
                (i, at),
            )
        conn.execute(
            "INSERT INTO jobs (kind, source, project_id, created_at, updated_at) "
            "VALUES ('scan', 'daemon', ?, ?, ?)",
            (i, at, at),
        )
    conn.executemany(
        "INSERT INTO ignored_paths (path, created_at) VALUES (?, ?)",
        [(f"/tmp/ignored{i}", at) for i in range(5)],
    )
    conn.execute("COMMIT")
    conn.close()
    assert not os.path.exists(f"{path}-wal")
    return path


@pytest.fixture
def copy(original: Path, tmp_path: Path) -> Path:
    target = tmp_path / "damaged" / "pm.db"
    target.parent.mkdir()
    shutil.copyfile(original, target)
    return target


def pages(path: Path, name: str, kind: str = "leaf") -> list[int]:
    """The pages of one table or index (page 1 is never among them for user tables)."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        rows = conn.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = ? ORDER BY pageno",
            (name, kind),
        ).fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


def smash(path: Path, numbers: list[int], seed: int = 1) -> None:
    """Overwrite whole pages with random bytes (page size from the header, bytes 16-17)."""
    rng = random.Random(seed)
    with open(path, "r+b") as f:
        header = f.read(100)
        size = int.from_bytes(header[16:18], "big")
        size = 65536 if size == 1 else size
        for n in numbers:
            assert n > 1
            f.seek((n - 1) * size)
            f.write(rng.randbytes(size))


def rowids_on(path: Path, numbers: list[int]) -> set[int]:
    """The rowids stored on table leaf pages, parsed from the file (cell: payload size, rowid)."""

    def varint(buf: bytes, i: int) -> tuple[int, int]:
        value = 0
        for k in range(8):
            value = (value << 7) | (buf[i + k] & 0x7F)
            if buf[i + k] < 0x80:
                return value, i + k + 1
        return (value << 8) | buf[i + 8], i + 9

    found: set[int] = set()
    data = path.read_bytes()
    size = int.from_bytes(data[16:18], "big")
    for n in numbers:
        page = data[(n - 1) * size : n * size]
        assert page[0] == 0x0D  # a table leaf
        for j in range(int.from_bytes(page[3:5], "big")):
            cell = int.from_bytes(page[8 + 2 * j : 10 + 2 * j], "big")
            _, at = varint(page, cell)
            found.add(varint(page, at)[0])
    return found


def rows(path: Path, table: str) -> Rows:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        return {r[0]: r[1:] for r in conn.execute(f"SELECT rowid, * FROM {table}")}
    finally:
        conn.close()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_table(report: Recovery) -> dict[str, TableRecovery]:
    return {t.table: t for t in report.tables}


def check_new_file(dest: Path) -> sqlite3.Connection:
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert not any(os.path.exists(f"{dest}{s}") for s in ("-wal", "-shm", "-journal"))
    conn = sqlite3.connect(dest, isolation_level=None)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    return conn


def test_rows_past_damaged_pages_are_recovered(copy: Path, original: Path) -> None:
    leaves = pages(copy, "kv")
    middle = len(leaves) // 2
    bad = [leaves[middle], leaves[middle + 5], leaves[middle + 11]]
    on_bad_pages = rowids_on(copy, bad)
    smash(copy, bad)
    before, listing = sha(copy), sorted(os.listdir(copy.parent))
    assert damaged(str(copy))

    dest = copy.parent.parent / "recovered.db"
    started = time.perf_counter()
    report = recover(str(copy), str(dest), migrations.load())
    elapsed = time.perf_counter() - started

    assert sha(copy) == before and sorted(os.listdir(copy.parent)) == listing  # untouched
    assert elapsed < 5, elapsed
    kv = by_table(report)["kv"]
    old, new = rows(original, "kv"), rows(dest, "kv")
    assert all(old[rowid] == row for rowid, row in new.items())  # no garbage, nothing altered
    assert kv.recovered == len(new) >= 0.9 * KV_ROWS
    assert kv.lost is not None and kv.recovered + kv.lost == KV_ROWS
    assert kv.lost > 0 and kv.unreadable_ranges
    assert set(old) - set(new) == on_bad_pages  # every row on an intact page is recovered
    assert all(any(a <= m <= b for a, b in kv.unreadable_ranges) for m in on_bad_pages)
    for name in ("events", "projects", "quality_metrics", "jobs", "ignored_paths"):
        assert rows(dest, name) == rows(original, name), name
        assert by_table(report)[name].lost == 0
    assert report.recovered_rows == sum(t.recovered for t in report.tables)
    assert report.lost_rows == kv.lost and report.schema_version == migrations.load()[-1].version

    conn = check_new_file(dest)
    ledger = "SELECT version, name, sha256, applied_at FROM schema_migrations ORDER BY version"
    old_conn = sqlite3.connect(f"{original.as_uri()}?mode=ro&immutable=1", uri=True)
    assert conn.execute(ledger).fetchall() == old_conn.execute(ledger).fetchall()
    old_conn.close()
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()[0]
    assert seq == EVENTS
    conn.execute("INSERT INTO events (ts, topic, type) VALUES ('t', 'kv', 'kv.set')")
    assert conn.execute("SELECT max(seq) FROM events").fetchone()[0] == EVENTS + 1
    conn.close()


def test_a_damaged_index_loses_no_rows(copy: Path, original: Path) -> None:
    index = pages(copy, "sqlite_autoindex_kv_1")
    smash(copy, [index[len(index) // 2], index[-1]])
    assert damaged(str(copy))
    dest = copy.parent / "recovered.db"
    report = recover(str(copy), str(dest), migrations.load())
    assert rows(dest, "kv") == rows(original, "kv")
    assert report.lost_rows == 0 and all(not t.unreadable_ranges for t in report.tables)
    check_new_file(dest).close()


def test_children_of_lost_rows_follow_on_delete(copy: Path, original: Path) -> None:
    """quality_metrics (ON DELETE CASCADE) are removed as orphans; jobs and worktree_of
    (ON DELETE SET NULL) are kept with the reference cleared."""
    leaves = pages(copy, "projects")
    assert len(leaves) > 2
    on_bad_page = rowids_on(copy, [leaves[len(leaves) // 2]])
    smash(copy, [leaves[len(leaves) // 2]])
    dest = copy.parent / "recovered.db"
    report = recover(str(copy), str(dest), migrations.load())
    tables = by_table(report)

    kept = rows(dest, "projects")
    lost = set(rows(original, "projects")) - set(kept)
    assert lost == on_bad_page and tables["projects"].lost == len(lost)
    metrics = tables["quality_metrics"]
    assert metrics.orphaned == metrics.lost == 2 * len(lost)
    assert metrics.recovered == 2 * PROJECTS - metrics.orphaned
    assert all(row[1] in kept for row in rows(dest, "quality_metrics").values())  # project_id
    jobs = rows(dest, "jobs")
    assert len(jobs) == PROJECTS and tables["jobs"].lost == 0 and tables["jobs"].orphaned == 0
    assert sum(row[4] is None for row in jobs.values()) == len(lost)  # project_id
    worktree_of = {pid: row[25] for pid, row in kept.items()}
    assert all(parent is None or parent in kept for parent in worktree_of.values())
    assert any("set to NULL" in note for note in report.notes)
    assert report.lost_rows == len(lost) + metrics.orphaned
    check_new_file(dest).close()


def test_a_lost_tail_keeps_the_event_sequence(copy: Path, original: Path) -> None:
    """The last events page is gone, so max(seq) cannot be read: the index bounds the search
    and the sequence continues after the damaged file's high-water mark."""
    last = pages(copy, "events")[-1]
    on_bad_page = rowids_on(copy, [last])
    smash(copy, [last])
    dest = copy.parent / "recovered.db"
    report = recover(str(copy), str(dest), migrations.load())
    events = by_table(report)["events"]
    old, new = rows(original, "events"), rows(dest, "events")
    assert new and all(old[seq] == row for seq, row in new.items())
    assert set(old) - set(new) == on_bad_page and events.lost == len(on_bad_page)
    assert events.unreadable_ranges[-1][1] == EVENTS_KEPT
    conn = check_new_file(dest)
    assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone() == (
        EVENTS,
    )
    conn.close()


def test_an_unreadable_sequence_continues_from_the_highest_seq(copy: Path) -> None:
    smash(copy, pages(copy, "sqlite_sequence"))
    dest = copy.parent / "recovered.db"
    report = recover(str(copy), str(dest), migrations.load())
    assert any("sqlite_sequence is unreadable" in note for note in report.notes)
    conn = check_new_file(dest)
    # The deleted events' numbers were only in the lost page: the best floor is max(seq).
    assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone() == (
        EVENTS_KEPT,
    )
    conn.close()


def test_sparse_rowids_are_searched_between_rows(tmp_path: Path) -> None:
    """Rowids spread over 2**60: a damaged page spans a huge rowid range, which is searched
    down to the gap between rows, not to single rowids."""
    path = tmp_path / "pm.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrations.migrate(conn, migrations.load())
    ids = random.Random(4).sample(range(1, 2**60), 5000)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO kv (id, namespace, key, value, created_at, updated_at) "
        "VALUES (?, 'ns', ?, '1', 't', 't')",
        [(i, f"k{i}") for i in ids],
    )
    conn.execute("COMMIT")
    conn.close()
    leaves = pages(path, "kv")
    bad = [leaves[len(leaves) // 3], leaves[2 * len(leaves) // 3]]
    on_bad_pages = rowids_on(path, bad)
    smash(path, bad)
    dest = tmp_path / "recovered.db"
    started = time.perf_counter()
    report = recover(str(path), str(dest), migrations.load())
    assert time.perf_counter() - started < 3
    kv = by_table(report)["kv"]
    new = rows(dest, "kv")
    assert set(new) <= set(ids) and set(ids) - set(new) == on_bad_pages
    assert kv.lost == len(ids) - len(new) and len(kv.unreadable_ranges) == 2
    missing = set(ids) - set(new)
    assert all(any(a <= m <= b for a, b in kv.unreadable_ranges) for m in missing)


def test_unbounded_damage_is_probed_and_stays_fast(copy: Path, original: Path) -> None:
    """The last kv page and every leaf of its index are damaged: neither max(rowid) nor an
    index can bound the table, so reading probes upward and reports what it could not read."""
    last = pages(copy, "kv")[-1]
    on_bad_page = rowids_on(copy, [last])
    smash(copy, [last, *pages(copy, "sqlite_autoindex_kv_1"), *pages(copy, "kv_uid")])
    dest = copy.parent / "recovered.db"
    started = time.perf_counter()
    report = recover(str(copy), str(dest), migrations.load())
    assert time.perf_counter() - started < 5
    kv = by_table(report)["kv"]
    old, new = rows(original, "kv"), rows(dest, "kv")
    assert all(old[rowid] == row for rowid, row in new.items())
    assert set(old) - set(new) == on_bad_page and kv.lost is None and report.lost_rows is None
    assert kv.unreadable_ranges[-1][1] == MAX_ROWID
    assert all(any(a <= m <= b for a, b in kv.unreadable_ranges) for m in set(old) - set(new))
    check_new_file(dest).close()


def test_an_unreadable_ledger_assumes_the_newest_schema(copy: Path, original: Path) -> None:
    smash(copy, pages(copy, "schema_migrations"))
    dest = copy.parent / "recovered.db"
    shipped = migrations.load()
    report = recover(str(copy), str(dest), shipped)
    assert report.schema_version == shipped[-1].version
    assert any("ledger is unreadable" in note for note in report.notes)
    assert report.lost_rows == 0
    conn = check_new_file(dest)
    assert migrations.pending(conn, shipped) == []
    conn.close()


def test_a_healthy_file_is_copied_whole(copy: Path, original: Path) -> None:
    assert damaged(str(copy)) == []
    dest = copy.parent / "recovered.db"
    report = recover(str(copy), str(dest), migrations.load())
    assert report.lost_rows == 0 and report.notes == []
    assert all(t.lost == 0 and not t.unreadable_ranges for t in report.tables)
    for table in ("kv", "events", "projects", "quality_metrics", "jobs", "ignored_paths"):
        assert rows(dest, table) == rows(original, table)
    check_new_file(dest).close()


def test_rows_still_in_the_wal_are_recovered(copy: Path, tmp_path: Path) -> None:
    """A crash leaves committed rows in the -wal only; they are read, and nothing changes."""
    writer = sqlite3.connect(copy, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute(
        "INSERT INTO kv (namespace, key, value, created_at, updated_at) "
        "VALUES ('ns', 'late', '1', 't', 't')"
    )
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    for suffix in ("", "-wal"):
        shutil.copyfile(f"{copy}{suffix}", crashed / f"pm.db{suffix}")
    writer.close()
    before = sha(crashed / "pm.db"), sha(crashed / "pm.db-wal")
    dest = tmp_path / "recovered.db"
    report = recover(str(crashed / "pm.db"), str(dest), migrations.load())
    assert (sha(crashed / "pm.db"), sha(crashed / "pm.db-wal")) == before
    assert by_table(report)["kv"].recovered == KV_ROWS + 1


@pytest.mark.parametrize("kind", ["page one", "random bytes", "missing", "no tables"])
def test_nothing_to_recover_is_an_error(tmp_path: Path, original: Path, kind: str) -> None:
    path = tmp_path / "pm.db"
    if kind == "page one":
        shutil.copyfile(original, path)
        with open(path, "r+b") as f:
            f.write(random.Random(2).randbytes(4096))
    elif kind == "random bytes":
        path.write_bytes(random.Random(3).randbytes(64 * 1024))
    elif kind == "no tables":
        path.write_bytes(b"")
    dest = tmp_path / "recovered.db"
    expected = {
        "page one": "not a database",
        "random bytes": "not a database",
        "missing": "no such file",
        "no tables": "holds no tables",
    }[kind]
    with pytest.raises(SalvageError, match=expected) as caught:
        recover(str(path), str(dest), migrations.load())
    assert "nothing can be recovered" in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == (["pm.db"] if kind != "missing" else [])
    problems = damaged(str(path))
    if kind == "no tables":
        assert problems == []  # an empty database is not a damaged one
    else:
        assert len(problems) == 1 and expected in problems[0]


def test_an_existing_destination_is_refused(copy: Path) -> None:
    dest = copy.parent / "taken.db"
    dest.write_bytes(b"keep me")
    with pytest.raises(SalvageError, match="already exists"):
        recover(str(copy), str(dest), migrations.load())
    assert dest.read_bytes() == b"keep me"
