"""`pm` start-up, every command class, against `python -c pass` with the same interpreter.

Each class of command is timed end to end (fork to exit) as a shell prompt or an agent's hook
runs it: `pm status`, a `kv get`, a `kv list`, a generated `list`, `pm projects` and a Tab's
completion (which asks the daemon for project names). The baseline `python -c pass` runs in
the same rotation, so noise hits all alike.

With PM_BENCH_CLI_BEFORE=<commit> the client of that commit (its client/ and daemon/ trees,
from `git archive`, put first on PYTHONPATH) is timed in the same rotation against the same
daemon: before and after, the same run. Bytecode is compiled first and
PYTHONDONTWRITEBYTECODE kept out of the children, as after a real `pip install`.
`python -X importtime` then shows what each command imports beyond `python -c pass`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import common
from bench.common import REPO, Table, fmt_ms, median, spread

GOAL_RATIO = 2.0
# What the console script pip writes imports before any of pm's code runs: for reference.
IMPORT_RE = "python -c 'import re'"
BEFORE_ENV = "PM_BENCH_CLI_BEFORE"
# Modules a command's start-up should not pay for (each costs milliseconds here).
HEAVY = (
    "argparse",
    "json",
    "typing",
    "msgspec",
    "asyncio",
    "structlog",
    "daemon",
    "subprocess",
    "datetime",
    "socket",
    "dataclasses",
    "inspect",
    "tomllib",
)


@dataclass(frozen=True)
class CommandClass:
    name: str
    argv: list[str]  # after (this tree)
    before: list[str]  # what the same thing was typed as before (may not exist then)


CLASSES = [
    CommandClass("status", ["status"], ["status"]),
    CommandClass("kv get", ["kv", "get", "bench", "k07"], ["kv", "get", "bench", "k07"]),
    CommandClass("kv list", ["kv", "list", "bench"], ["kv", "list", "bench"]),
    # `pm jobs list` is generated from rpc.discover; before, `pm jobs` was the way to list.
    CommandClass("generated list (jobs list)", ["jobs", "list"], ["jobs"]),
    CommandClass("projects", ["projects"], ["projects"]),
    CommandClass(
        "completion (project names)",
        ["__complete", "--", "project", ""],
        ["__complete", "--", "project", ""],
    ),
]


def pm_script() -> Path:
    path = Path(sys.executable).parent / "pm"
    if not path.exists():
        raise FileNotFoundError(f"no `pm` console script next to {sys.executable}")
    return path


def compile_bytecode(*trees: Path) -> None:
    folders = [str(t / part) for t in trees for part in ("client", "daemon")]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *folders], env=common.child_env(), check=True
    )


def before_tree(commit: str, into: Path) -> Path:
    """The client and daemon packages of `commit`, read from git (nothing in the checkout
    changes)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit, "client", "daemon", "schema"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def wall_time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited with {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


@dataclass(frozen=True)
class Timed:
    """One thing timed: its argv and environment."""

    argv: list[str]
    env: dict[str, str]


def one_run(timed: dict[str, Timed], count: int) -> dict[str, list[float]]:
    """`count` rounds of everything; the order rotates from round to round."""
    times: dict[str, list[float]] = {name: [] for name in timed}
    names = list(timed)
    for i in range(count):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(wall_time(timed[name].argv, timed[name].env))
    return times


def imported(argv: list[str], env: dict[str, str]) -> list[str]:
    """The modules `python -X importtime ARGV` imports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=True,
        text=True,
    )
    return [
        line.split("|")[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "[us]" not in line
    ]


def heavy(modules: list[str], baseline: list[str]) -> list[str]:
    seen = set(baseline)
    return sorted(
        {
            top
            for m in modules
            if m not in seen and (top := m.split(".")[0]) in HEAVY and (top == m or top not in seen)
        }
    )


def seed(daemon: common.Daemon) -> None:
    """Something for every command to show: kv entries, a few projects, recorded jobs."""
    for i in range(20):
        daemon.call("kv.set", {"namespace": "bench", "key": f"k{i:02d}", "value": {"n": i}})
    dev = Path(daemon.env["PM_AGENT_DEV_ROOT"])
    for i in range(8):
        repo = dev / f"project-{i}"
        repo.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", str(repo)], check=True, env=daemon.env)
    daemon.call("projects.scan", {})
    for i in range(10):
        daemon.call("jobs.record", {"kind": f"bench-{i}", "status": "completed"})


def main(runs: int, quick: bool) -> int:
    count = 10 if quick else 50
    pm = str(pm_script())
    commit = os.environ.get(BEFORE_ENV)
    scratch = Path(tempfile.mkdtemp(prefix="pm-bench-cli-"))
    try:
        old = before_tree(commit, scratch) if commit else None
        compile_bytecode(REPO, *([old] if old else []))
        with common.Daemon() as daemon:
            seed(daemon)
            env = dict(daemon.env)  # HOME and PM_AGENT_SOCKET point at it
            old_env = {**env, "PYTHONPATH": str(old)} if old else env
            timed = {
                "python -c pass": Timed([sys.executable, "-c", "pass"], env),
                IMPORT_RE: Timed([sys.executable, "-c", "import re"], env),
            }
            for c in CLASSES:
                timed[c.name] = Timed([pm, *c.argv], env)
                if old:
                    timed[f"{c.name} (before)"] = Timed([pm, *c.before], old_env)
            one_run(timed, 3)  # warm the page cache, the bytecode and pm's own cache
            results = []
            for i in range(runs):
                results.append(one_run(timed, count))
                print(
                    f"run {i + 1}/{runs}: "
                    + ", ".join(f"{n} {fmt_ms(median(t))}" for n, t in results[-1].items()),
                    flush=True,
                )
            base = imported(["-c", "pass"], env)
            loads = {c.name: heavy(imported([pm, *c.argv], env), base) for c in CLASSES}
            old_loads = (
                {c.name: heavy(imported([pm, *c.before], old_env), base) for c in CLASSES}
                if old
                else {}
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(report(results, loads, old_loads, commit, count))
    return 0


def report(
    results: list[dict[str, list[float]]],
    loads: dict[str, list[str]],
    old_loads: dict[str, list[str]],
    commit: str | None,
    count: int,
) -> str:
    p = common.percentile

    def across(name: str, q: float) -> list[float]:
        return [p(r[name], q) for r in results]

    def ratio(name: str) -> float:
        return median([p(r[name], 50) / p(r["python -c pass"], 50) for r in results])

    columns = ["command", "p50", "p99", "p50 / python -c pass"]
    if commit:
        columns += [f"before ({commit}) p50", "before p99", "before / python"]
    table = Table(
        f"cli: every command class vs. `python -c pass`, {len(results)} runs x {count} of each, "
        "interleaved",
        columns,
    )
    base = "python -c pass"
    for name in (base, IMPORT_RE):
        row = [name, spread(across(name, 50), fmt_ms), spread(across(name, 99), fmt_ms),
               f"{ratio(name):.2f}x"]  # fmt: skip
        table.add(*row, *(["", "", ""] if commit else []))
    missed = []
    for c in CLASSES:
        cells = [
            c.name,
            spread(across(c.name, 50), fmt_ms),
            spread(across(c.name, 99), fmt_ms),
            f"{ratio(c.name):.2f}x",
        ]
        if ratio(c.name) > GOAL_RATIO:
            missed.append(c.name)
        if commit:
            old = f"{c.name} (before)"
            cells += [
                spread(across(old, 50), fmt_ms),
                spread(across(old, 99), fmt_ms),
                f"{ratio(old):.2f}x",
            ]
        table.add(*cells)
    table.notes += [
        "Medians across runs, with the range in brackets; p50/p99 are nearest-rank per run. "
        "Wall time is from the parent's fork to the child's exit, the same for every command. "
        "The commands, in order: "
        + "; ".join(f"`pm {' '.join(c.argv)}`" for c in CLASSES)
        + (
            " (before: " + "; ".join(f"`pm {' '.join(c.before)}`" for c in CLASSES) + ")"
            if commit
            else ""
        )
        + ".",
        f"`{IMPORT_RE}` is what the `pm` console script itself imports before any of pm's "
        "code runs (its `sys.argv[0]` rewrite): part of every command's time.",
        "Heavy modules imported beyond `python -c pass` (of "
        + ", ".join(HEAVY)
        + "): "
        + "; ".join(f"{name}: {', '.join(found) or 'none'}" for name, found in loads.items())
        + ".",
    ]
    if old_loads:
        table.notes.append(
            "Before: "
            + "; ".join(f"{n}: {', '.join(found) or 'none'}" for n, found in old_loads.items())
            + "."
        )
    table.notes.append(
        f"Goal every command <= {GOAL_RATIO:g}x python -c pass at the median: "
        + ("met" if not missed else "NOT met by " + ", ".join(missed))
        + "."
    )
    return table.render()
