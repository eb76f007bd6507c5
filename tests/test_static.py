"""The code stays ruff- and mypy-clean: CI runs these with the rest. And `python -m bench`
lists every benchmark with a line that keeps up with its module."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

BIN = Path(sys.executable).parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_lint() -> None:
    done = run(str(BIN / "ruff"), "check", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format() -> None:
    done = run(str(BIN / "ruff"), "format", "--check", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy() -> None:
    done = run(sys.executable, "-m", "mypy")
    assert done.returncode == 0, done.stdout + done.stderr


def _runs_alone(path: Path) -> bool:
    """Has the module a `main(runs, quick)`, what `python -m bench NAME` calls?"""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == "main":
            return [a.arg for a in node.args.args] == ["runs", "quick"]
    return False


def test_bench_lists_every_benchmark_with_its_own_figures() -> None:
    """Every module `python -m bench` can run is listed (the reliability parts run through
    `reliability`), and each figure its line gives (64 clients, 1,000 repos…) is one the
    module, a part it runs or a bench module it imports uses."""
    from bench.__main__ import BENCHMARKS
    from bench.reliability import PARTS

    folder = REPO / "bench"
    runnable = {p.stem for p in folder.glob("*.py") if _runs_alone(p)}
    assert runnable - set(PARTS) == set(BENCHMARKS)
    for name, line in BENCHMARKS.items():
        modules = [name, *(PARTS if name == "reliability" else ())]
        text = "".join((folder / f"{m}.py").read_text() for m in modules)
        for used in re.findall(r"from bench(?:\.| import )(\w+)", text):
            if (folder / f"{used}.py").exists():
                text += (folder / f"{used}.py").read_text()
        plain = text.replace(",", "").replace("_", "")
        for figure in re.findall(r"(?<![\w.])\d[\d,]*", line):
            number = figure.replace(",", "")
            assert re.search(rf"(?<!\d){number}(?!\d)", plain), f"bench {name}: {figure}?"
