"""The changes the watch benchmarks make on disk and how their arrival is timed: a Changer
makes change `i` of a run in a random project (a commit, a rewritten manifest, a new project
moved in, its rename: the same seed makes the same changes for every side), and an Inbox
stamps what arrives (the daemon's events, or watchfiles' batches) so `drive` can time each
change from its completion on disk to the first arrival that matches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import devtree
from client.aio import AsyncClient

KINDS = ("commit", "manifest", "create", "rename")
MATCH_TIMEOUT_S = 5.0
GAP_S = 0.2  # between changes: after one is seen, before the next is made
Predicate = Callable[[Any], bool]


class Inbox:
    """What arrives (events, or watchfiles batches), stamped on arrival."""

    def __init__(self) -> None:
        self.items: list[tuple[float, Any]] = []
        self._new = asyncio.Event()

    def put(self, item: Any) -> None:
        self.items.append((time.monotonic(), item))
        self._new.set()

    async def wait(self, match: Predicate, start: int, timeout: float) -> float | None:
        """Arrival time of the first item from index `start` on that matches; None: none."""
        deadline = time.monotonic() + timeout
        index = start
        while True:
            while index < len(self.items):
                arrived, item = self.items[index]
                index += 1
                if match(item):
                    return arrived
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), left)


@dataclass
class Change:
    kind: str
    done: float  # monotonic: the change is complete on disk
    event: Predicate  # matches the daemon's event
    batch: Predicate  # matches a watchfiles batch


def _event(kind: str, **want: Any) -> Predicate:
    def match(message: Any) -> bool:
        event = message["params"]["event"]
        if event["type"] != kind:
            return False
        data = event["data"]
        changed = data.get("changed", {})
        return all(data.get(k) == v or changed.get(k) == v for k, v in want.items())

    return match


def _names(*paths: str) -> Predicate:
    def match(batch: Any) -> bool:
        return any(path.startswith(paths) for _, path in batch)

    return match


class Changer:
    """Makes change `i` of a run; the same seed makes the same changes for both sides."""

    def __init__(self, tree: devtree.DevTree, seed: int, tag: str) -> None:
        self.tree = tree
        self.rng = random.Random(seed)
        self.tag = tag
        self.created: list[Path] = []  # every folder made in the Dev folder, final names
        self._last_new: Path | None = None

    async def make(self, i: int) -> Change:
        kind = KINDS[i % len(KINDS)]
        project = self.rng.choice(self.tree.projects)
        if kind == "commit":
            return await self._commit(project.path, i)
        if kind == "manifest":
            description = f"changed by the watch benchmark, {self.tag} change {i}"
            devtree.write_manifest(project, description)
            done = time.monotonic()
            path = str(project.path)
            return Change(
                kind,
                done,
                _event("projects.updated", path=path, description=description),
                _names(str(project.path / project.manifest)),
            )
        if kind == "create":
            return await self._create(project.path.parent, i)
        return self._rename()

    async def _commit(self, repo: Path, i: int) -> Change:
        done, sha = await commit_empty(self.tree, repo, f"{self.tag} change {i}")
        return Change(
            "commit",
            done,
            _event("projects.updated", path=str(repo), head_sha=sha),
            _names(str(repo) + os.sep),
        )

    async def _create(self, group: Path, i: int) -> Change:
        name = f"new-{self.tag}-{i:03d}"
        kind = ("node", "python")[i % 2]
        staged = await asyncio.to_thread(self.tree.new_project, name, kind)
        target = group / name
        os.rename(staged.path, target)
        done = time.monotonic()
        self.created.append(target)
        self._last_new = target
        return Change(
            "create", done, _event("projects.created", path=str(target)), _names(str(target))
        )

    def _rename(self) -> Change:
        assert self._last_new is not None
        old, new = self._last_new, self._last_new.with_name(self._last_new.name + "-renamed")
        os.rename(old, new)
        done = time.monotonic()
        self.created[self.created.index(old)] = new
        return Change("rename", done, _event("projects.moved", to=str(new)), _names(str(new)))

    def remove_created(self) -> None:
        for folder in self.created:
            shutil.rmtree(folder, ignore_errors=True)
        for staged in self.tree.staging.iterdir():
            shutil.rmtree(staged, ignore_errors=True)


@dataclass
class Side:
    """One side's latencies (None: nothing matched within MATCH_TIMEOUT_S) by kind."""

    latencies: dict[str, list[float | None]] = field(
        default_factory=lambda: {kind: [] for kind in KINDS}
    )

    def seen(self, kind: str | None = None) -> list[float]:
        kinds = [kind] if kind else list(KINDS)
        return [x for k in kinds for x in self.latencies[k] if x is not None]

    @property
    def missed(self) -> int:
        return sum(x is None for values in self.latencies.values() for x in values)


async def drive(
    changer: Changer, inbox: Inbox, count: int, pick: Callable[[Change], Predicate]
) -> Side:
    side = Side()
    for i in range(count):
        start = len(inbox.items)
        change = await changer.make(i)
        arrived = await inbox.wait(pick(change), start, MATCH_TIMEOUT_S)
        side.latencies[change.kind].append(None if arrived is None else arrived - change.done)
        await asyncio.sleep(GAP_S)
    return side


async def commit_empty(tree: devtree.DevTree, repo: Path, message: str) -> tuple[float, str]:
    """`git commit --allow-empty` in `repo`: when git exited, and the new head's sha."""
    proc = await asyncio.create_subprocess_exec(
        "git", "commit", "-q", "--allow-empty", "-m", message,
        cwd=repo, env=devtree.git_env(tree.home),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    done = time.monotonic()
    if proc.returncode != 0:
        raise RuntimeError(f"git commit failed in {repo}: {err.decode()}")
    return done, (repo / ".git" / "refs" / "heads" / "main").read_text().strip()


@contextlib.asynccontextmanager
async def project_events(socket_path: str, name: str) -> AsyncIterator[Inbox]:
    """A client subscribed to the daemon's project events, each put in the inbox on arrival."""
    client = await AsyncClient.connect(socket_path, name=name)
    inbox = Inbox()

    async def consume() -> None:
        async for message in client.notifications():
            if message.get("method") == "events.event":
                inbox.put(message)

    task = asyncio.get_running_loop().create_task(consume())
    try:
        await client.call("events.subscribe", {"topics": ["projects"]})
        yield inbox
    finally:
        await client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
