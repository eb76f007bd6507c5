"""The method registry: each method declares its msgspec params and result types.

Handlers are `async def name(self, call: Call, params: SomeParams) -> SomeResult` on an API
object, marked with `@rpc_method("noun.verb")`. The types are read from the annotations, so
`rpc.discover` documents exactly what the code accepts and returns.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

F = TypeVar("F", bound=Callable[..., Any])

_SPEC_ATTR = "__rpc_method__"


class Params(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Base of every method's params: named fields only, an unknown field is an error."""


class ProgressParams(Params, frozen=True, kw_only=True):
    """Params of a method that reports `$/progress` when the request carries a token (LSP)."""

    workDoneToken: int | str | UnsetType = UNSET


class NoParams(Params, frozen=True):
    pass


@dataclass(frozen=True)
class _Spec:
    name: str
    when_starting: bool


def rpc_method(name: str, *, when_starting: bool = False) -> Callable[[F], F]:
    """Mark an API method. `when_starting`: callable while migrations still run."""

    def mark(fn: F) -> F:
        setattr(fn, _SPEC_ATTR, _Spec(name, when_starting))
        return fn

    return mark


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

    def add_api(self, api: object) -> None:
        """Register every `@rpc_method` of `api`."""
        for _, member in inspect.getmembers(api, inspect.ismethod):
            spec: _Spec | None = getattr(member, _SPEC_ATTR, None)
            if spec is not None:
                self.add(spec.name, member, when_starting=spec.when_starting)

    def add(
        self, name: str, handler: Callable[[Any, Any], Awaitable[Any]], *, when_starting: bool
    ) -> None:
        if name in self._methods:
            raise ValueError(f"method {name} is registered twice")
        hints = typing.get_type_hints(handler)
        parameters = [p for p in inspect.signature(handler).parameters if p != "self"]
        if len(parameters) != 2 or "return" not in hints:
            raise TypeError(f"{name}: handler must be (call, params) -> Result, annotated")
        params_type = hints[parameters[1]]
        if not (isinstance(params_type, type) and issubclass(params_type, Params)):
            raise TypeError(f"{name}: params must be a Params struct, not {params_type!r}")
        doc = inspect.cleandoc(handler.__doc__ or "")
        summary, _, description = doc.partition("\n\n")
        self._methods[name] = Method(
            name=name,
            handler=handler,
            params_type=params_type,
            result_type=hints["return"],
            summary=" ".join(summary.split()),
            description=description.strip(),
            when_starting=when_starting,
            decoder=msgspec.json.Decoder(params_type),
        )

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def methods(self) -> list[Method]:
        return [self._methods[name] for name in sorted(self._methods)]
