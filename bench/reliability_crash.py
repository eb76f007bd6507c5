"""Reliability under crashes: SIGKILL under load, SIGTERM under load, a full disk.

Three scenarios against a real `python -m daemon`, each with the figure the issue asks for:

- **kill**: clients write (durable `kv.set`, every key new, each sent once) while the daemon
  is killed with SIGKILL at a random moment, restarted, and the clients reconnect and go on.
  After each kill the files left behind are checked before the restart: `integrity_check`,
  every acknowledged key there with its value, nothing there twice (one `kv.set` event per
  key), nothing there that was never sent. Writes in flight at the kill (sent, never
  answered) may or may not be there; they are counted apart.
- **term**: clients write, several requests in flight each, when SIGTERM comes. Every request
  must get a result or a `shutting_down` error (a connection closing with a request
  unanswered is silence: it must not happen), every acknowledged write must be there, and the
  daemon must exit 0 within `stop_timeout_s`.
- **disk full**: the data folder on a small tmpfs, filled until SQLite says the disk is full.
  Writes fail `disk_full` (-32007), reads go on, a checkpoint and a backup on the full disk
  fail cleanly, and once space returns writes succeed again without a restart.

The engines take any daemon handle with `socket_path`, `db_path`, `process`, `start()` and
`stop()` (bench.common.Daemon here; tests/helpers.DaemonProcess in the tests, which run the
short versions). `python -m bench.reliability_crash [--quick]` runs this alone.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

from bench import common
from bench.crash_disk import (
    DiskFull,
    TmpfsUnavailable,
    _disk_bench,
    checkpoint_recorded,
    disk_full_scenario,
    ensure_stopped,
    tmpfs,
)
from bench.crash_kill import _kill_bench, kill_cycles
from bench.crash_shared import describe
from bench.crash_term import TermCycle, _term_bench, term_cycle

# Re-exported: tests/test_reliability_crash.py reaches them as `reliability_crash.NAME`.
__all__ = [
    "DiskFull",
    "TermCycle",
    "TmpfsUnavailable",
    "checkpoint_recorded",
    "describe",
    "disk_full_scenario",
    "ensure_stopped",
    "kill_cycles",
    "main",
    "run_all",
    "sections",
    "term_cycle",
    "tmpfs",
]


def run_all(runs: int, quick: bool, seed: int | None = None) -> tuple[list[str], bool]:
    seed = seed if seed is not None else random.randrange(1 << 32)
    print(f"random seed {seed}", flush=True)
    rng = random.Random(seed)
    kill, kill_ok = _kill_bench(quick, rng)
    term, term_ok = _term_bench(quick, rng)
    disk, disk_passed = _disk_bench(1 if quick else runs)
    rendered = [t if isinstance(t, str) else t.render() for t in (kill, term, disk)]
    return rendered, kill_ok and term_ok and disk_passed


def sections(quick: bool) -> list[str]:
    """The three tables, rendered (for `python -m bench reliability`)."""
    return run_all(1, quick)[0]


def main(runs: int, quick: bool) -> int:
    """`runs` repeats the disk-full scenario; the kill and term scenarios are their own
    repetitions (50 and 20 cycles; --quick: 5 and 3)."""
    rendered, ok = run_all(runs, quick)
    print()
    for text in rendered:
        print(text)
    print("all goals met" if ok else "GOALS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.reliability_crash", description=__doc__)
    p.add_argument("--runs", type=int, default=1, help="disk-full repetitions (default 1)")
    p.add_argument("--quick", action="store_true", help="a short smoke version")
    args = p.parse_args()
    print(f"# bench reliability_crash{' --quick' if args.quick else ''}")
    print(f"machine: {common.describe_machine()}")
    print(f"code: {common.code_version()}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average before: {load}")
    sys.exit(main(args.runs, args.quick))
