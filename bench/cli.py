"""`pm status` wall time against `python -c pass` with the same interpreter.

Bytecode is compiled first and PYTHONDONTWRITEBYTECODE is kept out of the children, as after a
real `pip install`. The two commands alternate, so noise hits both alike. `python -X importtime`
then shows what `pm status` imports: none of asyncio, structlog, msgspec or the daemon.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import common
from bench.common import REPO, Table, fmt_ms, fmt_ratio, median, spread

GOAL_RATIO = 2.0
FORBIDDEN = ("asyncio", "structlog", "msgspec", "daemon")


def pm_script() -> Path:
    path = Path(sys.executable).parent / "pm"
    if not path.exists():
        raise FileNotFoundError(f"no `pm` console script next to {sys.executable}")
    return path


def compile_bytecode() -> None:
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "client"), str(REPO / "daemon")],
        env=common.child_env(),
        check=True,
    )


def wall_time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited with {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


# What is timed: `pm status`, the baseline, and for reference what the console script that
# pip writes imports before pm-agent's code (`import re`, to rewrite sys.argv[0]).
COMMANDS = {
    "pm": ["{pm}", "status"],
    "python": ["{python}", "-c", "pass"],
    "import re": ["{python}", "-c", "import re"],
}


@dataclass
class Run:
    times: dict[str, list[float]]

    @property
    def pm(self) -> list[float]:
        return self.times["pm"]

    @property
    def python(self) -> list[float]:
        return self.times["python"]


def one_run(commands: dict[str, list[str]], env: dict[str, str], count: int) -> Run:
    """`count` rounds of every command; the order rotates from round to round."""
    run = Run({name: [] for name in commands})
    names = list(commands)
    for i in range(count):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            run.times[name].append(wall_time(commands[name], env))
    return run


@dataclass
class Imports:
    modules: list[str]
    top_level: list[tuple[str, int]]  # (name, cumulative µs) of imports not nested in others

    def forbidden(self) -> list[str]:
        return sorted(
            m for m in self.modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)
        )


def import_times(argv: list[str], env: dict[str, str]) -> Imports:
    """What `python -X importtime ARGV` imports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=True,
        text=True,
    )
    modules: list[str] = []
    top_level: list[tuple[str, int]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        modules.append(name.strip())
        if not name[1:].startswith(" "):  # nested imports are indented
            top_level.append((name.strip(), int(cumulative)))
    return Imports(modules, top_level)


def extra_imports(pm: Imports, python: Imports) -> str:
    """`pm status`'s top-level imports that `python -c pass` does not do, costliest first."""
    seen = set(python.modules)
    extra = sorted(((us, n) for n, us in pm.top_level if n not in seen), reverse=True)
    return ", ".join(f"{name} {us / 1000:.1f} ms" for us, name in extra)


def main(runs: int, quick: bool) -> int:
    count = 10 if quick else 50
    pm = pm_script()
    compile_bytecode()
    results: list[Run] = []
    with common.Daemon() as daemon:
        env = dict(daemon.env)  # HOME and PM_AGENT_SOCKET point at it; no DONTWRITEBYTECODE
        subst = {"pm": str(pm), "python": sys.executable}
        commands = {k: [a.format(**subst) for a in argv] for k, argv in COMMANDS.items()}
        one_run(commands, env, 3)  # warm the page cache and the bytecode
        for i in range(runs):
            results.append(one_run(commands, env, count))
            last = results[-1]
            print(
                f"run {i + 1}/{runs}: pm status {fmt_ms(median(last.pm))}, "
                f"python -c pass {fmt_ms(median(last.python))}",
                flush=True,
            )
        imports = import_times(commands["pm"], env)
        extra = extra_imports(imports, import_times(["-c", "pass"], env))
    print()
    print(report(results, imports, extra, count))
    return 0 if not imports.forbidden() else 1


def report(results: list[Run], imports: Imports, extra: str, count: int) -> str:
    p = common.percentile
    table = Table(
        f"cli: `pm status` vs. `python -c pass`, {len(results)} runs x {count} of each, "
        "interleaved with `python -c 'import re'`",
        ["metric", "python -c pass (baseline)", "pm status", "pm/python"],
    )
    for label, q in (("wall time p50", 50.0), ("wall time p99", 99.0)):
        base = [p(r.python, q) for r in results]
        ours = [p(r.pm, q) for r in results]
        table.add(label, spread(base, fmt_ms), spread(ours, fmt_ms), _ratio(ours, base))
    ratio = median([p(r.pm, 50) / p(r.python, 50) for r in results])
    bad = imports.forbidden()
    re_ms = median([p(r.times["import re"], 50) - p(r.python, 50) for r in results]) * 1000
    pm_ms = median([p(r.pm, 50) - p(r.python, 50) for r in results]) * 1000
    table.notes += [
        "Medians across runs, with the range in brackets; p50/p99 are nearest-rank per run. "
        "Wall time is from the parent's fork to the child's exit, the same for all commands.",
        f"`pm status` takes {pm_ms:.1f} ms more than `python -c pass`; `python -c 'import re'`, "
        f"timed in the same rotation, takes {re_ms:.1f} ms more: that is what the console "
        "script pip writes imports before any pm-agent code runs.",
        f"`python -X importtime pm status`: {len(imports.modules)} modules imported; "
        + (f"FORBIDDEN imports: {', '.join(bad)}" if bad else "none of " + ", ".join(FORBIDDEN))
        + f". Imports beyond those of `python -c pass` (cumulative, as -X importtime "
        f"inflates them): {extra}.",
        f"Goal pm status <= {GOAL_RATIO:g}x python -c pass: "
        + ("met" if ratio <= GOAL_RATIO else "NOT met")
        + f" ({ratio:.2f}x at the median).",
    ]
    return table.render()


def _ratio(ours: list[float], base: list[float]) -> str:
    return fmt_ratio(median(ours), median(base))
