"""`pm backup [now|list|verify NAME|restore NAME]` and `pm db check|repair|migrate|rollback|
reset|export|import`.

The recovery commands work with the daemon down too: when nothing answers (say the daemon
refused a damaged database), they work on the files themselves, through the daemon's one door
for the client (daemon.runtime.offline.answer), under the daemon's instance lock, and say so
on stderr.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time

from client import errors, output
from client.spec import Arg, Command

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from client.args import Args
    from client.session import Session


def _online(s: Session) -> bool:
    """Is a daemon answering? Never starts one: recovery must work when it cannot start."""
    try:
        s.client(spawn=False)
    except errors.Unreachable:
        return False
    return True


def _offline(what: str, question: str, params: dict[str, Any] | None = None) -> Any:
    """`question` answered on the files by the daemon's code, the daemon not running (and
    said so)."""
    from client import door

    output.error(f"the daemon is not running: {what} directly on the files")
    return door.ask(question, params)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


# --- pm backup ------------------------------------------------------------------------------
def cmd_backup_now(args: Args, s: Session) -> int:
    if _online(s):
        made = s.call_with_progress("db.backup", {})
    else:
        made = _offline("backing up", "backup_now")
        made.setdefault("removed", [])
    if args.json:
        output.print_json(made)
        return 0
    print(f"backed up to {made['path']} ({_size(made['bytes'])}, verified)")
    for name in made["removed"]:
        print(f"retention removed {name}")
    return 0


def render_backups(result: dict[str, Any]) -> str:
    items = result["items"]
    if not items:
        return f"no backups in {result['folder']} yet (`pm backup now` makes one)\n"
    rows = []
    for b in items:
        state = "ok" if b["ok"] else f"FAILED: {output.visible(b.get('problem') or '?')}"
        schema = "?" if b.get("schema_version") is None else str(b["schema_version"])
        rows.append(
            [
                b["name"],
                _size(b["bytes"]),
                schema,
                b["label"] or "-",
                state,
                output.relative_time(b["created_at"]),
            ]
        )
    return output.table(["NAME", "SIZE", "SCHEMA", "LABEL", "STATE", "TAKEN"], rows) + (
        f"in {result['folder']}\n"
    )


def cmd_backup_list(args: Args, s: Session) -> int:
    result = s.call("db.backups") if _online(s) else _offline("listing", "backup_list")
    output.show(result, args.json, render_backups)
    return 0


def cmd_backup_verify(args: Args, s: Session) -> int:
    if _online(s):
        result = s.call("db.verify", {"name": args.name})
    else:
        result = _offline("verifying", "backup_verify", {"name": args.name})
    if args.json:
        output.print_json(result)
    elif result["ok"]:
        print(f"{result['name']}: ok (schema {result['schema_version']})")
    else:
        print(f"{result['name']}: DAMAGED")
        for line in result["problems"]:
            print(f"  {output.visible(line)}")
        if result.get("moved_to"):
            print(f"  set aside as {result['moved_to']}: listed as damaged from now on")
    return 0 if result["ok"] else errors.EXIT_FAILED


def cmd_backup_restore(args: Args, s: Session) -> int:
    if _online(s):
        result = s.call_with_progress("db.restore", {"name": args.name})
    else:
        result = _offline("restoring", "backup_restore", {"name": args.name})
    if args.json:
        output.print_json(result)
        return 0
    print(f"restored {args.name} (schema {result['schema_version']})")
    if result.get("safety_copy"):
        print(f"the database it replaced is kept as {result['safety_copy']}")
    return 0


# --- pm db ----------------------------------------------------------------------------------
def render_check(result: dict[str, Any]) -> str:
    if result["ok"]:
        return "ok: integrity_check and foreign_key_check found nothing\n"
    out = ["the database has problems:"]
    out += [f"  integrity: {line}" for line in result["integrity"]]
    out += [
        f"  foreign key: {f['table']} row {f['rowid']} points at a missing {f['parent']} row"
        for f in result["foreign_keys"]
    ]
    if result.get("truncated"):
        out.append("  … (more not shown)")
    out.append("fix: pm db repair   (or restore a backup: pm backup list, pm backup restore NAME)")
    return "\n".join(out) + "\n"


def cmd_db_check(args: Args, s: Session) -> int:
    result = s.call("db.check") if _online(s) else _offline("checking", "db_check")
    output.show(result, args.json, render_check)
    return 0 if result["ok"] else errors.EXIT_FAILED


def render_repair(r: dict[str, Any]) -> str:
    if r["action"] == "none":
        extra = f" and rebuilt {', '.join(r['fts_rebuilt'])}" if r["fts_rebuilt"] else ""
        return f"no damage found; indexes rebuilt{extra}\n"
    out = [f"damage found: {r['problems_before'][0] if r['problems_before'] else '?'}"]
    if r["action"] == "reindexed":
        out.append("repaired by rebuilding the indexes; no rows were lost")
    else:
        rec = r["recovery"]
        lost = "an unknown number of" if rec["lost_rows"] is None else str(rec["lost_rows"])
        out.append(f"recovered {rec['recovered_rows']} rows into a new file; {lost} rows lost")
        for t in rec["tables"]:
            if t["lost"] or t["orphaned"] or t["unreadable_ranges"]:
                gone = "?" if t["lost"] is None else t["lost"]
                out.append(
                    f"  {t['table']}: {t['recovered']} recovered, {gone} lost"
                    f" ({t['orphaned']} orphaned)"
                )
        out += [f"  note: {n}" for n in rec["notes"]]
    if r["problems_after"]:
        out.append(f"still damaged: {r['problems_after'][0]}; restore a backup instead")
    out.append(f"the damaged file is kept as {r['damaged_copy']}")
    return "\n".join(out) + "\n"


def cmd_db_repair(args: Args, s: Session) -> int:
    if _online(s):
        result = s.call_with_progress("db.repair", {})
    else:
        result = _offline("repairing", "db_repair")
    output.show(result, args.json, render_repair)
    return 0 if not result["problems_after"] else errors.EXIT_FAILED


def cmd_db_migrate(args: Args, s: Session) -> int:
    if _online(s):
        health = s.call("db.health")
        result = {"schema_version": health["schema_version"], "applied": [], "backup": None}
        note = "the daemon applies migrations when it starts; nothing is pending"
    else:
        result = _offline("migrating", "db_migrate")
        note = (
            f"applied {', '.join(result['applied'])} (backed up first as {result['backup']})"
            if result["applied"]
            else "nothing was pending"
        )
    if args.json:
        output.print_json(result)
    else:
        print(f"schema version {result['schema_version']}: {note}")
    return 0


def cmd_db_rollback(args: Args, s: Session) -> int:
    """Restore the backup taken before the last migration, with the daemon stopped: the
    running daemon needs the newer schema, so it is stopped first — only once it is known that
    there is something to roll back; if the rollback then fails, it is started again."""
    stopped = False
    if _online(s):
        from client import daemonctl

        target = {
            "backups": s.call("db.backups")["items"],
            "live_version": s.call("db.health")["schema_version"],
        }
        from client import door

        try:
            door.ask("rollback_target", target)
        except door.Refused as e:
            raise errors.ClientError(f"{e}; pm-agentd keeps running") from None
        output.error("stopping pm-agentd to roll the database back")
        if daemonctl.stop(s):
            return errors.EXIT_FAILED
        s.close()
        stopped = True
    try:
        result = _offline("rolling back", "db_rollback")
    except errors.ClientError:
        if stopped:  # nothing changed: leave the daemon as it was found
            from client import daemonctl

            output.error("the rollback failed; starting pm-agentd again")
            daemonctl.start(s)
        raise
    if args.json:
        output.print_json(result)
        return 0
    b, sw = result["backup"], result["swapped"]
    print(f"rolled back to {b['name']} (schema {sw['schema_version']})")
    if sw.get("safety_copy"):
        print(f"the database it replaced is kept as {sw['safety_copy']}")
    print(
        "pm-agentd migrates it again when it next starts; to stay on this schema, install "
        "the pm-agent version that made it before starting the daemon"
    )
    return 0


def cmd_db_reset(args: Args, s: Session) -> int:
    if not args.yes:
        output.error(
            "pm db reset deletes every record (a backup is taken first); "
            "run `pm db reset --yes` to go ahead"
        )
        return errors.EXIT_USAGE
    result = s.call("db.reset", {"confirm": True})
    if args.json:
        output.print_json(result)
    else:
        print(
            f"the database is empty (schema {result['schema_version']}); "
            f"everything it held is in {result['backup']}"
        )
    return 0


def _export_target(given: str) -> str:
    """Where `--output` puts the export, checked before anything is made: its folder must
    exist and nothing may be there yet."""
    target = os.path.abspath(os.path.expanduser(given))
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise errors.ClientError(
            f"the folder {folder} does not exist; create it or choose another --output"
        )
    if os.path.lexists(target):
        raise errors.ClientError(f"{target} already exists; choose another --output")
    return target


def _move_export(made: str, target: str) -> None:
    """The export in <data>/exports moved to `target`, never over anything there (0600 files,
    a 0700 folder, like the original); on any failure neither a partial target nor the export
    is left behind."""
    try:
        if os.path.isdir(made):
            os.mkdir(target, 0o700)  # fails if something appeared there meanwhile
            for name in os.listdir(made):
                _place(os.path.join(made, name), os.path.join(target, name))
        else:
            _place(made, target)
    except BaseException as e:
        if not isinstance(e, FileExistsError):  # what is there then is not ours to remove
            _remove(target)
        _remove(made)
        if isinstance(e, OSError):
            raise errors.ClientError(
                f"could not write the export to {target}: {e.strerror or e}; nothing was kept"
            ) from None
        raise
    _remove(made)


def _place(source: str, dest: str) -> None:
    """`source` at `dest`, which must not exist: a hard link, or a copy across file systems."""
    try:
        os.link(source, dest)
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # another file system, or links not allowed there: copy
    with (
        open(source, "rb") as src,
        open(dest, "xb", opener=lambda p, f: os.open(p, f, 0o600)) as dst,
    ):
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def cmd_db_export(args: Args, s: Session) -> int:
    target = _export_target(args.output) if args.output else None
    result = s.call("db.export", {"format": args.format})
    if target is not None:
        _move_export(result["path"], target)
        result["path"] = target
    if args.json:
        output.print_json(result)
    else:
        rows = sum(result["tables"].values())
        print(f"exported {rows} rows from {len(result['tables'])} tables to {result['path']}")
    return 0


def cmd_db_import(args: Args, s: Session) -> int:
    source = os.path.abspath(os.path.expanduser(args.path))
    if not os.path.exists(source):
        raise errors.ClientError(f"{source} does not exist")
    data_dir = s.call("daemon.status")["data_dir"]
    staged = None
    if os.path.commonpath([source, data_dir]) != data_dir:
        # The daemon reads only inside its own folders: hand it a copy there.
        from client import door

        inbox = door.ask("import_inbox", {"data_dir": data_dir})
        staged = os.path.join(inbox, f"{int(time.time() * 1000)}-{os.path.basename(source)}")
        copy = shutil.copytree if os.path.isdir(source) else shutil.copyfile
        try:
            copy(source, staged)
            _private_tree(staged)
        except (OSError, shutil.Error) as e:
            _remove(staged)
            raise errors.ClientError(f"cannot read {source}: {e}") from None
    params = {"path": staged or source, "shown_as": source}
    try:
        result = s.call_with_progress("db.import", params)
    finally:
        if staged is not None:
            _remove(staged)
    if args.json:
        output.print_json(result)
    else:
        rows = sum(result["tables"].values())
        versions = f"schema {result['schema_version']} → {result['migrated_to']}"
        print(f"imported {rows} rows ({versions}); the previous database is in {result['backup']}")
    return 0


def _private_tree(path: str) -> None:
    """What pm puts in the data folder is 0600 in 0700 folders, like the daemon's own files."""
    os.chmod(path, 0o700 if os.path.isdir(path) else 0o600)
    for folder, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o700)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o600)


