"""`pm`: the command line. This module is the entry point and `pm status`'s fast path.

`pm status` is handled here with the standard library's C pieces alone (no greeting: the
status itself says the daemon's version); every other command goes to `client.commands`,
which loads the one module that command needs. Nothing on any of these paths imports
argparse, json, typing, msgspec or daemon code: shell prompts and agents' hooks run `pm` on
every turn, so every command starts about as fast as Python itself (bench/cli.py).
"""

from __future__ import annotations

import sys

from client import errors, output
from client.flags import as_words, split_globals
from client.sync import Client
from client.version import is_older

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


def _status(opts: dict[str, Any]) -> int:
    from client import locations

    output.use_json_stderr(opts["json"])
    try:
        path = locations.client_socket_path(opts["socket"])
    except locations.ConfigFileError as e:
        return output.fail(str(e), kind="config", exit_code=errors.EXIT_FAILED)
    try:
        spawned = False
        try:
            client = Client(path, timeout=30.0).connect()
        except errors.Unreachable:
            if opts["no_spawn"]:
                raise
            from client import spawn

            spawned = spawn.start(path) is not None
            client = Client(path, timeout=30.0).connect()
        with client:
            status = client.call("daemon.status")
            if spawned:
                status = _until_ready(client, status)
    except errors.ClientError as e:
        return output.fail(str(e), kind=e.kind, exit_code=e.exit_code)
    if is_older(status.get("version")) or status.get("protocol_version") != errors.PROTOCOL_VERSION:
        # After an upgrade: the full path greets the daemon, restarts an older one, or says
        # clearly why it cannot talk to it.
        from client.commands import run

        return run([*as_words(opts), "status"])
    if opts["json"]:
        output.print_json(status)
    else:
        from client.status_view import render_status

        sys.stdout.write(render_status(status))
    return errors.EXIT_OK


def _until_ready(client: Client, status: dict[str, Any]) -> dict[str, Any]:
    """A daemon we just started: show it once it is ready (migrations can take a moment)."""
    import time

    deadline = time.monotonic() + 120
    while status.get("state") in ("starting", "migrating") and time.monotonic() < deadline:
        time.sleep(0.02)
        status = client.call("daemon.status")
    return status


def main(argv: list[str] | None = None) -> int:
    """The `pm` console script's entry point (no `argv`: the process's own, and the process
    ends here), or a command run in-process (`argv` given: its exit code returned)."""
    if argv is None:
        _exit_now(_main(sys.argv[1:]))
    return _main(argv)


def _exit_now(code: int) -> NoReturn:
    """End the process at once, as `exit(code)` would but without the interpreter's teardown
    of every module (~5 ms here: as long as all of pm's own work). Nothing of pm's is left to
    finalize: its files are closed, the OS closes the socket; the output is flushed first."""
    import os

    _flush(sys.stdout)
    _flush(sys.stderr)
    os._exit(code)


def _flush(stream: Any) -> None:
    try:
        stream.flush()
    except (BrokenPipeError, ValueError):  # the reader went away, or it was closed
        return


def _main(args: list[str]) -> int:
    try:
        if args[:1] == ["__complete"]:  # what the completion scripts ask, on every Tab
            from client.completion import complete

            return complete(args[1:])
        opts, rest = split_globals(args)
        if rest == ["status"]:
            return _status(opts)
        from client.commands import run

        return run(args)
    except KeyboardInterrupt:  # Ctrl-C ends any command quietly, wherever it was
        return 130
