"""Security (issue 7, item 6), against real daemons in temp worlds.

Covered elsewhere and not repeated here: a peer of another uid is refused
(test_lifecycle.py::test_a_peer_of_another_uid_is_refused), a socket folder with group/other
access or of another user is refused at start (test_an_insecure_socket_dir_is_refused,
test_a_socket_dir_of_another_user_is_refused), the socket is 0600 in a 0700 folder
(test_files_and_folders_are_private).

Here: no path sent over RPC reaches outside the Dev root, the data folder or a registered
folder (symlinks included); every string field of every method is inert as SQL; every file the
daemon writes is 0600 in a 0700 folder whatever the umask; credentials in git remotes and
secrets in a project's files end up in no row, export, event, job or log line.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import daemon.domain.modules  # noqa: F401  (declares every domain table)
from client.errors import RemoteError
from client.sync import Client
from daemon.store.connection import quote
from daemon.store.table import tables
from tests.conftest import DaemonFactory
from tests.gitrepos import git, make_repo
from tests.helpers import DaemonProcess, wait_for

PM = str(Path(sys.executable).parent / "pm")
SECRET = "pm-SECRET-31f7c2a9-never-stored"
QUIET = {"watch": False, "schedule": {k: "off" for k in ("backup", "quality", "maintenance",
                                                           "retention")}}  # fmt: skip


# --- helpers ----------------------------------------------------------------------------------
def tree(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry below `folder`, links not followed: relative path → (mode, size, mtime)."""
    found: dict[str, tuple[int, int, int]] = {}
    for top, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = os.path.join(top, name)
            st = os.lstat(path)
            found[os.path.relpath(path, folder)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


def files_holding(folder: Path, needles: list[str]) -> dict[str, list[str]]:
    """Regular files below `folder` (links not followed) → the needles their bytes contain."""
    hits: dict[str, list[str]] = {}
    for top, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(top, name)
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            data = Path(path).read_bytes()
            found = [n for n in needles if n.encode() in data]
            if found:
                hits[path] = found
    return hits


def error_of(client: Client, method: str, params: dict[str, Any]) -> RemoteError:
    try:
        result = client.call(method, params)
    except RemoteError as e:
        return e
    raise AssertionError(f"{method} {params} succeeded: {result}")


def finished(c: Client, job_id: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = c.call("jobs.get", {"id": job_id})
        return job if job["status"] in ("completed", "failed", "canceled") else None

    result: dict[str, Any] = wait_for(done, 20, f"job {job_id} to finish")
    return result


def table_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


class TableStates:
    """What each table holds, cheap enough to read after every call: (row count, digest). A
    table whose rows the layer versions is digested by its version total and newest change
    (an insert, delete or update through the table layer moves them); any other by all it
    holds. (A versioned row changed without a version bump — positions, archive flags, an
    episode's access count — shows only if its count changes.) Nothing is read again until
    another connection commits (`PRAGMA data_version` says so)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._digests: dict[str, str] = {}
        self._last: tuple[int, dict[str, tuple[int, int]]] | None = None

    def _digest(self, name: str) -> str:
        if name not in self._digests:
            columns = {r[1] for r in self.conn.execute(f"PRAGMA table_info({quote(name)})")}
            if name == "events":  # every write adds to it: counted only
                what = "NULL"
            elif {"version", "updated_at"} <= columns:
                what = "json_array(total(version), max(updated_at))"
            else:
                values = ", ".join(f"quote({quote(c)})" for c in sorted(columns))  # blobs too
                what = f"json_group_array(json_array({values}))"
            self._digests[name] = f"SELECT count(*), {what} FROM {quote(name)}"
        return self._digests[name]

    def read(self) -> dict[str, tuple[int, int]]:
        (version,) = self.conn.execute("PRAGMA data_version").fetchone()
        if self._last is not None and self._last[0] == version:
            return self._last[1]
        names = [
            r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        out = {}
        for name in names:
            count, digest = self.conn.execute(self._digest(name)).fetchone()
            out[name] = (int(count), hash(digest))
        self._last = (version, out)
        return out


def schema_of(conn: sqlite3.Connection) -> list[tuple[str, ...]]:
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
    return [tuple(r) for r in rows]


def read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)


# --- 1. paths over RPC --------------------------------------------------------------------------
@pytest.fixture
def world(make_daemon: DaemonFactory, tmp_path: Path) -> Iterator[tuple[DaemonProcess, Path]]:
    """A daemon whose Dev root holds links to `outside`, a folder of secrets beside it."""
    d = make_daemon("w", config=QUIET)
    outside = tmp_path / "outside"
    (outside / "reg").mkdir(parents=True)
    (outside / "secret.txt").write_text(SECRET + "\n")
    (outside / "README.md").write_text(f"# Secret\n\n{SECRET} readme paragraph.\n")
    (outside / "package.json").write_text(json.dumps({"name": "s", "description": SECRET}))
    (outside / "reg" / "package.json").write_text('{"name": "reg"}')
    (outside / "reg" / "README.md").symlink_to(outside / "README.md")  # out of the folder
    (d.home / ".ssh").mkdir(parents=True)
    (d.home / ".ssh" / "id_secret").write_text(SECRET)
    proj = make_repo(d.dev_root / "proj", home=d.home)
    (proj / "README.md").unlink()
    (proj / "README.md").symlink_to(outside / "README.md")
    (proj / "package.json").symlink_to(outside / "package.json")
    inner = make_repo(d.dev_root / "inner", home=d.home, files={"docs/README.md": "# I\n\nInside "
                      "the project, through a link.\n"})  # fmt: skip
    (inner / "README.md").symlink_to(inner / "docs" / "README.md")  # a link inside: followed
    (d.dev_root / "linked").symlink_to(outside, target_is_directory=True)
    (d.dev_root / "group" / "fresh").mkdir(parents=True)
    (d.dev_root / "group" / "fresh" / "package.json").write_text('{"name": "fresh"}')
    d.start()
    yield d, outside
    d.stop()


def plant_exports(d: DaemonProcess, outside: Path) -> dict[str, str]:
    """Importable exports and a restorable backup that hold SECRET, outside the allowed
    folders, and links to them from inside the data folder and the Dev root."""
    d.call("kv.set", {"namespace": "n", "key": "k", "value": "PLACEHOLDER"})
    made = d.call("db.backup")
    as_json = Path(d.call("db.export", {"format": "json"})["path"])
    as_csv = Path(d.call("db.export", {"format": "csv"})["path"])
    d.call("kv.delete", {"namespace": "n", "key": "k"})
    (outside / "export.json").write_text(as_json.read_text().replace("PLACEHOLDER", SECRET))
    shutil.copytree(as_csv, outside / "csv")
    kv_csv = outside / "csv" / "kv.csv"
    kv_csv.write_text(kv_csv.read_text().replace("PLACEHOLDER", SECRET))
    old = outside / "pm-agent_20200101_000000.db"
    shutil.copyfile(made["path"], old)
    with sqlite3.connect(old) as conn:
        conn.execute("UPDATE kv SET value = ?", (json.dumps(SECRET),))
    conn.close()
    linked_files = d.data_dir / "imports" / "linked-files"
    linked_files.mkdir(parents=True)
    for member in (outside / "csv").iterdir():
        (linked_files / member.name).symlink_to(member)
    (d.data_dir / "evil.json").symlink_to(outside / "export.json")
    (d.data_dir / "evil-csv").symlink_to(outside / "csv", target_is_directory=True)
    (d.dev_root / "evil.json").symlink_to(outside / "export.json")
    linked_backup = "pm-agent_20200102_000000.db"
    (d.data_dir / "backups" / linked_backup).symlink_to(old)
    return {"backup": old.name, "linked_backup": linked_backup}


def test_no_path_over_rpc_reads_or_writes_outside(
    world: tuple[DaemonProcess, Path], tmp_path: Path
) -> None:
    d, outside = world
    data, dev, home = d.data_dir, d.dev_root, d.home
    names = plant_exports(d, outside)
    before = {p: tree(p) for p in (outside, home, dev)}
    refused: list[tuple[str, str, str]] = []  # (method, what was given, error kind)
    with d.client() as c:
        # db.import: only exports inside the data or Dev folder, links resolved first.
        for path in [
            "outside/export.json", "../outside/export.json",  # relative: refused outright
            f"{data}/../outside/export.json", f"{dev}/../outside/export.json",
            f"{dev}/proj/../../../outside/export.json", str(outside / "export.json"),
            str(outside / "csv"), "/etc/passwd", "/etc", str(home / ".ssh" / "id_secret"),
            f"{data}/evil.json", f"{data}/evil-csv", f"{dev}/evil.json",
            f"{data}/imports/linked-files",  # a real folder of links to files outside
        ]:  # fmt: skip
            e = error_of(c, "db.import", {"path": path})
            refused.append(("db.import", path, e.kind))
        # db.verify and db.restore: bare backup names from the backups folder, nothing else.
        for name in [
            f"../../outside/{names['backup']}", str(outside / names["backup"]),
            f"failed/{names['backup']}", f"{names['backup']}/..", "..", ".", "/etc/passwd",
            f"../backups/{names['backup']}", "pm-agent_20200101_000000.db\x00.txt",
            names["linked_backup"],  # a link in the backups folder to a file outside
        ]:  # fmt: skip
            for method in ("db.verify", "db.restore"):
                e = error_of(c, method, {"name": name})
                refused.append((method, name, e.kind))
        # A project given as a path: only what is known, or a folder really under the root.
        refs = [str(outside), f"{dev}/../outside", f"{dev}/linked", f"{dev}/linked/reg",
                "/etc", str(home), "../outside", "linked"]  # fmt: skip
        for ref in refs:
            for method in ("projects.scan", "projects.get", "projects.forget", "quality.get",
                           "quality.history", "quality.scan", "jobs.list"):  # fmt: skip
                e = error_of(c, method, {"project": ref})
                refused.append((method, ref, e.kind))
            e = error_of(c, "jobs.record", {"kind": "k", "project": ref})
            refused.append(("jobs.record", ref, e.kind))
        for path in ["../outside/reg", "outside/reg", f"{dev}/proj/README.md", "/nonexistent"]:
            e = error_of(c, "projects.register", {"path": path})
            refused.append(("projects.register", path, e.kind))
        # A daemon job given a path: only a known project's.
        for path in [str(outside), f"{dev}/linked", "/etc"]:
            job = c.call("jobs.run", {"kind": "quality_scan", "args": {"project": path}})
            done = finished(c, job["id"])
            assert done["status"] == "completed" and "gone" in (done["response"] or ""), done
        # A real folder under the root is scanned on request (a link in its place was not).
        assert c.call("projects.scan", {"project": f"{dev}/group"})["found"] == 1
        # Registering a folder outside the root is the user's right: it is read, not written,
        # and a link in it to a file elsewhere is not followed.
        registered = c.call("projects.register", {"path": str(outside / "reg")})
        c.call("quality.scan", {"project": registered["id"]})
        c.call("projects.scan")
        c.call("quality.scan")
        projects = c.call("projects.list", {"include_missing": True, "limit": 100})["items"]
        inner = c.call("projects.get", {"project": f"{dev}/inner"})
        c.call("db.export", {"format": "json"})
        c.call("db.export", {"format": "csv"})
        c.call("db.backup")
    wrong = [r for r in refused if r[2] not in ("invalid_params", "forbidden", "not_found")]
    assert not wrong, wrong
    forbidden = [r for r in refused if r[0] == "db.import" and r[2] == "forbidden"]
    assert len(forbidden) >= 10, refused  # absolute paths outside, and links out
    # Only the projects really under the root, and the one registered.
    assert sorted(p["path"] for p in projects) == sorted(
        [f"{dev}/group/fresh", f"{dev}/inner", f"{dev}/proj", str(outside / "reg")]
    )
    assert inner["description"] == "Inside the project, through a link."
    # The secret's content is nowhere: not in the database, its WAL, backups, exports, logs.
    d.stop()
    assert files_holding(data, [SECRET]) == {}
    assert SECRET not in d.log()
    # Nothing was created, changed or removed outside the data folder.
    after = {p: tree(p) for p in (outside, home, dev)}
    for folder, snapshot in before.items():
        assert after[folder] == snapshot, f"{folder} changed"
    assert sorted(os.listdir(tmp_path)) == ["outside", "w"]
    world_files = ["config.toml", "daemon.log", "data", "dev", "home"]
    assert sorted(os.listdir(tmp_path / "w")) == world_files


# --- 2. SQL metacharacters in every string field -----------------------------------------------
PAYLOADS = [
    "'", '"', ";", "--", "/*", "*/", "%", "_", "\\", "' OR 1=1 --", "'); DROP TABLE kv; --",
    '" OR ""="', "a\x00b", "\x00", "ünï😀cødé \u202e", "%_\\'\";--/**/", "?", ":name", "$1",
]  # fmt: skip
# What a method may change besides its own namespace's tables, events and sqlite_sequence
# (write_rule): the cross-table effects that are rules of the domain.
_FTS = {"documents_fts", "documents_fts_data", "documents_fts_docsize", "documents_fts_idx"}
_READY = {"ready_counts"}  # schema triggers: each project's count of ready tasks
# work/derived.py settle(), after a change to a task or a dependency: tasks' blocked, unblocks
# and open subtasks, their phase's and plan's status, their feature's completed count
_DERIVED = {"tasks", "phases", "plans", "features", *_READY}
ALSO: dict[str, set[str]] = {
    # the full-text index follows its documents (schema triggers)
    "documents.add": _FTS, "documents.update": _FTS, "documents.index_code": _FTS,
    "documents.embed": {"document_vectors"},  # a document's embedding, kept beside it
    "db.repair": _FTS,  # rebuilds every full-text index
    "tasks.add": _DERIVED, "tasks.update": _DERIVED, "tasks.update_many": _DERIVED,
    "tasks.claim": _DERIVED, "tasks.complete": _DERIVED, "deps.add": _DERIVED,
    # a plan imported comes with its phases, tasks and dependencies
    "plans.import": {"phases", "tasks", "dependencies", *_READY},
    # a restore puts the project's work back as the checkpoint holds it
    "checkpoints.restore": {"plans", "phases", "tasks", "dependencies", *_READY},
    "projects.register": {"quality_metrics"},  # a project registered is scanned and assessed
    # a project forgotten is ignored by the next scans; its assessments go with it (cascade)
    "projects.forget": {"ignored_paths", "quality_metrics"},
}  # fmt: skip
# Methods no call of the fuzz gets an answer from, by design (every other method with a
# string field must answer at least one: its harmless target works, its real code ran).
UNANSWERED = {
    "db.import", "db.restore", "db.verify",  # files that do not exist: nothing imported
    "jobs.run",  # payloads are no job kind
    "events.list", "events.subscribe",  # payloads are no topic (refused as unknown)
    "projects.get", "projects.forget", "projects.register",  # targets that do not exist
    # the only free string is a project reference, and no project is named by a payload
    "documents.similar", "features.list", "instructions.refresh", "plans.list",
    "program_projects.list", "programs.list",
    # only the holder renews or releases a claim, and no payload agent holds one
    "tasks.heartbeat", "tasks.release",
}  # fmt: skip
SKIPPED = {"daemon.shutdown"}  # db.reset has no string field; the others get harmless targets
# Where a string goes in a param's value: keys, 0 for an item, "*" for a key and its value in
# a free-form object.
Where_ = tuple[str | int, ...]


def resolved(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return dict(schemas[schema["$ref"].rsplit("/", 1)[-1]])
    return schema


def string_paths(schema: dict[str, Any], schemas: dict[str, Any], depth: int = 0) -> list[Where_]:
    """Where a free string (no enum) goes in a value of this schema: () for the value itself,
    keys into objects and 0 into arrays (nested objects too, through `$ref`)."""
    schema = resolved(schema, schemas)
    found: list[Where_] = []
    if depth > 6:
        return found
    if schema.get("type") == "string" and "enum" not in schema:
        found.append(())
    if schema.get("type") == "object" and "properties" not in schema:
        found.append(("*",))
    if schema.get("type") == "array":
        found += [(0, *p) for p in string_paths(schema.get("items", {}), schemas, depth + 1)]
    for name, sub in schema.get("properties", {}).items():
        found += [(name, *p) for p in string_paths(sub, schemas, depth + 1)]
    for option in schema.get("anyOf", []):
        found += [p for p in string_paths(option, schemas, depth + 1) if p not in found]
    return found


def minimal(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    """A small value of the schema: an object's required properties, "probe" for a string."""
    schema = resolved(schema, schemas)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type") or resolved(schema.get("anyOf", [{}])[0], schemas).get("type")
    if kind == "object":
        return {k: minimal(schema["properties"][k], schemas) for k in schema.get("required", [])}
    return {"string": "probe", "integer": 1, "number": 1.0, "array": [], "boolean": False}.get(
        str(kind)
    )


def placed(value: Any, where: Where_, payload: str, schema: dict[str, Any],
           schemas: dict[str, Any]) -> Any:  # fmt: skip
    """`value` with `payload` at `where`; what is missing on the way is made `minimal`."""
    if not where:
        return payload
    step, rest = where[0], where[1:]
    if step == "*":
        return {**(value or {}), payload: payload}
    options = [resolved(o, schemas) for o in [schema, *resolved(schema, schemas).get("anyOf", [])]]
    if step == 0:
        inner = next(o["items"] for o in options if "items" in o)
        items = list(value or [])
        first = items[0] if items else minimal(inner, schemas)
        return [placed(first, rest, payload, inner, schemas), *items[1:]]
    owner = next(o for o in options if step in o.get("properties", {}))
    inner = owner["properties"][step]
    obj = dict(value if isinstance(value, dict) else minimal(owner, schemas))
    obj[step] = placed(obj.get(step, minimal(inner, schemas)), rest, payload, inner, schemas)
    return obj


def check_like_filters(c: Client) -> None:
    """LIKE-based and prefix filters take % _ \\ literally."""
    for key in ("%a", "_b", "\\c", "ab", "xb", "zz"):
        c.call("kv.set", {"namespace": "like", "key": key, "value": 1})
    c.call("jobs.record", {"kind": "a_c"})

    def keys(prefix: str) -> list[str]:
        return [
            i["key"] for i in c.call("kv.list", {"namespace": "like", "prefix": prefix})["items"]
        ]

    assert (keys("%"), keys("_"), keys("\\")) == (["%a"], ["_b"], ["\\c"])
    assert c.call("kv.clear", {"namespace": "like", "prefix": "_"}) == {"deleted": 1}
    assert keys("") == ["%a", "\\c", "ab", "xb", "zz"]
    assert named(c, "d_x") == ["und_x"] and named(c, "t%x") == ["pct%x"]
    assert named(c, "%") == ["pct%x"] and named(c, "s\\x") == ["bs\\x"]
    assert named(c, "_x") == ["und_x"] and named(c, "dYx") == ["undYx"]
    for pattern in ("%", "k_"):  # a topic is a name, never a pattern: unknown, so refused
        refused = error_of(c, "events.list", {"topics": [pattern]})
        assert refused.code == -32602 and refused.data["unknown"] == [pattern]
    assert c.call("events.list", {"topics": ["kv"]})["total"] > 0
    assert c.call("jobs.list", {"kind": "a%c"})["total"] == 0
    assert c.call("jobs.list", {"kind": "%"})["total"] == 0


def named(c: Client, query: str) -> list[str]:
    items = c.call("projects.list", {"query": query})["items"]
    return sorted(os.path.basename(i["path"]) for i in items)


class Fuzzed:
    def __init__(self) -> None:
        self.calls = 0
        self.internal: list[tuple[str, str, str, str]] = []  # -32603: a crash, not an answer
        self.wrote: list[tuple[str, str, str, dict[str, tuple[int, int]]]] = []
        self.fuzzed: set[str] = set()  # methods called with a payload
        self.answered: set[str] = set()  # … that accepted at least one (not an error)


def fuzz(
    c: Client, conn: sqlite3.Connection, may_change: Callable[[str], set[str]],
    required: dict[str, dict[str, Any]],
) -> Fuzzed:  # fmt: skip
    """Every payload in every string field (nested ones too) of every method `rpc.discover`
    lists, the others as `required` gives them; after each call, the row counts of the tables
    the method has no business writing are compared."""
    out = Fuzzed()
    states = TableStates(conn)
    before = states.read()
    discovered = c.call("rpc.discover")
    schemas = discovered["components"]["schemas"]
    for method in discovered["methods"]:
        name = method["name"]
        allowed = may_change(name)
        for param in [] if name in SKIPPED else method["params"]:
            base = required.get(name, {})
            for where in string_paths(param["schema"], schemas):
                values = PAYLOADS
                # as a path too (a project's: through projects.*; every method resolves a
                # project reference with the same projects/ref.py resolve)
                if not where and (
                    param["name"] == "path"
                    or (param["name"] == "project" and name.startswith("projects."))
                ):
                    values = [*PAYLOADS, *("/" + p for p in PAYLOADS)]
                for payload in values:
                    value = placed(base.get(param["name"]), where, payload, param["schema"],
                                   schemas)  # fmt: skip
                    try:
                        c.call(name, {**base, param["name"]: value})
                        out.answered.add(name)
                    except RemoteError as e:
                        if e.code == -32603:
                            out.internal.append((name, param["name"], payload, e.message))
                    out.calls += 1
                    out.fuzzed.add(name)
                    after = states.read()
                    changed = {
                        t: (before.get(t, (-1, 0))[0], n)
                        for t, (n, digest) in after.items()
                        if t not in allowed and before.get(t) != (n, digest)
                    }
                    if changed or set(after) != set(before):
                        out.wrote.append((name, param["name"], payload, changed))
                    before = after
    return out


def write_rule(conn: sqlite3.Connection) -> Callable[[str], set[str]]:
    """The tables `<ns>.<verb>` may change: its namespace's (each domain Table says its
    namespace), `events`, `sqlite_sequence`, and the cross-table effects ALSO names."""
    present = set(table_counts(conn))
    own: dict[str, set[str]] = {}
    for table in tables():  # (a test process also holds other tests' scratch tables)
        if table.row.__module__.startswith("daemon.") and table.name in present:
            own.setdefault(table.namespace, set()).add(table.name)
    for method, names in ALSO.items():
        assert names <= present, (method, names - present)

    def may_change(method: str) -> set[str]:
        namespace = method.rpartition(".")[0]
        return own.get(namespace, set()) | ALSO.get(method, set()) | {"events", "sqlite_sequence"}

    return may_change


# The table of each kind of row `targets` makes.
KINDS = {
    "program": "programs", "plan": "plans", "phase": "phases", "task": "tasks",
    "other_task": "tasks", "claimed": "tasks", "dependency": "dependencies",
    "feature": "features", "requirement": "requirements", "session": "sessions",
    "session_file": "session_files", "document": "documents", "agent": "agents",
    "continue_point": "continue_points", "lineage": "lineage", "metric": "metrics",
    "checkpoint": "checkpoints",
}  # fmt: skip


def targets(c: Client, project: int, agent: str) -> dict[str, int]:
    """A row of each kind in `project` (ids by kind): references that exist, so a call runs
    its real code instead of stopping at not_found."""
    row: dict[str, int] = {}

    def made(kind: str, method: str, params: dict[str, Any]) -> None:
        row[kind] = int(c.call(method, params)["id"])

    made("program", "programs.add", {"project": project, "title": "program"})
    made("plan", "plans.add", {"project": project, "title": "plan"})
    made("phase", "phases.add", {"plan": row["plan"], "title": "phase"})
    for kind in ("task", "other_task", "claimed"):
        made(kind, "tasks.add", {"phase": row["phase"], "title": kind})
    c.call("tasks.claim", {"id": row["claimed"], "agent": "holder"})
    made("dependency", "deps.add", {"from_type": "task", "from_id": row["other_task"],
                                    "to_type": "task", "to_id": row["task"],
                                    "kind": "related"})  # fmt: skip
    made("feature", "features.add", {"project": project, "name": "feature"})
    made("requirement", "requirements.add", {"project": project, "category": "c",
                                             "description": "requirement"})  # fmt: skip
    made("session", "sessions.start", {"project": project})
    made("session_file", "session_files.add", {"session": row["session"], "path": "a.py"})
    made("document", "documents.add", {"project": project, "kind": "note", "title": "note",
                                       "content": "a note"})  # fmt: skip
    made("agent", "agents.add", {"name": agent, "project": project})
    made("continue_point", "continue_points.add", {"project": project, "last_action": "x"})
    made("lineage", "lineage.add", {"project": project, "to_agent": agent})
    made("metric", "metrics.add", {"project": project, "type": "token_usage", "value": 1})
    made("checkpoint", "checkpoints.save", {"project": project})
    return row


def rows_of(conn: sqlite3.Connection, made: dict[str, int]) -> dict[str, list[Any]]:
    """The rows `targets` made, as they are now."""
    return {
        kind: conn.execute(f"SELECT * FROM {quote(KINDS[kind])} WHERE id = ?", (row_id,)).fetchall()
        for kind, row_id in made.items()
    }


def test_sql_metacharacters_are_inert_in_every_string_field(make_daemon: DaemonFactory) -> None:
    d = make_daemon("s", config=QUIET)
    for name in ("base", "pct%x", "und_x", "undYx", "bs\\x", "bystander"):
        (d.dev_root / name).mkdir(parents=True)
        (d.dev_root / name / "package.json").write_text('{"name": "p"}')
    (d.dev_root / "base" / "src").mkdir()  # code to index, instructions to find
    (d.dev_root / "base" / "src" / "a.py").write_text("def f() -> int:\n    return 1\n")
    (d.dev_root / "base" / "AGENTS.md").write_text("# Rules\n\nKeep it simple.\n")
    d.start()
    conn = read_only(d.db_path)
    with d.client() as c:
        check_like_filters(c)
        guard = c.call("kv.list", {"namespace": "like"})["items"]
        base = c.call("projects.get", {"project": f"{d.dev_root}/base"})["id"]
        job = c.call("jobs.record", {"kind": "target"})["id"]
        row = targets(c, base, "agent")
        # Rows of another project no call names: a payload that widened a statement (an
        # UPDATE or DELETE of more than its row) would change them.
        bystander = c.call("projects.get", {"project": f"{d.dev_root}/bystander"})["id"]
        untouched = targets(c, bystander, "bystander")
        untouched_rows = rows_of(conn, untouched)
        schema_before = schema_of(conn)
        done = fuzz(c, conn, write_rule(conn), {
            "kv.get": {"namespace": "probe", "key": "probe"},
            "kv.delete": {"namespace": "probe", "key": "probe"},
            "kv.set": {"namespace": "probe", "key": "probe", "value": "v"},
            "kv.clear": {"namespace": "probe"}, "kv.list": {"namespace": "probe"},
            "db.verify": {"name": "pm-agent_20000101_000000.db"},
            "db.restore": {"name": "pm-agent_20000101_000000.db"},  # none: nothing restored
            "db.import": {"path": f"{d.data_dir}/imports/none.json"},  # none: nothing imported
            "jobs.update": {"id": job}, "jobs.record": {"kind": "probe"},
            "jobs.run": {"kind": "nothing"}, "projects.update": {"project": base},
            "projects.get": {"project": base}, "projects.forget": {"project": 999_999},
            "quality.get": {"project": base}, "quality.history": {"project": base},
            "projects.register": {"path": "/nonexistent"},
            # the work and memory methods: every reference names a row that exists
            "agents.add": {"name": "probe"}, "agents.heartbeat": {"agent": "probe"},
            "agents.update": {"id": row["agent"]},
            "checkpoints.save": {"project": base}, "checkpoints.update": {"id": row["checkpoint"]},
            "checkpoints.restore": {"id": row["checkpoint"]},
            "context.brief": {"project": base},
            "continue_points.add": {"project": base, "last_action": "probe"},
            "continue_points.latest": {"project": base},
            "continue_points.update": {"id": row["continue_point"]},
            "deps.add": {"from_type": "task", "from_id": row["task"], "to_type": "task",
                         "to_id": row["other_task"]},
            "documents.add": {"project": base, "kind": "note", "title": "probe",
                              "content": "probe"},
            "documents.embed": {"id": row["document"], "embedding": [0.5, 0.25]},
            "documents.index_code": {"project": base},
            "documents.search": {"query": "probe"}, "documents.similar": {"id": row["document"]},
            "documents.update": {"id": row["document"]},
            "features.add": {"project": base, "name": "probe"},
            "features.update": {"id": row["feature"]},
            "instructions.for_path": {"path": f"{d.dev_root}/base/src/a.py"},
            "instructions.refresh": {"project": base},
            "lineage.add": {"project": base, "to_agent": "probe"},
            "lineage.update": {"id": row["lineage"]},
            "metrics.add": {"type": "probe", "value": 1}, "metrics.update": {"id": row["metric"]},
            "phases.add": {"plan": row["plan"], "title": "probe"},
            "phases.update": {"id": row["phase"]},
            "plans.add": {"project": base, "title": "probe"},
            "plans.import": {"project": base, "document": {"title": "probe"}},
            "plans.update": {"id": row["plan"]},
            "program_projects.add": {"program": row["program"], "project": base},
            "programs.add": {"project": base, "title": "probe"},
            "programs.update": {"id": row["program"]},
            "requirements.add": {"project": base, "category": "probe", "description": "probe"},
            "requirements.update": {"id": row["requirement"]},
            "session_files.add": {"session": row["session"], "path": "probe"},
            "session_files.set": {"session": row["session"]},
            "session_files.update": {"id": row["session_file"]},
            "sessions.start": {"project": base}, "sessions.end": {"id": row["session"]},
            "sessions.update": {"id": row["session"]},
            "tasks.add": {"phase": row["phase"], "title": "probe"},
            "tasks.claim": {"agent": "probe", "project": base},
            "tasks.complete": {"id": row["other_task"], "force": True, "next": True},
            "tasks.heartbeat": {"id": row["claimed"], "agent": "holder"},
            "tasks.release": {"id": row["claimed"], "agent": "holder"},
            "tasks.update": {"id": row["task"]},
            "tasks.update_many": {"updates": [{"id": row["task"]}]},
        })  # fmt: skip
        assert done.calls > 5000
        assert not done.internal, done.internal
        assert not done.wrote, done.wrote
        assert done.fuzzed - done.answered == UNANSWERED
        # What was there is still there, the payloads were stored as given, the schema is
        # what it was and the file is sound.
        assert c.call("kv.list", {"namespace": "like"})["items"] == guard
        assert rows_of(conn, untouched) == untouched_rows
        assert named(c, "x") == sorted(["bs\\x", "pct%x", "und_x", "undYx"])
        # (SQLite's length() stops at a NUL, so a lone "\x00" fails the length CHECK: refused)
        stored = {r[0] for r in conn.execute("SELECT namespace FROM kv")}
        assert set(PAYLOADS) - stored == {"\x00"}
        assert schema_of(conn) == schema_before
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()


def test_checkpoints_quote_the_column_names_they_read(make_daemon: DaemonFactory) -> None:
    """A checkpoint copies every column the file's schema has, by the names it reads there: a
    column another tool added, with SQL in its name, is saved and put back like any other
    (quoted as a name), never run as SQL."""
    d = make_daemon("k", config=QUIET)
    (d.dev_root / "proj").mkdir(parents=True)
    d.start()
    project = d.call("projects.register", {"path": str(d.dev_root / "proj")})["id"]
    plan = d.call("plans.add", {"project": project, "title": "plan"})["id"]
    odd = quote("x'), 'y', (SELECT 1) --\"")
    with sqlite3.connect(d.db_path, timeout=10) as conn:  # another tool, beside the daemon
        conn.execute(f"ALTER TABLE plans ADD COLUMN {odd} TEXT")
        conn.execute(f"UPDATE plans SET {odd} = 'kept'")
    saved = d.call("checkpoints.save", {"project": project})
    state = d.call("checkpoints.get", {"id": saved["id"]})["state"]
    assert state["plans"][0]["x'), 'y', (SELECT 1) --\""] == "kept"
    d.call("plans.update", {"id": plan, "title": "changed"})
    with sqlite3.connect(d.db_path, timeout=10) as conn:
        conn.execute(f"UPDATE plans SET {odd} = 'changed'")
    d.call("checkpoints.restore", {"id": saved["id"]})
    assert d.call("plans.get", {"id": plan})["title"] == "plan"
    with read_only(d.db_path) as conn:
        assert conn.execute(f"SELECT {odd} FROM plans").fetchall() == [("kept",)]
    conn.close()


# SQL text: an f-string (its adjacent literals are one string), a `+` chain of strings, or the
# template of a .format() or %; it is SQL when its constant parts hold one of these words
# (upper case: messages and docstrings say "from", not "FROM").
SQL_WORDS = re.compile(
    r"\b(SELECT|INSERT INTO|UPDATE \S+ SET|DELETE FROM|PRAGMA|WHERE|VALUES|DROP|CREATE|FROM|JOIN"
    r"|ORDER BY|GROUP BY|INDEXED BY)\b"
)
# Holes safe wherever they are: an identifier quoted with connection.quote, an int() cast, a
# list of "?" marks.
SAFE_HOLE = re.compile(
    r"\{(quote\([\w.]+\)|', '\.join\(map\(quote, [\w.]+\)\)|int\([\w.]+\)"
    r"|', '\.join\('\?' for _ in [\w.]+\))\}"
)
# Every other hole of SQL text under daemon/, by file, each reviewed: what it holds, and why a
# client's value cannot get there. The text is the hole's exact source.
REVIEWED: dict[str, tuple[str, ...]] = {
    # _WORK's constant SQL and table names; `pairs`, `updates`: the schema's column names,
    # quoted (checkpoints._text and quote)
    "domain/checkpoints.py": ("{dict(_WORK)[table]}", "{ids}", "{pairs}", "{table}", "{updates}"),
    # the table layer's RETURNING (the row Struct's field names)
    "domain/documents/api.py": ("{DOCUMENTS.returning}",),
    "domain/documents/instructions.py": ("{marks}",),  # a "?" list
    "domain/documents/scope.py": ("{', '.join(implied)}", "{table}"),  # _IMPLIES, a constant
    # Where.render() (declared columns, values as parameters) and the constant _JOIN
    "domain/documents/search.py": (
        '{" AND " + filters.removeprefix(" WHERE ") if filters else ""}', "{join}"),
    "domain/documents/vectors.py": ("{sql}",),  # Where.render()
    "domain/events/history.py": ("{where}",),  # constant clauses, topics as "?" lists
    # the table's RETURNING, columns and declared order; Where.render()
    "domain/jobs/sql.py": ("{JOBS.returning}", "{cols}", "{order}", "{sql}"),
    "domain/kv.py": ("{KV.returning}", "{sql}", "{_LIVE}"),
    "domain/lineage.py": ("{table}",),  # a literal tuple of table names
    # _GROUP[by]: a fixed mapping, `by` a Literal validated before; Where.render()
    "domain/metrics.py": ("{column}", "{sql}"),
    "domain/quality/sql.py": ("{where}",),  # a constant and a "?" list
    "domain/work/claims.py": ("{TASKS.returning}",),
    # _TERMINAL_SQL: quoted from the constant TERMINAL; _waits(): SQL of this module's, its
    # `level` and `column` Literal-typed; _COUNTS[column]: a fixed mapping, `column` Literal-typed
    # too; `column` in covered(): "phase_id" or "plan_id"
    "domain/work/derived.py": (
        "{_COUNTS[column]}", "{_TERMINAL_SQL}", "{_waits('phase', '?')}",
        "{_waits('phase', 't.phase_id')}", "{_waits('plan', '?')}",
        "{_waits('plan', 't.plan_id')}", "{_waits('task', 't.id')}", "{column}", "{level}",
        # lists of the Status literal's values, made once at import
        "{_OPEN_SQL}", "{_OPEN_NOT_FAILED_SQL}", "{_STARTED_SQL}"),
    "domain/work/graph.py": ("{column}",),  # "phase_id" or "plan_id"
    # Literal-typed table names and fragments (Ordered, Among); an int constant
    "domain/work/ordering.py": ("{2 * _BAND}", "{_BAND}", "{self.table}", "{self.where}",
                                "{table}"),
    "domain/work/plans.py": ("{column}",),  # Literal["plan_id", "phase_id"]
    # module constants; an index name and a project filter chosen between two constants
    "domain/work/ready.py": (
        "{'project_id, ' if project_id is not None else ''}", "{READY}", "{_COLUMNS}",
        "{_EXPIRED}", "{_FIELDS}", "{_OPEN}", "{index}", "{where}"),
    "domain/work/tasks.py": ("{table}",),  # a literal tuple of table names
    "store/backup.py": ("{pragma}",),  # "quick_check" or "integrity_check"
    "store/care.py": ("{quoted}",),  # connection.quote of an FTS table's name
    "store/connection.py": ("{synchronous}",),  # a Literal, validated config
    "store/events.py": ("{values}", "{where}"),  # "(?, ?, ?, ?, ?)" and "?" lists
    "store/export.py": ("{order}",),  # " ORDER BY rowid" or ""
    "store/salvage.py": ("{sets}", "{sql}"),  # quoted columns; a constant
    # quoted names read from the schema; "?" lists; comparison and order keywords
    "store/salvage_read.py": (
        "{'DESC' if desc else 'ASC'}", "{'min' if down else 'max'}", "{cmp}", "{cols}",
        "{marks}", "{names}", "{order}", "{self.select}"),
    # the generic table layer: names of the table and of its row Struct's fields, its declared
    # orders and computed SQL; Where clauses of those; "?" lists
    "store/table.py": (
        '{" AND ".join(self._clauses)}', "{', '.join(columns)}", "{assignments}", "{marks}",
        "{order_by}", "{self._from}", "{self._json_row('t.')}", "{self._select}", "{self.name}",
        "{source}", "{sql}"),
}  # fmt: skip


def text_of(node: ast.expr) -> str:
    """The constant text of a string expression (literal parts of f-strings and `+` chains)."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else ""
    if isinstance(node, ast.JoinedStr):
        return "".join(text_of(v) for v in node.values if isinstance(v, ast.Constant))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return text_of(node.left) + text_of(node.right)
    return ""


def chain(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [*chain(node.left), *chain(node.right)]
    return [node]


class SqlScan(ast.NodeVisitor):
    """The holes of every SQL text in a module as (line, hole), and where .format() or %
    makes SQL (`formatted`)."""

    def __init__(self, source: str) -> None:
        self.source = source
        tree = ast.parse(source)
        # Names only ever given SQL text in the module: their holes are found where the text is
        # made, so using one is not a hole. A name also bound any other way is.
        made: set[str] = set()
        exempt: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and SQL_WORDS.search(text_of(node.value)):
                names = [t for t in node.targets if isinstance(t, ast.Name)]
                made |= {n.id for n in names}
                exempt |= {id(n) for n in names}
            elif isinstance(node, ast.AugAssign):
                exempt.add(id(node.target))
        other = {
            n.id if isinstance(n, ast.Name) else n.arg
            for n in ast.walk(tree)
            if (isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and id(n) not in exempt)
            or isinstance(n, ast.arg)
        }
        self.sql_names = made - other
        self.holes: set[tuple[int, str]] = set()
        self.formatted: list[str] = []
        self.visit(tree)

    def is_sql(self, node: ast.expr) -> bool:
        named = isinstance(node, ast.Name) and node.id in self.sql_names
        return named or bool(SQL_WORDS.search(text_of(node)))

    def add(self, line: int, parts: list[ast.expr]) -> None:
        """Every part of SQL text that is neither a literal nor SQL text itself is a hole."""
        for part in parts:
            if isinstance(part, ast.JoinedStr):
                self.add(line, [v.value for v in part.values if isinstance(v, ast.FormattedValue)])
            elif not isinstance(part, ast.Constant) and not (
                isinstance(part, ast.Name) and part.id in self.sql_names
            ):
                text = ast.get_source_segment(self.source, part) or ""
                self.holes.add((line, "{" + re.sub(r"\s*\n\s*", " ", text) + "}"))

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        if SQL_WORDS.search(text_of(node)):
            self.add(node.lineno, [node])
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.Add) and any(self.is_sql(p) for p in chain(node)):
            self.add(node.lineno, chain(node))
        if isinstance(node.op, ast.Mod) and self.is_sql(node.left):
            self.formatted.append(f"{node.lineno}: % formatting")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.op, ast.Add) and self.is_sql(node.target):  # sql += …
            self.add(node.lineno, [node.value])
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "format" and self.is_sql(func.value):
            self.formatted.append(f"{node.lineno}: .format()")
        self.generic_visit(node)


def test_no_sql_is_built_from_values() -> None:
    """SQL text in daemon/ is assembled only from constants and identifiers (quoted, or chosen
    in code); values are always parameters. Every hole of SQL text must be safe anywhere
    (SAFE_HOLE) or reviewed for its file (REVIEWED); %-formatting and .format() must not make
    SQL at all; a reviewed hole that is gone must leave the list (or a new hole of the same
    text would pass unreviewed)."""
    daemon_dir = Path(__file__).resolve().parent.parent / "daemon"
    unreviewed: list[str] = []
    seen: dict[str, set[str]] = {}
    for path in sorted(daemon_dir.rglob("*.py")):
        name = path.relative_to(daemon_dir).as_posix()
        scan = SqlScan(path.read_text())
        seen[name] = {h for _, h in scan.holes}
        unreviewed += [f"{name}:{what}" for what in scan.formatted]
        reviewed = REVIEWED.get(name, ())
        unreviewed += [
            f"{name}:{line}: {h}"
            for line, h in sorted(scan.holes)
            if not SAFE_HOLE.fullmatch(h) and h not in reviewed
        ]
    stale = [f"{name}: {h}" for name, holes in REVIEWED.items() for h in holes
             if h not in seen.get(name, set())]  # fmt: skip
    assert not unreviewed, "\n".join(unreviewed)
    assert not stale, "reviewed holes no longer in the code:\n" + "\n".join(stale)


def test_the_sql_scan_sees_what_it_must() -> None:
    """The scanner finds a value's hole however the SQL is written: on a continuation line of
    an f-string, in a `+` chain, through .format() or % on a constant, in a store-layer module."""
    source = """
_SELECT = "SELECT a FROM t WHERE b = {b}"
def f(conn, value, name):
    conn.execute(f"SELECT a FROM t "
                 f"WHERE b = {value}")
    conn.execute("DELETE FROM t WHERE b = " + value)
    conn.execute(_SELECT.format(b=value))
    conn.execute("UPDATE t SET a = %s" % value)
    conn.execute(f"SELECT {quote(name)} FROM t WHERE b = ?", (value,))
    conn.execute(f"SELECT count(*) FROM t{where_sql}")
    query = "SELECT a FROM t"
    query += f" AND b = {value}"
    conn.execute(query + limit)
    sql = "SELECT a FROM t"
    sql, args = value
    conn.execute(f"{sql} WHERE b = ?", args)
    print(f"no {value} here")
"""
    scan = SqlScan(source)
    assert scan.holes == {(4, "{value}"), (6, "{value}"), (9, "{quote(name)}"),
                          (10, "{where_sql}"), (12, "{value}"), (13, "{limit}"),
                          (16, "{sql}")}  # fmt: skip
    assert sorted(scan.formatted) == ["7: .format()", "8: % formatting"]
    assert [h for _, h in scan.holes if SAFE_HOLE.fullmatch(h)] == ["{quote(name)}"]


# --- 3. private files whatever the umask -------------------------------------------------------
def corrupt_middle(path: Path) -> None:
    data = path.read_bytes()
    size = int.from_bytes(data[16:18], "big") or 65536
    pages = len(data) // size
    with open(path, "r+b") as f:
        for page in (pages // 2, pages // 2 + 1):
            f.seek(page * size)
            f.write(os.urandom(size))


def test_every_file_is_0600_in_a_0700_folder_under_umask_022(
    make_daemon: DaemonFactory, tmp_path: Path
) -> None:
    world = make_daemon("p")
    log_file = world.home / "logs" / "pm-agentd.log"
    env = {**world.env, "PM_AGENT_LOG_FILE": str(log_file)}
    state = world.home / ".local" / "state" / "pm-agent"

    def pm(*args: str) -> str:
        done = subprocess.run([PM, *args], env=env, capture_output=True, text=True,
                              timeout=60, umask=0o022)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    pm("status")  # starts the daemon: it inherits umask 022
    assert (state / "pm-agentd.start.log").exists()
    try:
        with world.client() as c:
            for i in range(400):
                c.call("kv.set", {"namespace": "fill", "key": f"k{i:04d}", "value": "v" * 200})
            c.call("jobs.record", {"kind": "big", "response": "r" * 100_000})  # kept in a file
            c.call("db.backup")
            exported = c.call("db.export", {"format": "json"})["path"]
            c.call("db.export", {"format": "csv"})
            shutil.copyfile(exported, tmp_path / "export.json")
            pm("db", "import", str(tmp_path / "export.json"))  # staged in <data>/imports
            # Damage the file under the daemon: the next backup fails its check (failed/),
            # and a repair keeps the damaged file (damaged/) and recovers into a new one.
            probe = sqlite3.connect(world.db_path)  # everything into the main file first
            probe.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            probe.close()
            corrupt_middle(world.db_path)
            assert error_of(c, "db.backup", {}).kind == "storage"
            c.call("db.repair")
            c.call("kv.set", {"namespace": "n", "key": "after", "value": 1})
            pid = c.call("daemon.status")["pid"]
    finally:
        status = world.status()
        if status is not None:
            os.kill(status["pid"], signal.SIGTERM)
    wait_for(lambda: world.status() is None, 30, "the daemon to stop")
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 30, "the daemon to exit")
    pm("--no-spawn", "backup", "now")  # offline, in the client's own process (umask 022)
    data = world.data_dir
    for folder in ("db", "backups", "backups/failed", "damaged", "exports", "imports", "jobs"):
        assert (data / folder).is_dir(), folder
    assert list((data / "exports").glob("*.json")) and list((data / "backups").glob("*.db"))
    assert log_file.exists()
    loose = []
    for top in (data, state, log_file.parent):
        for path in [top, *top.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if (path.is_dir() and mode != 0o700) or (not path.is_dir() and mode & 0o077):
                loose.append(f"{path} {mode:04o}")
    assert not loose, loose


# --- 4. secrets never stored or logged ---------------------------------------------------------
TOKENS = ["ghp_SECRET123", "hunter2PASS", "ghp_INSTEAD", "ghp_GLOBAL", "ghp_PUSH", "ghp_QUERY",
          "ghp_HEADER", "sk-SECRET"]  # fmt: skip


def test_credentials_and_secrets_are_never_stored_or_logged(make_daemon: DaemonFactory) -> None:
    d = make_daemon("c", config={**QUIET, "log_level": "debug"})
    log_file = d.root / "logs" / "pm-agentd.log"
    d.env["PM_AGENT_LOG_FILE"] = str(log_file)
    (d.home / ".gitconfig").write_text(
        '[url "https://glob:ghp_GLOBAL@gitlab.com/"]\n\tinsteadOf = gl:\n'
    )
    repo = make_repo(
        d.dev_root / "leaky",
        home=d.home,
        files={"README.md": "# Leaky\n\nA project with credentials in its config.\n",
               "pyproject.toml": '[project]\nname = "leaky"\n'},
        remotes={
            "origin": "https://user:ghp_SECRET123@github.com/x/y.git",
            "mirror": "ssh://git:hunter2PASS@example.com:2222/x/mirror.git",
            "up": "gh:x/z.git",
            "lab": "gl:x/lab.git",
            "q": "https://github.com/x/q.git?access_token=ghp_QUERY",
        },
    )  # fmt: skip
    git(repo, "config", "remote.origin.pushurl", "https://u:ghp_PUSH@github.com/x/y.git",
        home=d.home)  # fmt: skip
    git(repo, "config", "url.https://tok:ghp_INSTEAD@github.com/.insteadOf", "gh:", home=d.home)
    git(repo, "config", "http.extraHeader", "Authorization: Bearer ghp_HEADER", home=d.home)
    (repo / ".env").write_text("API_KEY=sk-SECRET\nTOKEN=ghp_SECRET123\n")
    d.start()
    with d.client() as c:
        c.call("projects.scan")
        c.call("quality.scan")
        job = c.call("jobs.run", {"kind": "quality_scan"})
        assert finished(c, job["id"])["status"] == "completed"
        project = c.call("projects.get", {"project": str(repo)})
        seen = json.dumps([
            project,
            c.call("quality.get", {"project": project["id"]}),
            c.call("projects.list", {"include_missing": True}),
            c.call("events.list", {"limit": 10_000}),
            c.call("jobs.list", {"limit": 10_000}),
            c.call("jobs.get", {"id": job["id"]}),
        ])  # fmt: skip
        c.call("db.export", {"format": "json"})
        c.call("db.export", {"format": "csv"})
        c.call("db.backup")
    # The remotes were read (so the test means something), without their credentials.
    assert {r["name"]: r["url"] for r in project["remotes"]} == {
        "origin": "https://github.com/x/y",
        "mirror": "https://example.com/x/mirror",
        "up": "https://github.com/x/z",
        "lab": "https://gitlab.com/x/lab",
        "q": "https://github.com/x/q",
    }
    assert project["repository_url"] == "https://github.com/x/y"
    leaks = [t for t in TOKENS if t in seen]
    assert not leaks, leaks
    d.stop()
    assert files_holding(d.data_dir, TOKENS) == {}
    assert log_file.exists() and '"level": "debug"' in log_file.read_text()
    assert files_holding(log_file.parent, TOKENS) == {}
    assert [t for t in TOKENS if t in d.log()] == []
