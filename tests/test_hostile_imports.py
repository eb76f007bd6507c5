"""Imports are data, not instructions (issue 12 §3, issue 13 §4): hostile exports made here,
imported into a real daemon. Nothing outside the data folder and the Dev root is read,
created, changed or deleted because of them; a row that would break a method for everyone is
refused with an invalid-params error naming the file, the table and the row; the daemon stays
up, answers, and its memory stays bounded."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from client.errors import RemoteError
from tests.conftest import DaemonFactory
from tests.gitrepos import git
from tests.helpers import REPO, DaemonProcess
from tests.test_cli import Cli

SECRET = "pm-SECRET-5b0c-imported-never-read"
OFF = ("backup", "quality", "maintenance", "retention")
QUIET = {"watch": False, "rescan_interval_s": 0, "schedule": {k: "off" for k in OFF}}
Doc = dict[str, Any]


# --- helpers ------------------------------------------------------------------------------------
def canaries(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry below `folder`, links not followed: path → (mode, content of a file)."""
    found: dict[str, tuple[int, bytes | None]] = {}
    for top, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = os.path.join(top, name)
            st = os.lstat(path)
            content = Path(path).read_bytes() if os.path.isfile(path) and name in files else None
            found[os.path.relpath(path, folder)] = (st.st_mode, content)
    return found


def holding(folder: Path, needle: str) -> list[str]:
    """Regular files below `folder` whose bytes hold `needle`."""
    return [
        os.path.join(top, name)
        for top, _, files in os.walk(folder)
        for name in files
        if os.path.isfile(os.path.join(top, name))
        and not os.path.islink(os.path.join(top, name))
        and needle.encode() in Path(top, name).read_bytes()
    ]


def rss_anon_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc status")


def peak_growth_mib(pid: int, action: Callable[[], Any]) -> tuple[Any, float]:
    """`action()`, and how far the daemon's anonymous memory rose above where it started
    while it ran (sampled every few milliseconds; file pages of a mapped export not counted)."""
    start = peak = rss_anon_kib(pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_anon_kib(pid))
            time.sleep(0.003)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = action()
    finally:
        done.set()
        sampler.join()
    return result, (max(peak, rss_anon_kib(pid)) - start) / 1024


def import_error(d: DaemonProcess, path: Path, timeout: float = 30) -> RemoteError:
    """db.import of `path`, which must fail within `timeout` seconds (a hang fails the test)."""
    outcome: list[BaseException | Any] = []

    def run() -> None:
        try:
            outcome.append(d.call("db.import", {"path": str(path)}))
        except BaseException as e:  # handed to the test thread
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    assert outcome, f"db.import of {path} did not answer within {timeout} s"
    error = outcome[0]
    assert isinstance(error, RemoteError), f"db.import of {path} succeeded: {error}"
    return error


class World:
    """A quiet daemon, an `outside` folder of canaries beside it, and a real export to edit."""

    def __init__(self, d: DaemonProcess, outside: Path) -> None:
        self.d = d
        self.outside = outside

    def export(self) -> Doc:
        made = self.d.call("db.export", {"format": "json"})
        doc: Doc = json.loads(Path(made["path"]).read_text())
        return doc

    def write(self, doc: Doc, name: str = "hostile.json") -> Path:
        path = self.d.dev_root / name
        path.write_text(json.dumps(doc))
        return path

    def untouched(self, before: dict[str, tuple[int, bytes | None]]) -> None:
        assert canaries(self.outside) == before, "something outside changed"

    def still_serves(self) -> None:
        """Every list method answers for everyone, and a write goes through."""
        with self.d.client() as c:
            for method in ("jobs.list", "projects.list", "kv.list", "events.list",
                           "db.backups", "db.health"):  # fmt: skip
                c.call(method, {})
            c.call("kv.set", {"namespace": "after", "key": "k", "value": 1})


def table(doc: Doc, name: str) -> tuple[list[str], list[list[Any]]]:
    t = doc["tables"][name]
    return t["columns"], t["rows"]


def set_value(doc: Doc, name: str, row: int, column: str, value: Any) -> None:
    columns, rows = table(doc, name)
    rows[row][columns.index(column)] = value


