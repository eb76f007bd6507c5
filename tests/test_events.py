"""Change events: live subscriptions, replay with `since` after a reconnect, filtering."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from client.aio import AsyncClient
from tests.conftest import DaemonFactory
from tests.helpers import DaemonProcess, RawConnection


def put(d: DaemonProcess, key: str, ns: str = "ev") -> None:
    d.call("kv.set", {"namespace": ns, "key": key, "value": key})


async def collect(client: AsyncClient, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while len(got) < count:
        message = await client.next_notification(timeout)
        assert message["method"] == "events.event"
        got.append(message["params"])
    return got


def test_live_events_arrive_after_commit_in_order(daemon: DaemonProcess) -> None:
    async def scenario() -> None:
        listener = await AsyncClient.connect(daemon.socket_path)
        sub = await listener.call("events.subscribe", {"topics": ["kv"]})
        writer = await AsyncClient.connect(daemon.socket_path)
        await asyncio.gather(
            *(
                writer.call("kv.set", {"namespace": "live", "key": f"k{i}", "value": i})
                for i in range(50)
            )
        )
        got = await collect(listener, 50)
        assert all(g["subscription"] == sub["subscription"] for g in got)
        seqs = [g["event"]["seq"] for g in got]
        assert seqs == sorted(seqs) and len(set(seqs)) == 50
        assert {g["event"]["data"]["key"] for g in got} == {f"k{i}" for i in range(50)}
        assert seqs[0] == sub["last_seq"] + 1
        await listener.close()
        await writer.close()

    asyncio.run(scenario())


QUIET = {
    "watch": False,
    "schedule": {"quality": "off", "maintenance": "off", "retention": "off"},
}


def test_since_after_reconnect_misses_nothing_and_repeats_nothing(
    make_daemon: DaemonFactory,
) -> None:
    # Nothing but this test writes, so the sequence numbers it sees must be contiguous.
    daemon = make_daemon(config=QUIET).start()

    async def scenario() -> None:
        first = await AsyncClient.connect(daemon.socket_path)
        sub = await first.call("events.subscribe", {})
        put(daemon, "before-disconnect")
        seen = await collect(first, 1)
        last = seen[-1]["event"]["seq"]
        await first.close()
        # While nobody listens, more happens.
        for i in range(1500):  # more than one replay page
            put(daemon, f"offline-{i}")
        second = await AsyncClient.connect(daemon.socket_path)
        writer = await AsyncClient.connect(daemon.socket_path)
        live = asyncio.ensure_future(
            asyncio.gather(
                *(
                    writer.call("kv.set", {"namespace": "ev", "key": f"during-{i}", "value": i})
                    for i in range(200)
                )
            )
        )
        resumed = await second.call("events.subscribe", {"since": last})
        await live
        got = await collect(second, 1700)
        seqs = [g["event"]["seq"] for g in got]
        assert seqs == list(range(last + 1, last + 1701))  # contiguous, in order, once each
        keys = [g["event"]["data"]["key"] for g in got]
        assert keys[:1500] == [f"offline-{i}" for i in range(1500)]
        assert resumed["missed"] is False and sub["subscription"] != resumed["subscription"]
        await second.close()
        await writer.close()

    asyncio.run(scenario())


def test_topics_filter_by_topic_or_type(daemon: DaemonProcess) -> None:
    async def scenario() -> None:
        deletes = await AsyncClient.connect(daemon.socket_path)
        await deletes.call("events.subscribe", {"topics": ["kv.deleted"]})
        nothing = await AsyncClient.connect(daemon.socket_path)
        await nothing.call("events.subscribe", {"topics": ["projects"]})
        put(daemon, "a")
        daemon.call("kv.delete", {"namespace": "ev", "key": "a"})
        got = await collect(deletes, 1)
        assert got[0]["event"]["type"] == "kv.deleted"
        marker = await nothing.call("daemon.hello")  # a round trip: anything queued came first
        assert marker["state"] == "ready"
        assert nothing._notifications.empty()
        await deletes.close()
        await nothing.close()

    asyncio.run(scenario())


def test_unsubscribe_stops_events(daemon: DaemonProcess) -> None:
    async def scenario() -> None:
        client = await AsyncClient.connect(daemon.socket_path)
        sub = await client.call("events.subscribe", {})
        assert (await client.call("daemon.status"))["subscriptions"] == 1
        assert await client.call("events.unsubscribe", {"subscription": sub["subscription"]}) == {
            "unsubscribed": True
        }
        assert await client.call("events.unsubscribe", {"subscription": 999}) == {
            "unsubscribed": False
        }
        put(daemon, "after")
        await client.call("daemon.hello")
        assert client._notifications.empty()
        await client.close()

    asyncio.run(scenario())


def test_subscriptions_end_with_their_connection(daemon: DaemonProcess) -> None:
    async def scenario() -> None:
        client = await AsyncClient.connect(daemon.socket_path)
        await client.call("events.subscribe", {})
        await client.close()

    asyncio.run(scenario())
    put(daemon, "x")
    status = daemon.call("daemon.status")
    assert status["subscriptions"] == 0


def test_events_list_pages(daemon: DaemonProcess) -> None:
    for i in range(30):
        put(daemon, f"p{i}")
    kv = [e["seq"] for e in daemon.call("events.list", {"topics": ["kv"], "limit": 100})["items"]]
    assert len(kv) == 30  # (the daemon's own jobs log events of their own meanwhile)
    page = daemon.call("events.list", {"since": kv[9], "topics": ["kv"], "limit": 5, "offset": 5})
    assert [e["seq"] for e in page["items"]] == kv[15:20]
    assert page["total"] == 20
    assert daemon.call("events.list", {"since": kv[-1], "topics": ["kv"]})["items"] == []


def test_sequence_numbers_beyond_64_bits_are_refused_up_front(daemon: DaemonProcess) -> None:
    """A `since` SQLite cannot hold is a params error, not a subscription whose replay
    fails later where the client cannot see it."""
    for method, extra in (("events.subscribe", {}), ("events.list", {"limit": 1})):
        error = daemon.call_error(method, {"since": 2**63, **extra})
        assert error.code == -32602 and "since" in error.message, (method, error.message)
    error = daemon.call_error("events.list", {"offset": 2**63})
    assert error.code == -32602 and "offset" in error.message
    assert daemon.call("events.list", {"since": 2**63 - 1})["items"] == []


def test_filter_lists_are_bounded(daemon: DaemonProcess) -> None:
    """Each becomes an SQL `IN (…)` that SQLite keeps compiled in its statement cache: a list
    of 100,000 topics held megabytes of the daemon's memory."""
    many = [f"t{i}" for i in range(65)]
    for method, params in (
        ("events.list", {"topics": many}),
        ("events.subscribe", {"topics": many}),
        ("jobs.list", {"status": ["queued"] * 17}),
        ("projects.list", {"status": ["active"] * 17}),
    ):
        error = daemon.call_error(method, params)
        assert error.code == -32602 and "length" in error.message, (method, error.message)
    assert daemon.call("jobs.list", {"status": ["queued"] * 16})["items"] == []


