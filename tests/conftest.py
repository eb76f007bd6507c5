from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import DaemonProcess

DaemonFactory = Callable[..., DaemonProcess]


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[DaemonFactory]:
    """Build (not start) daemons in this test's temp dir; all are stopped afterwards."""
    made: list[DaemonProcess] = []

    def make(name: str = "d", **kwargs: Any) -> DaemonProcess:
        daemon = DaemonProcess(tmp_path / name, **kwargs)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.cleanup()


@pytest.fixture
def daemon(make_daemon: DaemonFactory) -> DaemonProcess:
    """A started daemon with default settings."""
    return make_daemon().start()
