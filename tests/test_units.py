"""Small pure pieces: timestamps, key-prefix bounds, the framing decoders, config files."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.domain.kv import prefix_upper_bound
from daemon.rpc.framing import FrameTooLarge, FramingError, LspFraming, NdjsonFraming, detect
from daemon.runtime import config
from daemon.store.cancellation import wait_set
from daemon.store.clock import iso, utc_now


def test_timestamps_are_fixed_width_utc_and_ordered() -> None:
    before = iso(datetime.now(UTC))
    stamps = [utc_now() for _ in range(1000)]
    after = iso(datetime.now(UTC))
    assert all(len(s) == 27 and s.endswith("Z") and s[10] == "T" for s in stamps)
    assert [before, *stamps, after] == sorted([before, *stamps, after])


@pytest.mark.parametrize(
    ("prefix", "bound"),
    [("a", "b"), ("ab", "ac"), ("a\U0010ffff", "b"), ("\U0010ffff", None), ("a\ud7ff", "a\ue000")],
)
def test_prefix_upper_bound(prefix: str, bound: str | None) -> None:
    assert prefix_upper_bound(prefix) == bound


def test_ndjson_splits_across_chunks_and_skips_blank_lines() -> None:
    f = NdjsonFraming(limit=100)
    assert f.feed(b'{"a":') == []
    assert f.feed(b'1}\n\n  \r\n{"b":2}\r\n{"c"') == [b'{"a":1}', b'{"b":2}']
    assert f.feed(b":3}\n") == [b'{"c":3}']
    assert f.frame(b"{}") == b"{}\n"


def test_ndjson_refuses_a_line_over_the_limit_without_a_newline() -> None:
    f = NdjsonFraming(limit=10)
    with pytest.raises(FrameTooLarge):
        f.feed(b"x" * 11)


def test_lsp_splits_by_byte_count() -> None:
    f = LspFraming(limit=100)
    body = '{"v":"é"}'.encode()
    message = b"Content-Length: %d\r\n\r\n" % len(body) + body
    assert f.feed(message + message[:5]) == [body]
    assert f.feed(message[5:]) == [body]
    assert f.frame(body).startswith(b"Content-Length: 10\r\n\r\n")


@pytest.mark.parametrize(
    "data",
    [
        b"Content-Length: 1\n\n{}",
        b"nonsense\r\n",
        b"X-Other: 1\r\n\r\n",
        b"Content-Length: -1\r\n\r\n",
    ],
)
def test_lsp_malformed_headers(data: bytes) -> None:
    with pytest.raises(FramingError):
        LspFraming(limit=100).feed(data)


def test_lsp_refuses_a_declared_size_over_the_limit() -> None:
    with pytest.raises(FrameTooLarge) as caught:
        LspFraming(limit=100).feed(b"Content-Length: 101\r\n\r\n")
    assert caught.value.size == 101


def test_framing_detection() -> None:
    assert detect(b"  \n", 10) is None
    assert isinstance(detect(b' {"a":1}', 10), NdjsonFraming)
    assert isinstance(detect(b"[", 10), NdjsonFraming)
    assert isinstance(detect(b"Content-Length: 2", 10), LspFraming)


def test_config_file_env_flags_merge_and_paths(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('dev_root = "~/Projects"\nreaders = 3\nsynchronous = "NORMAL"\n')
    env = {"PM_AGENT_CONFIG": str(file), "HOME": str(tmp_path), "PM_AGENT_READERS": "4"}
    cfg = config.load({"synchronous": "EXTRA"}, env)
    assert (cfg.readers, cfg.synchronous, cfg.dev_root) == (4, "EXTRA", "~/Projects")
    paths = config.resolve_paths(cfg, env)
    assert paths.dev_root == str(tmp_path / "Projects")
    assert paths.db_path == str(tmp_path / "Projects" / ".pm-agent" / "db" / "pm-agent.db")
    assert paths.socket_path.endswith("/pm-agent.sock")


def test_socket_default_prefers_xdg_runtime_dir(tmp_path: Path) -> None:
    cfg = config.load({}, {"HOME": str(tmp_path)})
    runtime = config.resolve_paths(cfg, {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": "/run/user/7"})
    assert runtime.socket_path == "/run/user/7/pm-agent/pm-agent.sock"
    fallback = config.resolve_paths(cfg, {"HOME": str(tmp_path)})
    assert fallback.socket_path.startswith("/tmp/pm-agent-")


@pytest.mark.parametrize(
    ("text", "needle"),
    [("readers = 0\n", "readers"), ("nope = 1\n", "unknown field `nope`"), ("x = [", "c.toml")],
)
def test_config_file_errors_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    file = tmp_path / "c.toml"
    file.write_text(text)
    with pytest.raises(config.ConfigError, match=needle):
        config.load({}, {"PM_AGENT_CONFIG": str(file), "HOME": str(tmp_path)})


def test_a_cancellation_arriving_as_the_event_is_set_is_not_lost() -> None:
    """The daemon's timed waits (scheduler, watcher, scan pool, writer) use wait_set: with
    asyncio.wait_for on 3.11 this cancellation was dropped, and a background task cancelled
    at stop went on to sleep its whole interval (the daemon did not exit: 1 stop in ~7)."""

    async def scenario() -> tuple[bool, bool]:
        event = asyncio.Event()
        slept_on = []

        async def waiter() -> None:
            await wait_set(event, 10.0)
            slept_on.append(True)  # only if the cancellation was lost
            await asyncio.sleep(10.0)

        task = asyncio.get_running_loop().create_task(waiter())
        await asyncio.sleep(0)  # it waits
        event.set()
        task.cancel()  # in the same turn of the loop
        done, _ = await asyncio.wait({task}, timeout=2.0)
        timed_out = await wait_set(asyncio.Event(), 0.01)
        return bool(done) and task.cancelled() and not slept_on, timed_out

    assert asyncio.run(scenario()) == (True, False)
