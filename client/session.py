"""The connection a `pm` command uses, made (and the daemon started) only when it is needed,
and what the daemon's `rpc.discover` says the generated commands are.

Standard library only, and nothing imported until needed: every command goes through here.
"""

from __future__ import annotations

import time

from client import cache, errors, locations, output
from client.sync import Client
from client.version import __version__

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from client.args import Args

INDEX = "catalogue"  # the cache file of the nouns' names and help
NOUN = "noun."  # + a noun's name: its cache file
STARTING_WAIT_S = 120.0
CALL_TIMEOUT_S = 60.0
QUICK_TIMEOUT_S = 0.5  # per socket operation: a Tab must never hang on a stuck daemon
QUICK_DISCOVER_S = 2.0  # but `rpc.discover` once, whose answer is then kept


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
        self._discovered: dict[str, Any] | None = None

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

    # --- what the daemon's rpc.discover says (client.catalogue), cached --------------------
    # An index of the nouns (with their one-line help) and a file per noun, each stamped with
    # the daemon process it came from: a command reads the index or its one noun, not all.

    def nouns(self, *, spawn: bool | None = None) -> dict[str, str]:
        """Every noun the daemon's methods give commands to, with its one-line help."""
        seen = self.cached_nouns() if self.quick else None  # a Tab takes the last seen
        if seen is not None:
            return seen
        made_for = self._made_for(spawn)
        index = cache.read(self.socket_path, INDEX)
        if _stamped(index, made_for) and isinstance(index.get("nouns"), dict):
            return dict(index["nouns"])
        return {name: entry.get("help", "") for name, entry in self._refresh(made_for).items()}

    def noun(
        self, name: str, *, spawn: bool | None = None, fresh: bool = False
    ) -> dict[str, Any] | None:
        """What client.generated needs of one noun (None: the daemon has no such noun): from
        the cache when it was made for this very daemon process (unless `fresh`), else from
        `rpc.discover`."""
        if not _file_safe(name):
            return None
        if self.quick:  # a Tab takes the last seen
            kept = cache.read(self.socket_path, NOUN + name)
            if isinstance(kept, dict) and isinstance(kept.get("entry"), dict):
                return dict(kept["entry"])
        made_for = self._made_for(spawn)
        if not fresh:
            kept = cache.read(self.socket_path, NOUN + name)
            if _stamped(kept, made_for) and isinstance(kept.get("entry"), dict):
                return dict(kept["entry"])
            index = cache.read(self.socket_path, INDEX)
            listed = index.get("nouns") if _stamped(index, made_for) else None
            if isinstance(listed, dict) and name not in listed:
                return None  # the daemon has no such noun
        found: dict[str, Any] | None = self._refresh(made_for).get(name)
        return found

    def cached_nouns(self) -> dict[str, str] | None:
        """The nouns last seen on this socket, whatever daemon said them (no connection
        made): for completion and help when no daemon answers."""
        index = cache.read(self.socket_path, INDEX)
        if isinstance(index, dict) and isinstance(index.get("nouns"), dict):
            return dict(index["nouns"])
        return None

    def _made_for(self, spawn: bool | None) -> dict[str, Any]:
        """The daemon process (and the pm) the cache must have been made for."""
        client = self.client(spawn=spawn)
        if self.daemon is None:  # a quick session: asked, not greeted (nothing restarted)
            from client import greeting

            hello = client.hello()
            self.daemon = {"peer": greeting.identity(client), **hello}
        made_for = {k: self.daemon.get(k) for k in ("peer", "daemon_version", "protocol_version")}
        return {**made_for, "client": __version__}  # and by this pm (its format)

    def _refresh(self, made_for: dict[str, Any]) -> dict[str, Any]:
        nouns = self._live()
        kept = [name for name in nouns if _file_safe(name)]
        for name in kept:
            cache.write(self.socket_path, NOUN + name, {"daemon": made_for, "entry": nouns[name]})
        index = {n: nouns[n].get("help", "") for n in kept}
        cache.write(self.socket_path, INDEX, {"daemon": made_for, "nouns": index})  # the last
        cache.forget(self.socket_path, NOUN, keep={NOUN + name for name in kept})
        return nouns

    def _live(self) -> dict[str, Any]:
        """What `rpc.discover` says now (asked once per session)."""
        if self._discovered is None:
            from client import catalogue

            client = self.client()
            if self.quick:  # a fresh daemon builds its catalogue on the first ask
                client.settimeout(QUICK_DISCOVER_S)
            try:
                self._discovered = catalogue.nouns(self.call("rpc.discover"))
            finally:
                client.settimeout(QUICK_TIMEOUT_S if self.quick else CALL_TIMEOUT_S)
        return self._discovered

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _stamped(kept: Any, made_for: dict[str, Any]) -> bool:
    return isinstance(kept, dict) and kept.get("daemon") == made_for


def _file_safe(name: str) -> bool:
    """A noun that can name a cache file (the daemon's are lower-case words)."""
    return bool(name) and name.isascii() and name.replace("_", "").isalnum()