def test_event_log_is_append_only(daemon: DaemonProcess) -> None:
    import sqlite3

    put(daemon, "x")
    conn = sqlite3.connect(daemon.db_path)
    try:
        conn.execute("UPDATE events SET type = 'kv.tampered'")
        raise AssertionError("the update should have been refused")
    except sqlite3.IntegrityError as e:
        assert "append-only" in str(e)
    finally:
        conn.close()


def test_a_topic_no_event_has_is_refused_with_the_topics_there_are(daemon: DaemonProcess) -> None:
    """A typo must not be a silent, empty stream."""
    for method, params in (
        ("events.subscribe", {"topics": ["projectz"]}),
        ("events.list", {"topics": ["kv", "kv.sett"]}),
    ):
        error = daemon.call_error(method, params)
        assert error.code == -32602, (method, error.message)
        assert error.data["field"] == "topics"
        assert error.data["unknown"] == params["topics"][-1:]
        assert {"kv", "projects", "db", "jobs", "quality"} <= set(error.data["topics"])
        assert "kv.created" in error.data["types"]
        assert "the topics are " + ", ".join(error.data["topics"]) in error.message
    for topic in [*error.data["topics"], *error.data["types"]]:  # each one it lists is taken
        daemon.call("events.list", {"topics": [topic], "limit": 1})


def test_star_is_every_topic(daemon: DaemonProcess) -> None:
    async def scenario() -> None:
        everything = await AsyncClient.connect(daemon.socket_path)
        await everything.call("events.subscribe", {"topics": ["*"]})
        put(daemon, "star")
        types = set()
        while "kv.created" not in types:  # the daemon's own jobs may come first: every topic
            types |= {g["event"]["type"] for g in await collect(everything, 1)}
        await everything.close()

    asyncio.run(scenario())
    listed = daemon.call("events.list", {"topics": ["*"], "limit": 1000})
    assert listed == daemon.call("events.list", {"limit": 1000}) and listed["total"] > 0


def test_a_subscriber_is_never_closed_as_idle(make_daemon: DaemonFactory) -> None:
    """`pm events --follow` on a quiet day: a connection with a live subscription is not idle,
    however long nothing happens; one without is closed after idle_timeout_s."""
    daemon = make_daemon(config={**QUIET, "idle_timeout_s": 0.3}).start()
    subscriber = RawConnection(daemon.socket_path)
    idle = RawConnection(daemon.socket_path)
    try:
        subscriber.send(b'{"jsonrpc":"2.0","id":1,"method":"events.subscribe","params":{}}')
        assert b'"subscription"' in (subscriber.read_frame() or b"")
        idle.send(b'{"jsonrpc":"2.0","id":1,"method":"daemon.hello"}')
        assert idle.read_frame() is not None
        assert idle.closed_by_peer()  # blocks until the daemon closes it: idle_timeout_s passed
        subscriber.sock.settimeout(0.6)  # twice the idle timeout more, quiet
        with pytest.raises(TimeoutError):
            subscriber.read_frame()
        put(daemon, "after-a-quiet-while")
        subscriber.sock.settimeout(10)
        event = json.loads(subscriber.read_frame() or b"null")
        assert event["params"]["event"]["data"]["key"] == "after-a-quiet-while"
    finally:
        subscriber.close()
        idle.close()