@pytest.fixture
def world(make_daemon: DaemonFactory, tmp_path: Path) -> Iterator[World]:
    d = make_daemon("w", config=QUIET)
    (d.dev_root / "mine").mkdir(parents=True)
    (d.dev_root / "mine" / "package.json").write_text('{"name": "mine", "description": "ok"}')
    outside = tmp_path / "outside"
    (outside / "reg").mkdir(parents=True)
    (outside / "reg" / "package.json").write_text(json.dumps({"description": SECRET}))
    (outside / "reg" / "README.md").write_text(f"# Reg\n\n{SECRET} in a readme paragraph.\n")
    (outside / "victim.txt").write_text("keep me\n")
    (outside / "victim.txt").chmod(0o644)
    (outside / "folder").mkdir(mode=0o755)
    (outside / "folder").chmod(0o755)
    d.start()
    yield World(d, outside)
    d.stop()


# --- jobs: output paths are derived, never trusted -----------------------------------------------
@pytest.mark.parametrize("target", ["victim", "db-file", "folder", "relative", "own-link"])
def test_an_imported_output_path_is_never_deleted(world: World, target: str) -> None:
    d, outside = world.d, world.outside
    job = d.call("jobs.record", {"kind": "agent.call", "response": "small"})
    doc = world.export()
    given = {
        "victim": str(outside / "victim.txt"),  # the example
        "db-file": str(d.db_path),  # the daemon's own database
        "folder": str(outside / "folder"),
        "relative": "../../outside/victim.txt",
        "own-link": str(d.data_dir / "jobs" / f"{job['id']}.out"),  # a link planted there
    }[target]
    set_value(doc, "jobs", 0, "output_path", given)
    set_value(doc, "jobs", 0, "response", None)
    path = world.write(doc)
    d.call("db.import", {"path": str(path)})
    if target == "own-link":
        (d.data_dir / "jobs").mkdir(mode=0o700, exist_ok=True)
        os.symlink(outside / "victim.txt", d.data_dir / "jobs" / f"{job['id']}.out")
    before = canaries(outside)
    db_inode = d.db_path.stat().st_ino
    shown = d.call("jobs.get", {"id": job["id"]})
    assert shown["output_path"] == str(d.data_dir / "jobs" / f"{job['id']}.out"), (
        "the path shown is derived from the id, not the one stored"
    )
    listed = d.call("jobs.list", {})["items"][0]["output_path"]
    assert listed == shown["output_path"]
    d.call("jobs.update", {"id": job["id"], "response": "replaced inline"})
    world.untouched(before)
    assert d.db_path.stat().st_ino == db_inode, "the live database was deleted"
    assert d.call("jobs.get", {"id": job["id"]})["response"] == "replaced inline"
    if target == "own-link":
        assert (d.data_dir / "jobs" / f"{job['id']}.out").is_symlink(), "a link is left alone"
    world.still_serves()


def test_a_real_output_file_is_still_replaced_and_removed(world: World) -> None:
    """The file the daemon made itself is removed when the response goes back inline."""
    d = world.d
    job = d.call("jobs.record", {"kind": "agent.call", "response": "x" * 100_000})
    out = Path(job["output_path"])
    assert out == d.data_dir / "jobs" / f"{job['id']}.out" and out.read_text() == "x" * 100_000
    d.call("jobs.update", {"id": job["id"], "response": "short"})
    assert not out.exists()


# --- projects: an imported folder outside the Dev root is not read until confirmed --------------
def forget_identity(doc: Doc) -> None:
    """The row no longer looks like the folder it was exported from (as a row made on another
    machine, or by hand): the scan cannot take it for that folder moved."""
    for column in ("identity", "device", "inode", "fingerprint"):
        set_value(doc, "projects", 0, column, None)


@pytest.mark.parametrize("how", ["registered", "discovered", "linked", "dotdot"])
def test_an_imported_project_outside_the_root_is_not_read(world: World, how: str) -> None:
    d, outside = world.d, world.outside
    if how == "linked":  # under the root by name, outside once the link is resolved
        (d.dev_root / "link").symlink_to(outside / "reg", target_is_directory=True)
    d.call("projects.scan", {})
    doc = world.export()
    assert len(table(doc, "projects")[1]) == 1
    path = {
        "registered": str(outside / "reg"),
        "discovered": str(outside / "reg"),
        "linked": str(d.dev_root / "link"),
        "dotdot": f"{d.dev_root}/../outside/reg",
    }[how]
    set_value(doc, "projects", 0, "path", path)
    set_value(doc, "projects", 0, "source", "discovered" if how == "discovered" else "registered")
    forget_identity(doc)
    before = canaries(outside)
    d.call("db.import", {"path": str(world.write(doc))})
    with d.client() as c:
        c.call("projects.scan", {})
        c.call("quality.scan", {})
        listed = c.call("projects.list", {"include_missing": True})["items"]
        project = next(p for p in listed if p["path"] == path)
        assert project["present"] is False
        assert "pm project register" in project["scan_error"]
        c.call("projects.scan", {"project": project["id"]})  # asked for by id: still not read
        c.call("db.backup", {})
    world.untouched(before)
    assert holding(d.data_dir, SECRET) == [], "a file outside was read and stored"
    world.still_serves()


