"""The method registry: each method declares its msgspec params and result types.

A domain module collects its handlers in a `Methods`: `async def name(ctx, call: Call,
params: SomeParams) -> SomeResult` marked with `@methods("noun.verb")`, or generated (the
generic CRUD of a table) with explicit types. `Methods.bind(registry, ctx)` registers them
with the runtime's context. The types are read from the annotations (or given), so
`rpc.discover` documents exactly what the code accepts and returns.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

F = TypeVar("F", bound=Callable[..., Any])


class Params(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base of every method's params: named fields only, an unknown field is an error."""


class ProgressParams(Params, frozen=True, kw_only=True):
    """Params of a method that reports `$/progress` when the request carries a token (LSP)."""

    workDoneToken: int | str | UnsetType = UNSET


class NoParams(Params, frozen=True):
    pass


@dataclass(frozen=True)
class Method:
    name: str
    handler: Callable[[Any, Any], Awaitable[Any]]
    params_type: type[Params]
    result_type: Any
    summary: str
    description: str
    when_starting: bool
    decoder: msgspec.json.Decoder[Any] = field(repr=False)

    @property
    def reports_progress(self) -> bool:
        return issubclass(self.params_type, ProgressParams)


class Registry:
    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    def add(
        self,
        name: str,
        handler: Callable[[Any, Any], Awaitable[Any]],
        *,
        when_starting: bool,
        params_type: type[Params] | None = None,
        result_type: Any = None,
        doc: str | None = None,
    ) -> None:
        """Register `handler(call, params)`; its types are read from its annotations unless
        given (generated handlers give them)."""
        if name in self._methods:
            raise ValueError(f"method {name} is registered twice")
        if params_type is None or result_type is None:
            params_type, result_type = _annotated_types(name, handler)
        if not (isinstance(params_type, type) and issubclass(params_type, Params)):
            raise TypeError(f"{name}: params must be a Params struct, not {params_type!r}")
        text = inspect.cleandoc(doc if doc is not None else handler.__doc__ or "")
        summary, _, description = text.partition("\n\n")
        self._methods[name] = Method(
            name=name,
            handler=handler,
            params_type=params_type,
            result_type=result_type,
            summary=" ".join(summary.split()),
            description=description.strip(),
            when_starting=when_starting,
            decoder=msgspec.json.Decoder(params_type),
        )

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def methods(self) -> list[Method]:
        return [self._methods[name] for name in sorted(self._methods)]


def _annotated_types(name: str, handler: Callable[..., Any]) -> tuple[type[Params], Any]:
    """(params type, result type) from the annotations of a handler that takes (call, params):
    a function with its context bound by functools.partial. The context's
    own annotation is not resolved (its class may be importable only for type checkers)."""
    target = handler.func if isinstance(handler, functools.partial) else handler
    parameters = list(inspect.signature(handler).parameters)  # without the bound context
    bound = [p for p in inspect.signature(target).parameters if p not in parameters]
    given = getattr(target, "__annotations__", {})
    unresolved = {
        note: object for p in bound if isinstance(note := given.get(p), str) and note.isidentifier()
    }
    hints = typing.get_type_hints(target, localns=unresolved)
    if len(parameters) != 2 or "return" not in hints:
        raise TypeError(f"{name}: handler must be (call, params) -> Result, annotated")
    params_type = hints[parameters[1]]
    if not (isinstance(params_type, type) and issubclass(params_type, Params)):
        raise TypeError(f"{name}: params must be a Params struct, not {params_type!r}")
    return params_type, hints["return"]


@dataclass(frozen=True)
class _Entry:
    name: str
    handler: Callable[..., Awaitable[Any]]
    when_starting: bool
    params_type: type[Params] | None
    result_type: Any
    doc: str | None


class Methods:
    """The RPC methods of one domain module, registered with the runtime's context by `bind`.

    `@methods("noun.verb")` marks `async def f(ctx, call, params) -> Result`; `methods.add`
    takes a generated handler with its types given."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def __call__(self, name: str, *, when_starting: bool = False) -> Callable[[F], F]:
        def mark(fn: F) -> F:
            self._entries.append(_Entry(name, fn, when_starting, None, None, None))
            return fn

        return mark

    def add(
        self,
        name: str,
        handler: Callable[..., Awaitable[Any]],
        *,
        params_type: type[Params],
        result_type: Any,
        doc: str,
        when_starting: bool = False,
    ) -> None:
        self._entries.append(_Entry(name, handler, when_starting, params_type, result_type, doc))

    @property
    def names(self) -> list[str]:
        return [entry.name for entry in self._entries]

    def bind(self, registry: Registry, context: Any) -> None:
        for entry in self._entries:
            handler = functools.partial(entry.handler, context)
            params_type, result_type = entry.params_type, entry.result_type
            if params_type is None:
                params_type, result_type = _annotated_types(entry.name, handler)
            registry.add(
                entry.name,
                handler,
                when_starting=entry.when_starting,
                params_type=params_type,
                result_type=result_type,
                doc=entry.doc if entry.doc is not None else entry.handler.__doc__,
            )
