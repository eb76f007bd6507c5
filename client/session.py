"""The connection a `pm` command uses, made (and the daemon started) only when it is needed,
and what the daemon's `rpc.discover` says the generated commands are.

Standard library only, and nothing imported until needed: every command goes through here.
"""

from __future__ import annotations

import time

from client import cache, errors, locations, output
from client.sync import Client

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from client.args import Args

STARTING_WAIT_S = 120.0
CALL_TIMEOUT_S = 60.0
QUICK_TIMEOUT_S = 0.5  # per socket operation: a Tab must never hang on a stuck daemon


class Session:
    """One command's way to the daemon. `opts` are the global flags; `args`, once parsed,
    the command's own arguments (None before). A `quick` session (completion's, on every
    Tab) waits at most a moment for anything, never starts the daemon and never greets it
    (a greeting may restart an older daemon: not something a Tab should do)."""

    def __init__(self, opts: dict[str, Any], *, quick: bool = False) -> None:
        self.opts = {**opts, "no_spawn": True} if quick else opts
        self.args: Args | None = None
        self.quick = quick
        self.socket_path = locations.client_socket_path(opts["socket"])
        self.daemon: dict[str, Any] | None = None  # what is known of it: client.greeting
        self._client: Client | None = None

    def client(self, *, spawn: bool | None = None) -> Client:
        """Connected and greeted; the daemon started first if nothing answers (unless
        `--no-spawn`, or `spawn=False`)."""
        if self._client is None:
            allowed = not self.opts["no_spawn"] if spawn is None else spawn
            timeout = QUICK_TIMEOUT_S if self.quick else CALL_TIMEOUT_S
            try:
                client = Client(self.socket_path, timeout=timeout).connect()
            except errors.Unreachable:
                if not allowed or self.quick:
                    raise
                from client import spawn as spawner

                spawner.start(self.socket_path)
                client = Client(self.socket_path, timeout=timeout).connect()
            if self.quick:
                self._client = client
                return client
            from client import greeting

            self._client, self.daemon = greeting.greet(client, self.socket_path)
        return self._client

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        on_notification: Callable[[dict[str, Any]], None] | None = None,
    ) -> Any:
        """Call, waiting (bounded) while the daemon is still starting or migrating."""
        waited = 0.0
        delay = 0.05
        while True:
            try:
                return self.client().call(method, params, on_notification)
            except errors.RemoteError as e:
                if e.kind != "starting" or waited > STARTING_WAIT_S or self.quick:
                    raise
                if waited == 0:
                    output.error("the daemon is starting; waiting…")
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, 1.0)

    def call_with_progress(self, method: str, params: dict[str, Any]) -> Any:
        """A long call with `$/progress` shown as a bar on stderr (on a terminal)."""
        self.client()  # connect (and start the daemon) before the bar appears
        bar = output.ProgressBar()

        def on_notification(message: dict[str, Any]) -> None:
            if message.get("method") == "$/progress":
                value = message.get("params", {}).get("value", {})
                bar.update(value.get("percentage"), value.get("message", ""))

        try:
            return self.call(method, {**params, "workDoneToken": f"pm-{method}"}, on_notification)
        finally:
            bar.close()

    def catalogue(self, *, spawn: bool | None = None, fresh: bool = False) -> dict[str, Any]:
        """The nouns the daemon's methods give commands to (client.catalogue), from the cache
        when it was made for this very daemon process (unless `fresh`), else from
        `rpc.discover` (once)."""
        if self.quick:  # the last one seen, else what the daemon says now (not kept)
            return self.cached_catalogue() or self._discovered()
        self.client(spawn=spawn)
        assert self.daemon is not None
        made_for = {k: self.daemon.get(k) for k in ("peer", "daemon_version", "protocol_version")}
        known = None if fresh else cache.read(self.socket_path, "catalogue")
        if (
            isinstance(known, dict)
            and known.get("daemon") == made_for
            and isinstance(known.get("nouns"), dict)
        ):
            return known
        made = {"daemon": made_for, **self._discovered()}
        cache.write(self.socket_path, "catalogue", made)
        return made

    def _discovered(self) -> dict[str, Any]:
        from client import catalogue

        return {"nouns": catalogue.nouns(self.call("rpc.discover"))}

    def cached_catalogue(self) -> dict[str, Any] | None:
        """The last catalogue seen for this socket, whatever daemon it came from (no
        connection made): for completion and help when no daemon answers."""
        known = cache.read(self.socket_path, "catalogue")
        return known if isinstance(known, dict) and isinstance(known.get("nouns"), dict) else None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
