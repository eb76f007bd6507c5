"""Tools' input schemas, taken from the daemon's own `rpc.discover` and made tight.

The daemon's method registry is the one description of every method's params (msgspec types
with their constraints and descriptions); the bridge never writes a second one. What it does
is pick the params a tool shows, and drop what costs tokens on every turn of every agent
without telling a model anything: titles, `$ref` indirection, "or null" on optional params,
empty defaults, bounds that are only the size of an SQLite integer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_REF_PREFIX = "#/components/schemas/"
_HUGE = 2**53  # a bound this large is the storage's, not the method's
# Sizes at or past these are the storage's limits, not guidance a model writes by.
_STORAGE_SIZES = {"maxLength": 1000, "maxItems": 100, "maxProperties": 100}
_EMPTY_DEFAULTS: tuple[Any, ...] = (None, [], {}, "")
_MAX_DEPTH = 8  # a self-referencing type stops being expanded here


@dataclass(frozen=True)
class MethodParams:
    """One method's params as `rpc.discover` gives them, each schema made tight."""

    name: str
    summary: str
    properties: dict[str, dict[str, Any]]
    required: frozenset[str]


def methods(document: Mapping[str, Any]) -> dict[str, MethodParams]:
    """Every method of an `rpc.discover` document, by name."""
    components: dict[str, Any] = (document.get("components") or {}).get("schemas") or {}
    found: dict[str, MethodParams] = {}
    for method in document.get("methods") or ():
        properties: dict[str, dict[str, Any]] = {}
        required: set[str] = set()
        for param in method.get("params") or ():
            name = param["name"]
            properties[name] = tighten(
                param.get("schema") or {}, components, optional=not param.get("required")
            )
            if param.get("required"):
                required.add(name)
        found[method["name"]] = MethodParams(
            method["name"], method.get("summary", ""), properties, frozenset(required)
        )
    return found


def object_schema(
    properties: Mapping[str, dict[str, Any]], required: Iterable[str] = ()
) -> dict[str, Any]:
    """An input schema: an object of exactly these properties."""
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties)}
    needed = [name for name in properties if name in set(required)]
    if needed:
        schema["required"] = needed
    schema["additionalProperties"] = False
    return schema


def tighten(
    schema: Any, components: Mapping[str, Any], *, optional: bool = False, depth: int = 0
) -> Any:
    """`schema` with references inlined and the token-wasting parts removed. `optional`: the
    param may be left out, so "or null" adds nothing (leaving it out is how to say null)."""
    if isinstance(schema, list):
        return [tighten(item, components, depth=depth) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        target = components.get(ref[len(_REF_PREFIX) :])
        if target is None or depth >= _MAX_DEPTH:
            return {"type": "object"}
        return tighten(target, components, optional=optional, depth=depth + 1)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title":
            continue
        if key == "default" and any(value == empty for empty in _EMPTY_DEFAULTS):
            continue
        if key in ("maximum", "minimum") and isinstance(value, int) and abs(value) >= _HUGE:
            continue
        if key in _STORAGE_SIZES and isinstance(value, int) and value >= _STORAGE_SIZES[key]:
            continue
        if key in ("properties", "patternProperties", "$defs"):
            out[key] = {
                name: tighten(sub, components, depth=depth + 1) for name, sub in value.items()
            }
        else:
            out[key] = tighten(value, components, depth=depth + 1)
    if optional:
        out = _without_null(out)
    return _type_list(out)


def _type_list(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [{type: integer}, {type: string}]` → `type: [integer, string]`: the same,
    shorter."""
    options = schema.get("anyOf")
    if not isinstance(options, list) or "type" in schema:
        return schema
    if not all(isinstance(o, dict) and set(o) == {"type"} and isinstance(o["type"], str)
               for o in options):  # fmt: skip
        return schema
    merged = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**merged, "type": [option["type"] for option in options]}


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, …, null]` → `anyOf: [X, …]`, and a single X in place of the anyOf (keeping
    the outer keys, such as the description)."""
    options = schema.get("anyOf")
    if not isinstance(options, list):
        return schema
    rest = [option for option in options if option != {"type": "null"}]
    if not rest or len(rest) == len(options):
        return schema
    merged = {key: value for key, value in schema.items() if key != "anyOf"}
    if len(rest) > 1:
        return {**merged, "anyOf": rest}
    return {**rest[0], **merged}
