"""`$/progress` as a client sees it from a real daemon: percentages only rise, and once one was
given every later message carries one, the end included (a client that read a missing figure as
0 showed a finished scan or backup as 100 %, then 0 %)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from client.aio import AsyncClient
from tests.conftest import DaemonFactory


def assert_monotonic(values: list[dict[str, Any]]) -> None:
    assert values[0]["kind"] == "begin" and values[-1]["kind"] == "end", values
    shown: list[int] = []
    for value in values:
        if shown:
            assert "percentage" in value, values  # never "no figure" after one was given
        if "percentage" in value:
            shown.append(value["percentage"])
    assert shown == sorted(shown), values
    assert shown[-1] == 100, values


@pytest.mark.parametrize(("method", "params"), [("projects.scan", {}), ("db.backup", {})])
def test_progress_of_a_scan_and_a_backup_never_goes_back(
    make_daemon: DaemonFactory, method: str, params: dict[str, Any]
) -> None:
    d = make_daemon(config={"watch": False, "rescan_interval_s": 0})
    for i in range(3):  # git-less projects: a manifest and a README
        folder = d.dev_root / f"p{i}"
        folder.mkdir(parents=True)
        (folder / "pyproject.toml").write_text(f'[project]\nname = "p{i}"\n')
    d.start()

    async def scenario() -> list[dict[str, Any]]:
        client = await AsyncClient.connect(d.socket_path)
        values: list[dict[str, Any]] = []
        await client.call(method, params, progress=values.append)
        await client.close()
        return values

    assert_monotonic(asyncio.run(scenario()))
