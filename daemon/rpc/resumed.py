"""The rest of a request whose first step already ran, as a coroutine a task can drive.

The server runs each request's first step at once, outside any task (most requests end in
it); only one that has to wait gets a task, and this is what that task runs.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from typing import Any

_FIRST_TAKEN = object()


class Resumed(Coroutine[Any, Any, None]):
    """A coroutine whose first step already ran, for a task to drive from where it stopped:
    the task's first step gets what the coroutine yielded then (the future it waits on, or
    None); everything after, a cancellation before the task ever ran included, goes to the
    coroutine itself, where it waits (as if the task had made that first step)."""

    __slots__ = ("_coroutine", "_first")

    def __init__(self, coroutine: Coroutine[Any, Any, None], first: Any) -> None:
        self._coroutine = coroutine
        self._first = first

    def send(self, value: Any) -> Any:
        if self._first is not _FIRST_TAKEN:
            first, self._first = self._first, _FIRST_TAKEN
            return first
        return self._coroutine.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._first = _FIRST_TAKEN
        if val is None and tb is None:
            return self._coroutine.throw(typ)
        return self._coroutine.throw(typ, val, tb)  # (the old signature, as it was called)

    def close(self) -> None:
        self._coroutine.close()

    def __await__(self) -> Generator[Any, None, None]:
        raise TypeError("a resumed request is driven by its task, not awaited")

    @property
    def cr_frame(self) -> Any:  # what asyncio shows of a task's stack
        return getattr(self._coroutine, "cr_frame", None)

    @property
    def cr_code(self) -> Any:
        return getattr(self._coroutine, "cr_code", None)