def test_an_unconfirmed_project_is_not_even_opened(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """Not read means not opened: the daemon lists no folder and opens no file there, through
    scans of everything and of that project (seen by audit hooks, tests/audited_daemon.py)."""
    outside = tmp_path / "outside"
    (outside / "reg").mkdir(parents=True)
    (outside / "reg" / "package.json").write_text(json.dumps({"description": SECRET}))
    git(outside / "reg", "init", "-q")
    seen = tmp_path / "opened.log"
    d = make_daemon(
        "audited",
        config=QUIET,
        argv=[sys.executable, str(REPO / "tests" / "audited_daemon.py")],
        env={"PM_TEST_AUDIT_PREFIX": str(outside), "PM_TEST_AUDIT_LOG": str(seen)},
    )
    (d.dev_root / "mine").mkdir(parents=True)
    (d.dev_root / "mine" / "package.json").write_text('{"name": "mine"}')
    d.start()
    d.call("projects.scan", {})
    doc = World(d, outside).export()
    set_value(doc, "projects", 0, "path", str(outside / "reg"))
    set_value(doc, "projects", 0, "source", "registered")
    forget_identity(doc)
    d.call("db.import", {"path": str(World(d, outside).write(doc))})
    with d.client() as c:
        c.call("projects.scan", {})
        project = c.call("projects.get", {"project": str(outside / "reg")})
        c.call("projects.scan", {"project": project["id"]})
        c.call("quality.scan", {})
    assert not seen.exists(), seen.read_text()
    d.call("projects.register", {"path": str(outside / "reg")})  # confirmed: now it is read
    assert f"{outside / 'reg'}" in seen.read_text()


def test_pm_project_register_confirms_an_imported_project(world: World) -> None:
    d, outside = world.d, world.outside
    d.call("projects.scan", {})
    doc = world.export()
    set_value(doc, "projects", 0, "path", str(outside / "reg"))
    set_value(doc, "projects", 0, "source", "registered")
    forget_identity(doc)
    d.call("db.import", {"path": str(world.write(doc))})
    d.call("projects.scan", {})
    assert d.call("projects.get", {"project": str(outside / "reg")})["present"] is False
    confirmed = d.call("projects.register", {"path": str(outside / "reg")})
    assert confirmed["present"] is True and confirmed["description"] == SECRET
    d.call("projects.scan", {})
    assert d.call("projects.get", {"project": str(outside / "reg")})["present"] is True


# --- rows that parse but would break methods for everyone ----------------------------------------
def nested(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


@pytest.mark.parametrize(
    ("case", "table_name", "column", "value", "says"),
    [
        ("metadata nested 990 levels", "jobs", "metadata", nested(990), "nests 990 levels"),
        ("metadata one level too deep", "jobs", "metadata", nested(65), "nests 65 levels"),
        ("metadata over its size", "jobs", "metadata", '{"a":"' + "x" * 300_000 + '"}', "bytes"),
        ("an inline response over 64 KiB", "jobs", "response", "r" * 70_000, "kept in a file"),
        ("an error over its length", "jobs", "error", "e" * 100_001, "characters"),
        ("attempts as text", "jobs", "attempts", "many", "read it back"),
        ("languages of the wrong shape", "projects", "languages", '"python"', "read it back"),
        ("remotes of the wrong shape", "projects", "remotes", '[{"x": 1}]', "read it back"),
        ("a kv value just over 1 MiB", "kv", "value", '"' + "v" * (1 << 20) + '"', "kv.set"),
        ("a project name over its length", "projects", "name", "n" * 300, "read it back"),
        ("a hand-set field that is no field", "projects", "user_set", '["bogus"]', "read it back"),
    ],
)
def test_a_row_no_method_could_serve_is_refused(
    world: World, case: str, table_name: str, column: str, value: str, says: str
) -> None:
    d = world.d
    d.call("jobs.record", {"kind": "agent.call", "metadata": {"ok": 1}})
    d.call("kv.set", {"namespace": "n", "key": "k", "value": 1})
    d.call("projects.scan", {})
    doc = world.export()
    set_value(doc, table_name, 0, column, value)
    path = world.write(doc)
    error = import_error(d, path)
    assert error.kind == "invalid_params", (case, error.message)
    assert str(path) in error.message and f"table {table_name!r}" in error.message, error.message
    assert ("row 1" in error.message or "id " in error.message) and says in error.message, (
        error.message
    )
    assert "nothing changed" in error.message
    world.still_serves()
    assert d.call("jobs.list", {})["items"][0]["metadata"] == {"ok": 1}


def test_the_api_and_the_import_hold_metadata_to_one_depth(world: World) -> None:
    """What jobs.record accepts, an import accepts, and the other way round."""
    d = world.d
    deepest = json.loads(nested(64))
    d.call("jobs.record", {"kind": "deep", "metadata": deepest})
    error = d.call_error("jobs.record", {"kind": "deep", "metadata": json.loads(nested(65))})
    assert error.kind == "invalid_params" and "65 levels" in error.message
    d.call("db.import", {"path": str(world.write(world.export()))})
    assert d.call("jobs.list", {"kind": "deep"})["items"][0]["metadata"] == deepest


def test_the_read_path_survives_deep_metadata_it_did_not_import(world: World) -> None:
    """A backup restored with such a row (backups are not imports: they are swapped in as they
    are): jobs.get and jobs.list still answer, with a note in place of the metadata, instead
    of an internal error with "id": null."""
    d = world.d
    job = d.call("jobs.record", {"kind": "agent.call", "metadata": {"ok": 1}})
    made = d.call("db.backup")
    conn = sqlite3.connect(made["path"])
    with conn:
        conn.execute("UPDATE jobs SET metadata = ?", (nested(990),))
    conn.close()
    d.call("db.restore", {"name": made["name"]})
    shown = d.call("jobs.get", {"id": job["id"]})
    assert "990 levels" in shown["metadata"]["unreadable"]
    assert d.call("jobs.list", {})["items"][0]["metadata"] == shown["metadata"]
    world.still_serves()


def big_value_export(world: World, table_name: str, column: str, size: int, name: str) -> Path:
    """The export with one value of `size` bytes, written without holding it in memory twice."""
    doc = world.export()
    set_value(doc, table_name, 0, column, "@@BIG@@")
    head, tail = json.dumps(doc).split('"@@BIG@@"')
    path = world.d.dev_root / name
    with open(path, "w") as f:
        f.write(head)
        if column == "value":  # kv.value is JSON text: a JSON string holding a JSON string
            f.write('"\\"')
            chunk = "v" * (1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
            f.write('\\""')
        else:
            f.write('"{\\"blob\\": \\"')
            chunk = "d" * (1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
            f.write('\\"}"')
        f.write(tail)
    return path


@pytest.mark.parametrize(
    ("table_name", "column", "mib"), [("events", "data", 50), ("kv", "value", 200)]
)
def test_huge_values_are_refused_in_bounded_memory(
    world: World, table_name: str, column: str, mib: int
) -> None:
    """The issue's 50 MB event and 200 MB kv value: refused by size before they are decoded
    (the daemon's anonymous memory grows by far less than the value)."""
    d = world.d
    d.call("kv.set", {"namespace": "n", "key": "k", "value": 1})
    path = big_value_export(world, table_name, column, mib << 20, f"big-{table_name}.json")
    pid = d.status()["pid"]  # type: ignore[index]
    started = time.monotonic()
    error, grown = peak_growth_mib(pid, lambda: import_error(d, path, timeout=60))
    assert error.kind == "invalid_params", error.message
    assert f"table {table_name!r}" in error.message and "over" in error.message
    assert grown < min(mib, 100), f"memory grew by {grown:.0f} MiB for a {mib} MiB value"
    assert time.monotonic() - started < 30
    world.still_serves()


def test_a_huge_csv_field_is_refused_in_bounded_memory(world: World) -> None:
    """A 400 MB field: the CSV reader stops at the largest field the table allows; the memory
    that costs depends on the limits, not on the field."""
    d = world.d
    d.call("kv.set", {"namespace": "n", "key": "k", "value": 1})
    folder = Path(d.call("db.export", {"format": "csv"})["path"])
    kv_csv = folder / "kv.csv"
    lines = kv_csv.read_text().splitlines()
    header, row = lines[0], lines[1].split(",")
    value = header.split(",").index("value")
    with open(kv_csv, "w") as f:
        f.write(header + "\n" + ",".join(row[:value]) + (',"' if value else '"'))
        chunk = "v" * (1 << 20)
        for _ in range(400):
            f.write(chunk)
        f.write('"' + "".join("," + v for v in row[value + 1 :]) + "\n")
    target = d.dev_root / "big-csv"
    os.rename(folder, target)
    pid = d.status()["pid"]  # type: ignore[index]
    error, grown = peak_growth_mib(pid, lambda: import_error(d, target, timeout=60))
    assert error.kind == "invalid_params" and "table 'kv'" in error.message, error.message
    assert grown < 200, f"memory grew by {grown:.0f} MiB for a 400 MiB field"
    world.still_serves()


# --- files that are not files, and nesting --------------------------------------------------------
SPECIAL: dict[str, Callable[[Path], None]] = {
    "fifo": os.mkfifo,
    "dev-zero": lambda p: p.symlink_to("/dev/zero"),
    "link-out": lambda p: p.symlink_to(Path(p).parents[2] / "outside" / "victim.txt"),
}


@pytest.mark.parametrize("kind", sorted(SPECIAL))
@pytest.mark.parametrize("member", ["manifest.json", "kv.csv"])
def test_a_csv_export_of_special_files_never_hangs(world: World, kind: str, member: str) -> None:
    """The issue's FIFO manifest.json, and its cousins: refused at once, nothing read."""
    d = world.d
    folder = Path(d.call("db.export", {"format": "csv"})["path"])
    target = d.dev_root / "special-csv"
    os.rename(folder, target)
    (target / member).unlink()
    SPECIAL[kind](target / member)
    before = canaries(world.outside)
    error = import_error(d, target, timeout=20)
    assert error.kind == "invalid_params" and str(target) in error.message, error.message
    world.untouched(before)
    world.still_serves()


@pytest.mark.parametrize("kind", sorted(SPECIAL))
def test_a_json_export_that_is_not_a_file_never_hangs(world: World, kind: str) -> None:
    d = world.d
    target = d.dev_root / "special.json"
    SPECIAL[kind](target)
    error = import_error(d, target, timeout=20)
    assert error.kind in ("invalid_params", "forbidden", "not_found"), error.message
    world.still_serves()


@pytest.mark.parametrize("where", ["header", "row", "value", "manifest"])
def test_a_deeply_nested_export_is_invalid_params(world: World, where: str) -> None:
    """13 §4: an export nested deeper than any decoder goes is an invalid-params error, not an
    internal error with a RecursionError in the log."""
    d = world.d
    deep = "[" * 200_000 + "]" * 200_000
    if where == "manifest":
        folder = Path(d.call("db.export", {"format": "csv"})["path"])
        path = d.dev_root / "deep-csv"
        os.rename(folder, path)
        manifest = json.loads((path / "manifest.json").read_text())
        text = json.dumps(manifest).replace('"sequences"', f'"extra": {deep}, "sequences"', 1)
        (path / "manifest.json").write_text(text)
    else:
        doc = world.export()
        if where == "header":
            text = json.dumps(doc).replace('"tables"', f'"extra": {deep}, "tables"', 1)
        elif where == "row":
            doc["tables"]["kv"]["rows"] = ["@@DEEP@@"]
            text = json.dumps(doc).replace('"@@DEEP@@"', deep)
        else:
            doc["tables"]["kv"]["rows"] = [["@@DEEP@@"] * len(doc["tables"]["kv"]["columns"])]
            text = json.dumps(doc).replace('"@@DEEP@@"', deep, 1)
        path = d.dev_root / "deep.json"
        path.write_text(text)
    error = import_error(d, path)
    assert error.kind == "invalid_params" and error.code == -32602, error.message
    assert str(path) in error.message and "deep" in error.message, error.message
    assert "RecursionError" not in d.log()
    world.still_serves()


def test_import_errors_name_the_file_the_user_gave(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """13 §4: `pm db import` hands the daemon a copy in <data>/imports; its errors still name
    the user's file, and the copy is gone afterwards."""
    d = make_daemon(config=QUIET).start()
    cli = Cli(d)
    given = tmp_path / "mine.json"
    doc = json.loads(Path(d.call("db.export", {"format": "json"})["path"]).read_text())
    doc["tables"]["kv"]["rows"] = ["@@DEEP@@"]
    given.write_text(json.dumps(doc).replace('"@@DEEP@@"', "[" * 100_000 + "]" * 100_000))
    done = cli.run("db", "import", str(given))
    assert done.returncode == 1
    assert str(given) in done.stderr and "imports" not in done.stderr, done.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "pm-agent-export", "format_version": 1')
    done = cli.run("db", "import", str(broken))
    assert done.returncode == 1 and str(broken) in done.stderr and "imports/" not in done.stderr
    assert os.listdir(d.data_dir / "imports") == []
    d.stop()