def command(word: str) -> Command:
    name = Arg("name", help="a backup's file name (pm backup list shows them)")
    if word == "backup":
        return Command(
            "backup",
            cmd_backup_now,
            help="back up now, list, verify or restore backups",
            verbs=[
                Command("now", cmd_backup_now, help="back up now (the default)"),
                Command("list", cmd_backup_list, help="every backup, newest first"),
                Command("verify", cmd_backup_verify, [name], help="integrity_check one backup"),
                Command(
                    "restore", cmd_backup_restore, [name], help="make a backup the live database"
                ),
            ],
        )
    return Command(
        "db",
        help="check, repair, migrate, roll back, reset, export, import",
        verbs=[
            Command("check", cmd_db_check, help="integrity and foreign keys"),
            Command("repair", cmd_db_repair, help="reindex, or recover into a new file"),
            Command("migrate", cmd_db_migrate, help="apply pending migrations"),
            Command(
                "rollback",
                cmd_db_rollback,
                help="restore the backup taken before the last migration",
            ),
            Command(
                "reset",
                cmd_db_reset,
                [Arg("yes", "--yes", flag=True, help="confirm")],
                help="delete every record (backs up first)",
            ),
            Command(
                "export",
                cmd_db_export,
                [
                    Arg("format", "--format", choices=["json", "csv"], default="json"),
                    Arg(
                        "output",
                        "--output",
                        "-o",
                        metavar="PATH",
                        help="move the export here (default: <data>/exports)",
                    ),
                ],
                help="all tables to JSON, or CSV files",
            ),
            Command(
                "import",
                cmd_db_import,
                [Arg("path", help="an export: a .json file or a CSV folder")],
                help="replace the database with an export",
            ),
        ],
    )
