"""daemon.platform.untrusted: the one way to open a file the daemon did not create."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from daemon.platform import untrusted


def test_a_regular_file_inside_is_read(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"hello")
    assert untrusted.read(str(tmp_path / "a.txt"), within=str(tmp_path), max_bytes=10) == b"hello"
    assert untrusted.read_text(str(tmp_path / "a.txt"), within=[str(tmp_path)], max_bytes=5) == (
        "hello"
    )


def test_a_link_that_stays_inside_is_followed(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("x")
    (tmp_path / "link").symlink_to("real")
    assert untrusted.read(str(tmp_path / "link"), within=str(tmp_path), max_bytes=1) == b"x"


@pytest.mark.parametrize("how", ["absolute", "relative", "folder"])
def test_a_link_that_leads_outside_is_refused(tmp_path: Path, how: str) -> None:
    inside = tmp_path / "repo"
    inside.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    if how == "absolute":
        (inside / "f").symlink_to(secret)
        target = inside / "f"
    elif how == "relative":
        (inside / "f").symlink_to("../secret.txt")
        target = inside / "f"
    else:
        (inside / "d").symlink_to(tmp_path)
        target = inside / "d" / "secret.txt"
    with pytest.raises(untrusted.Outside):
        untrusted.read(str(target), within=str(inside), max_bytes=100)


def test_dotdot_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "out.txt").write_text("x")
    with pytest.raises(untrusted.Outside):
        untrusted.read(str(tmp_path / "in" / ".." / "out.txt"), within=str(tmp_path / "in"),
                       max_bytes=10)  # fmt: skip


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "description"
    os.mkfifo(fifo)
    done = threading.Event()
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            untrusted.read(str(fifo), within=str(tmp_path), max_bytes=100)
        except OSError as e:
            outcome.append(e)
        done.set()

    threading.Thread(target=attempt, daemon=True).start()
    assert done.wait(5), "reading a FIFO blocked"
    assert isinstance(outcome[0], untrusted.NotRegular)
    assert "FIFO" in str(outcome[0])


def test_devices_sockets_and_folders_are_refused(tmp_path: Path) -> None:
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(untrusted.RefusedFile):  # outside, and a device
        untrusted.read(str(tmp_path / "zero"), within=str(tmp_path), max_bytes=100)
    with pytest.raises(untrusted.NotRegular):
        untrusted.read("/dev/zero", within="/dev", max_bytes=100)
    with pytest.raises(untrusted.NotRegular):
        untrusted.read(str(tmp_path), within=str(tmp_path), max_bytes=100)


def test_a_link_as_last_component_is_refused_when_nothing_confines(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("x")
    (tmp_path / "link").symlink_to("real")
    with pytest.raises(OSError):  # ELOOP from O_NOFOLLOW
        untrusted.read(str(tmp_path / "link"), within=None, max_bytes=10)
    assert untrusted.read(str(tmp_path / "real"), within=None, max_bytes=10) == b"x"


def test_size_cap_whole_refuses_and_prefix_truncates(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"a" * 1000)
    with pytest.raises(untrusted.TooLarge):
        untrusted.read(str(big), within=str(tmp_path), max_bytes=999)
    head = untrusted.read(str(big), within=str(tmp_path), max_bytes=10, whole=False)
    assert head == b"a" * 10


def test_refusals_are_oserrors_with_the_path(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "f")
    with pytest.raises(OSError) as caught:
        untrusted.read(str(tmp_path / "f"), within=str(tmp_path), max_bytes=1)
    assert caught.value.filename == str(tmp_path / "f")
