"""The database `bench backup` copies: a daemon with every schedule off (none of its own jobs,
its nightly backup above all, runs during a measurement) and retention that never deletes,
and its file filled directly with sqlite3 to a target size — kv rows of ~4 KB JSON values,
each with the `kv.set` event the daemon would have written beside it, in ~2 MB transactions
— then checkpointed and synced, so the daemon reopens a settled file; and one `db.backup`
of it, timed.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import common
from client.sync import Client
from daemon.store import backup as backup_files
from daemon.store.clock import utc_now

MB = 1_000_000
VALUE_BYTES = 4000  # one kv row fills about one 4 KiB page
FILL_BATCH = 250  # kv rows (and as many events) per transaction: ~2 MB, the size step


def config_toml() -> str:
    """Every schedule off: none of the daemon's own jobs (its nightly backup above all) runs
    during a measurement."""
    from daemon.runtime.config import Schedules

    lines = ["[schedule]"] + [f'{name} = "off"' for name in Schedules.__struct_fields__]
    return "\n".join(lines) + "\n"


class BackupDaemon(common.Daemon):
    def __init__(self) -> None:
        super().__init__(
            {
                "synchronous": "FULL",
                "watch": "false",
                "rescan_interval_s": "0",
                "backup_keep_last": "1000",  # retention never deletes: the benchmark does
            }
        )
        config = self.root / "config.toml"
        config.write_text(config_toml())
        self.env["PM_AGENT_CONFIG"] = str(config)

    def __enter__(self) -> BackupDaemon:
        super().__enter__()
        return self

    @property
    def backups_dir(self) -> Path:
        return self.root / "data" / "backups"

    def stop_checked(self) -> None:
        code = self.stop()
        if code != 0:
            raise RuntimeError(f"the daemon exited with {code}:\n{self.output()}")


@dataclass
class Built:
    bytes: int
    kv_rows: int
    events: int
    seconds: float

    def describe(self) -> str:
        return (
            f"{self.bytes / MB:,.0f} MB ({self.bytes:,} bytes): {self.kv_rows:,} kv rows of "
            f"~{VALUE_BYTES:,}-byte JSON values + {self.events:,} kv.set events carrying the "
            f"same values, built in {self.seconds:.1f} s"
        )


def _value(rng: random.Random, n: int) -> str:
    head = f'{{"n":{n},"kind":"bench","text":"'
    return head + rng.randbytes((VALUE_BYTES - len(head) - 2) // 2).hex() + '"}'


def fill(db_path: Path, target_bytes: int) -> Built:
    """Rows into the stopped daemon's file until it holds `target_bytes`, then checkpoint and
    sync it: the daemon reopens a settled file."""
    started = time.perf_counter()
    rng = random.Random(20261122)
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        n = 0
        while int(conn.execute("PRAGMA page_count").fetchone()[0]) * page_size < target_bytes:
            kv_rows, events = [], []
            for _ in range(FILL_BATCH):
                n += 1
                now, key, value = utc_now(), f"fill-{n:07d}", _value(rng, n)
                kv_rows.append(("bench", key, value, now, now))
                data = f'{{"namespace":"bench","key":"{key}","value":{value},"expires_at":null}}'
                events.append((now, data))
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO kv (namespace, key, value, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                kv_rows,
            )
            conn.executemany(
                "INSERT INTO events (ts, topic, type, data) VALUES (?, 'kv', 'kv.created', ?)",
                events,
            )
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        kv_count = int(conn.execute("SELECT count(*) FROM kv").fetchone()[0])
        event_count = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()
    backup_files.sync_file(str(db_path))
    return Built(os.stat(db_path).st_size, kv_count, event_count, time.perf_counter() - started)


def our_backup(client: Client, *, keep: bool = False) -> tuple[dict[str, Any], float]:
    """One db.backup: its reply and RPC wall time; the file is deleted unless `keep`."""
    started = time.perf_counter()
    made: dict[str, Any] = client.call("db.backup", {})
    elapsed = time.perf_counter() - started
    if not keep:
        backup_files.remove_database(made["path"])
    if made.get("removed"):
        raise RuntimeError(f"retention removed backups the benchmark did not expect: {made}")
    return made, elapsed
