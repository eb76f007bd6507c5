"""`pm completion bash|zsh|fish`, run by the real shells: commands, verbs, options, choices
and project names from the daemon — fast, never starting a daemon, never hanging on one."""

from __future__ import annotations

import os
import pty
import select
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import DaemonFactory
from tests.gitrepos import make_repo
from tests.helpers import require_tool, short_socket_dir
from tests.test_cli import PM, Cli


@pytest.fixture
def cli(make_daemon: DaemonFactory) -> Cli:
    world = make_daemon(config={"watch": False, "rescan_interval_s": 0})
    make_repo(world.dev_root / "alpha", home=world.home)
    make_repo(world.dev_root / "grp" / "beta", home=world.home)
    world.start()
    c = Cli(world)
    c.ok("scan")
    return c


_scripts: dict[str, str] = {}


def bash(cli: Cli, *words: str) -> list[str]:
    """What bash offers for `pm WORDS…` (the last word is the one being completed)."""
    script = _scripts.get("bash") or _scripts.setdefault("bash", cli.ok("completion", "bash"))
    line = " ".join(f"'{w}'" for w in ("pm", *words))
    done = subprocess.run(
        [
            "bash",
            "--norc",
            "--noprofile",
            "-c",
            f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words)}; _pm_complete; "
            'printf "%s\\n" "${COMPREPLY[@]}"',
        ],
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line]


def nouns(cli: Cli, prefix: str) -> list[str]:
    """The daemon's nouns with generated commands (a list or show of their own), as typed."""
    names = {m["name"] for m in cli.world.call("rpc.discover")["methods"]}
    found = {n.rpartition(".")[0] for n in names if n.endswith((".list", ".get"))}
    return [n.replace("_", "-") for n in found if n.startswith(prefix)]


def test_bash_completes_commands_verbs_options_and_project_names(cli: Cli) -> None:
    # `pm pro`: the commands written by hand, and the daemon's nouns (programs…) besides
    hand_written = {"project", "projects"}
    assert bash(cli, "pro") == sorted(hand_written | set(nouns(cli, "pro")))
    assert bash(cli, "project", "") == ["alpha", "beta", "forget", "register", "set", "show"]
    assert bash(cli, "project", "set", "--status", "archived", "") == ["alpha", "beta"]
    assert bash(cli, "project", "set", "--reset", "desc") == ["description"]
    assert bash(cli, "--json", "quality", "") == ["alpha", "beta", "scan"]
    assert bash(cli, "quality", "scan", "b") == ["beta"]
    assert bash(cli, "db", "--json", "ex") == ["export"]  # global flags skipped, at any depth
    assert bash(cli, "db", "export", "--format", "") == ["csv", "json"]
    assert "--follow" in bash(cli, "events", "--f")
    assert bash(cli, "completion", "") == ["bash", "fish", "zsh"]
    assert bash(cli, "project", "register", "") == []  # a path: bash completes file names


def test_fish_completes(cli: Cli) -> None:
    require_tool("fish", "Debian's fish package")

    def fish(line: str) -> list[str]:
        done = subprocess.run(
            [
                "fish",
                "--no-config",
                "-c",
                f"source ({PM} completion fish | psub); complete -C '{line}'",
            ],
            env=cli.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        return [row.split("\t")[0] for row in done.stdout.splitlines()]

    assert sorted(fish("pm pro")) == sorted({"project", "projects", *nouns(cli, "pro")})
    assert fish("pm project set al") == ["alpha"]
    assert fish("pm quality sc") == ["scan"]


def test_zsh_completes(cli: Cli, tmp_path: Path) -> None:
    require_tool("zsh", "Debian's zsh package")
    # zsh completes only in its line editor: a real interactive zsh on a pseudo-terminal.
    master, slave = pty.openpty()
    env = {**cli.env, "TERM": "xterm", "PS1": "% ", "ZDOTDIR": str(tmp_path)}
    shell = subprocess.Popen(
        ["zsh", "-f", "-i"], stdin=slave, stdout=slave, stderr=slave, env=env,
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)

    def type_and_read(text: str, expect: str) -> str:
        os.write(master, text.encode())
        seen = b""
        deadline = time.monotonic() + 20
        while expect.encode() not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                seen += os.read(master, 65536)
        return seen.decode(errors="replace")

    try:
        ready = type_and_read(
            f'autoload -U compinit; compinit -u; eval "$({PM} completion zsh)"; echo R""EADY\n',
            "READY",
        )
        assert "READY" in ready
        assert "pm project alpha" in type_and_read("pm project al\t", "alpha")
        os.write(master, b"\x15")  # kill the line
        assert "pm project register" in type_and_read("pm project reg\t", "register")
        os.write(master, b"\x15")
        assert "pm quality scan" in type_and_read("pm quality sc\t", "scan")
    finally:
        shell.kill()
        shell.wait(10)
        os.close(master)


def test_completion_never_starts_a_daemon_nor_waits_on_one(cli: Cli) -> None:
    cli.world.stop()
    started = time.monotonic()
    assert bash(cli, "project", "") == ["forget", "register", "set", "show"]
    assert cli.world.status() is None  # nothing answered, and nothing was started
    # A socket that takes connections but never answers (a stopped or stuck daemon).
    stuck_dir = short_socket_dir()
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        stuck.bind(os.path.join(stuck_dir, "stuck.sock"))
        stuck.listen(8)
        done = subprocess.run(
            [PM, "__complete", "--", "project", "set", ""],
            env={**cli.env, "PM_AGENT_SOCKET": os.path.join(stuck_dir, "stuck.sock")},
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        stuck.close()
        shutil.rmtree(stuck_dir, ignore_errors=True)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    assert time.monotonic() - started < 10  # a moment per Tab, not a hang
