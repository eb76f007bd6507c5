"""`python -m bench reliability`: the long versions of the reliability suite, one part after
another — crash durability, SIGTERM under load and a full disk (bench.reliability_crash);
fuzzing and resource abuse (bench.reliability_fuzz); watch exhaustion
(bench.reliability_watch). The short versions of each run in the test suite (tests/
test_reliability_*.py, tests/test_watch.py). `--part NAME` is not offered: run one part with
`python -c "from bench import reliability_fuzz as m; m.main(5, False)"`.
"""

from __future__ import annotations

import importlib

PARTS = ("reliability_crash", "reliability_fuzz", "reliability_watch")


def main(runs: int, quick: bool) -> int:
    worst = 0
    for part in PARTS:
        module = importlib.import_module(f"bench.{part}")
        print(f"\n## {part}\n", flush=True)
        code: int = module.main(runs, quick)
        worst = max(worst, code)
    return worst
