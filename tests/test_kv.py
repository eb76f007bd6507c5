"""The key-value store end to end: through the socket, into the file, and back."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from client.aio import AsyncClient
from client.errors import RemoteError
from tests.conftest import DaemonFactory
from tests.helpers import DaemonProcess


def kv_set(d: DaemonProcess, ns: str, key: str, value: Any, **extra: Any) -> Any:
    return d.call("kv.set", {"namespace": ns, "key": key, "value": value, **extra})


def kv_get(d: DaemonProcess, ns: str, key: str) -> Any:
    return d.call("kv.get", {"namespace": ns, "key": key})["value"]


def test_set_get_overwrite_delete(daemon: DaemonProcess) -> None:
    value = {"nested": [1, 2.5, "three", None, True], "unicode": "ünï 😀"}
    first = kv_set(daemon, "app", "prefs", value)
    assert first["created"] is True and first["expires_at"] is None
    assert kv_get(daemon, "app", "prefs") == value
    second = kv_set(daemon, "app", "prefs", [1])
    assert second["created"] is False and second["updated_at"] >= first["updated_at"]
    assert kv_get(daemon, "app", "prefs") == [1]
    assert kv_get(daemon, "other", "prefs") is None  # namespaces are separate
    assert daemon.call("kv.delete", {"namespace": "app", "key": "prefs"}) == {"deleted": True}
    assert daemon.call("kv.delete", {"namespace": "app", "key": "prefs"}) == {"deleted": False}
    assert kv_get(daemon, "app", "prefs") is None


def test_values_of_every_json_type(daemon: DaemonProcess) -> None:
    values: list[Any] = [0, -1.5, "", "text", True, False, None, [], {}, [[[]]]]
    for i, value in enumerate(values):
        kv_set(daemon, "types", str(i), value)
        assert kv_get(daemon, "types", str(i)) == value


def test_the_value_is_stored_as_json_in_the_file(daemon: DaemonProcess) -> None:
    kv_set(daemon, "file", "k", {"a": 1})
    conn = sqlite3.connect(daemon.db_path)
    (stored,) = conn.execute("SELECT value FROM kv WHERE namespace='file' AND key='k'").fetchone()
    conn.close()
    assert stored == '{"a":1}'


def test_expiry_by_ttl_and_by_time(daemon: DaemonProcess) -> None:
    kv_set(daemon, "cache", "short", 1, ttl_s=0.2)
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    long_lived = kv_set(daemon, "cache", "long", 2, expires_at=soon)
    assert long_lived["expires_at"].startswith(soon[:19])
    assert kv_get(daemon, "cache", "short") == 1
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while kv_get(daemon, "cache", "short") is not None:
        assert datetime.now(UTC) < deadline, "the entry never expired"
    assert kv_get(daemon, "cache", "long") == 2
    listed = daemon.call("kv.list", {"namespace": "cache"})
    assert [e["key"] for e in listed["items"]] == ["long"] and listed["total"] == 1
    # Writing an expired key again makes a new entry.
    assert kv_set(daemon, "cache", "short", 3)["created"] is True


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"ttl_s": -1}, "ttl_s"),
        ({"ttl_s": 5, "expires_at": "2099-01-01T00:00:00Z"}, "ttl_s"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2099-01-01T00:00:00"}, "expires_at"),  # no timezone
        ({"expires_at": "tomorrow"}, "expires_at"),
    ],
)
def test_bad_expiry_is_refused(daemon: DaemonProcess, extra: dict[str, Any], field: str) -> None:
    error = daemon.call_error("kv.set", {"namespace": "n", "key": "k", "value": 1, **extra})
    assert error.code == -32602 and error.data["field"] == field
    assert kv_get(daemon, "n", "k") is None  # nothing was written


def test_value_size_limit(daemon: DaemonProcess) -> None:
    error = daemon.call_error("kv.set", {"namespace": "n", "key": "big", "value": "x" * (1 << 20)})
    assert error.kind == "too_large" and error.data["limit"] == 1 << 20
    assert kv_get(daemon, "n", "big") is None


def test_list_pages_filters_and_counts(daemon: DaemonProcess) -> None:
    for i in range(25):
        kv_set(daemon, "pages", f"item-{i:02d}", i)
    kv_set(daemon, "pages", "other", "x")
    kv_set(daemon, "zz", "k", 1)
    page = daemon.call("kv.list", {"namespace": "pages", "prefix": "item-", "limit": 10})
    assert [e["key"] for e in page["items"]] == [f"item-{i:02d}" for i in range(10)]
    assert page["total"] == 25
    last = daemon.call(
        "kv.list", {"namespace": "pages", "prefix": "item-", "limit": 10, "offset": 20}
    )
    assert [e["value"] for e in last["items"]] == list(range(20, 25)) and last["total"] == 25
    everything = daemon.call("kv.list", {"limit": 1000})
    assert everything["total"] == 27
    assert [e["namespace"] for e in everything["items"]][-1] == "zz"
    error = daemon.call_error("kv.list", {"prefix": "item-"})
    assert error.data["field"] == "prefix"
    assert daemon.call_error("kv.list", {"limit": 0}).data["field"] == "limit"


def test_a_page_of_big_values_stops_at_its_byte_budget(daemon: DaemonProcess) -> None:
    """Twelve values of 1 MiB: a page ends after the one passing 8 MiB (a reply of
    `limit` such values could be gigabytes), `total` still counts all, and paging on with
    offset + len(items) gets the rest; the event log and a replay page the same way."""
    big = "x" * (1024 * 1024 - 2)  # 1 MiB of JSON with its quotes
    for i in range(12):
        kv_set(daemon, "big", f"v{i:02d}", big)
    first = daemon.call("kv.list", {"namespace": "big", "limit": 100})
    assert len(first["items"]) == 8 and first["total"] == 12
    rest = daemon.call("kv.list", {"namespace": "big", "limit": 100, "offset": 8})
    assert [e["key"] for e in first["items"] + rest["items"]] == [f"v{i:02d}" for i in range(12)]
    events = daemon.call("events.list", {"topics": ["kv.created"], "limit": 100})
    assert len(events["items"]) == 8 and events["total"] == 12

    async def replayed() -> list[str]:
        client = await AsyncClient.connect(daemon.socket_path)
        try:
            await client.call("events.subscribe", {"topics": ["kv.created"], "since": 0})
            got = []
            for _ in range(12):
                message = await client.next_notification(30)
                got.append(message["params"]["event"]["data"]["key"])
            return got
        finally:
            await client.close()

    assert asyncio.run(replayed()) == [f"v{i:02d}" for i in range(12)]


def test_prefix_matches_exactly_with_awkward_characters(daemon: DaemonProcess) -> None:
    keys = ["a%b", "a%c", "a_b", "ab", "a\U0010ffffz", "a\U0010ffff", "b"]
    for key in keys:
        kv_set(daemon, "chars", key, 1)

    def listed(prefix: str) -> list[str]:
        page = daemon.call("kv.list", {"namespace": "chars", "prefix": prefix})
        return [e["key"] for e in page["items"]]

    assert listed("a%") == ["a%b", "a%c"]
    assert listed("a_") == ["a_b"]
    assert listed("a\U0010ffff") == ["a\U0010ffff", "a\U0010ffffz"]
    assert len(listed("a")) == 6


def test_sql_metacharacters_are_only_data(daemon: DaemonProcess) -> None:
    nasty = "x'); DROP TABLE kv; --"
    kv_set(daemon, nasty, nasty, nasty)
    assert kv_get(daemon, nasty, nasty) == nasty
    assert daemon.call("kv.list", {"namespace": nasty, "prefix": "x'"})["total"] == 1
    assert "kv" in daemon.call("db.health")["files"]["tables"]


def test_every_change_is_an_event(daemon: DaemonProcess) -> None:
    kv_set(daemon, "ev", "k", {"v": 1})
    kv_set(daemon, "ev", "k", {"v": 2}, ttl_s=60)
    daemon.call("kv.delete", {"namespace": "ev", "key": "k"})
    daemon.call("kv.delete", {"namespace": "ev", "key": "k"})  # no change, no event
    events = daemon.call("events.list", {"topics": ["kv"]})["items"]
    assert [e["type"] for e in events] == ["kv.created", "kv.updated", "kv.deleted"]
    created, updated, deleted = (e["data"] for e in events)
    assert {k: created[k] for k in ("namespace", "key", "value", "expires_at", "version")} == {
        "namespace": "ev", "key": "k", "value": {"v": 1}, "expires_at": None, "version": 1,
    }  # fmt: skip
    assert updated == {
        "id": created["id"], "uid": created["uid"], "version": 2, "namespace": "ev", "key": "k",
        "changed": {"value": {"v": 2}, "expires_at": updated["changed"]["expires_at"]},
    }  # fmt: skip
    assert updated["changed"]["expires_at"] > created["created_at"]
    assert deleted == {"id": created["id"], "uid": created["uid"], "namespace": "ev", "key": "k"}


def test_the_events_say_what_the_rows_hold(daemon: DaemonProcess) -> None:
    # kv.set builds its events from what it knows instead of reading the row back: each must
    # still be the row exactly as stored and as kv.list shows it.
    kv_set(daemon, "rows", "a", {"n": [1, 2]}, ttl_s=600)
    kv_set(daemon, "rows", "a", {"n": 3})
    kv_set(daemon, "rows", "b", "x")
    listed = {e["key"]: e for e in daemon.call("kv.list", {"namespace": "rows"})["items"]}
    events = daemon.call("events.list", {"topics": ["kv"]})["items"]
    created = [e["data"] for e in events if e["type"] == "kv.created"]
    assert created[1] == listed["b"]
    first = created[0]
    assert {k: first[k] for k in ("id", "uid", "created_at")} == {
        k: listed["a"][k] for k in ("id", "uid", "created_at")
    }
    assert first["expires_at"] > first["created_at"] and first["value"] == {"n": [1, 2]}
    updated = next(e["data"] for e in events if e["type"] == "kv.updated")
    assert updated["version"] == listed["a"]["version"] == 2
    assert updated["changed"] == {"value": {"n": 3}, "expires_at": None}
    assert listed["a"]["expires_at"] is None and listed["a"]["updated_at"] > first["updated_at"]


def test_an_expired_entry_written_again_is_a_new_entry(daemon: DaemonProcess) -> None:
    conn = sqlite3.connect(daemon.db_path)
    kv_set(daemon, "exp", "k", 1, ttl_s=60)
    with conn:  # let it expire (the daemon compares stored times as text)
        conn.execute("UPDATE kv SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE key = 'k'")
    conn.close()
    assert kv_get(daemon, "exp", "k") is None
    assert kv_set(daemon, "exp", "k", 2)["created"] is True
    events = daemon.call("events.list", {"topics": ["kv"]})["items"]
    assert [e["type"] for e in events] == ["kv.created", "kv.deleted", "kv.created"]
    assert events[1]["data"]["uid"] == events[0]["data"]["uid"] != events[2]["data"]["uid"]


def test_clear_reports_progress_and_deletes_in_chunks(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon().start()
    kv_set(daemon, "keep", "k", 1)

    async def scenario() -> tuple[Any, list[dict[str, Any]]]:
        client = await AsyncClient.connect(daemon.socket_path)
        await asyncio.gather(
            *(
                client.call("kv.set", {"namespace": "bulk", "key": f"k{i:05d}", "value": i})
                for i in range(4500)
            )
        )
        reports: list[dict[str, Any]] = []
        result = await client.call("kv.clear", {"namespace": "bulk"}, progress=reports.append)
        await client.close()
        return result, reports

    result, reports = asyncio.run(scenario())
    assert result == {"deleted": 4500}
    assert reports[0]["kind"] == "begin" and reports[-1]["kind"] == "end"
    percentages = [r["percentage"] for r in reports if r["kind"] == "report"]
    assert percentages == sorted(percentages) and percentages[-1] == 100
    assert len(percentages) >= 5  # 1000 per chunk
    assert daemon.call("kv.list", {"namespace": "bulk"})["total"] == 0
    assert kv_get(daemon, "keep", "k") == 1
    cleared = daemon.call("events.list", {"topics": ["kv.cleared"], "limit": 100})["items"]
    assert sum(len(e["data"]["keys"]) for e in cleared) == 4500


def test_cancel_stops_a_clear_between_chunks(make_daemon: DaemonFactory) -> None:
    daemon = make_daemon().start()
    daemon.stop()
    conn = sqlite3.connect(daemon.db_path)
    conn.executemany(
        "INSERT INTO kv (uid, namespace, key, value, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        ((f"u{i}", "big", f"k{i:07d}", "1", "t", "t") for i in range(300_000)),
    )
    conn.commit()
    conn.close()
    daemon.start()

    async def scenario() -> RemoteError:
        client = await AsyncClient.connect(daemon.socket_path)
        first_report = asyncio.Event()

        def on_progress(value: dict[str, Any]) -> None:
            if value.get("kind") == "report":
                first_report.set()

        request_id, future = client.start_call(
            "kv.clear", {"namespace": "big"}, progress=on_progress
        )
        await asyncio.wait_for(first_report.wait(), 30)
        await client.cancel(request_id)
        with pytest.raises(RemoteError) as caught:
            await future
        assert (await client.call("daemon.hello"))["state"] == "ready"  # connection intact
        await client.close()
        return caught.value

    error = asyncio.run(scenario())
    assert error.code == -32800 and error.kind == "cancelled"
    deleted = error.data["deleted"]
    assert 0 < deleted < 300_000 and deleted % 1000 == 0
    left = daemon.call("kv.list", {"namespace": "big", "limit": 1})["total"]
    assert left == 300_000 - deleted  # exactly what was reported, nothing more, nothing less
