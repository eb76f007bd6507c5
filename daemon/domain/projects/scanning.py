"""What the projects methods need of the runtime's scanner (daemon/runtime/scanner.py), and
what a scan reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import msgspec

if TYPE_CHECKING:
    from daemon.domain.app import App

Report = Callable[[str, int | None], None]  # message, percentage


class ScanIssue(msgspec.Struct, frozen=True):
    path: str
    error: str


class ScanSummary(msgspec.Struct, kw_only=True):
    scope: list[str]
    found: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: int = 0
    moved: int = 0
    returned: int = 0
    merged: int = 0  # duplicate records of one project folded into one (see merge.py)
    errors: list[ScanIssue] = msgspec.field(default_factory=list)
    duration_ms: float = 0.0


class Scanning(Protocol):
    """Scans on demand. Each brings the stored projects of its scope up to date with the disk
    (one write per project that changed) and returns what it found."""

    @property
    def roots(self) -> Sequence[str]:
        """The Dev roots (absolute)."""

    @property
    def follow_symlinks(self) -> bool: ...

    async def scan_all(self, report: Report | None = None) -> ScanSummary:
        """Every root, and every registered project."""

    async def scan_folders(
        self, folders: Sequence[str], report: Report | None = None
    ) -> ScanSummary:
        """Folders under a root: what is below them."""

    async def scan_projects(
        self, paths: Sequence[str], report: Report | None = None
    ) -> ScanSummary:
        """Single project folders: still a project, changed, or gone."""

    def announce(self, summary: ScanSummary) -> None:
        """Tell the scanner's listeners (the watcher) that the set of projects changed
        outside a scan."""


def scanner_of(app: App) -> Scanning:
    if app.scanner is None:
        raise RuntimeError("the runtime gave the App no scanner")
    return app.scanner
