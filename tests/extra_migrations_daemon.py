"""Run pm-agentd with the shipped migrations plus those in $PM_TEST_EXTRA_MIGRATIONS.

Tests use it to watch the daemon while a deliberately slow migration runs; everything else
is the real daemon.
"""

from __future__ import annotations

import os
import sys
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import cast

from daemon.runtime.main import main
from daemon.store import migrations

if __name__ == "__main__":
    extra_dir = Path(os.environ.pop("PM_TEST_EXTRA_MIGRATIONS"))
    shipped = migrations.load() + migrations.load(cast(Traversable, extra_dir))
    sys.exit(main(sys.argv[1:], migrations=shipped))
