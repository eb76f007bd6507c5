"""`rpc.discover`: an OpenRPC document generated from the method registry itself."""

from __future__ import annotations

from typing import Any

import msgspec

from daemon.rpc.errors import ALL_KINDS
from daemon.rpc.registry import Registry

OPENRPC_VERSION = "1.3.2"
_REF = "#/components/schemas/{name}"


def document(registry: Registry, *, version: str, title: str = "pm-agent") -> dict[str, Any]:
    methods = registry.methods()
    types: list[Any] = []
    for method in methods:
        types += [method.params_type, method.result_type]
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    schemas, components = _draft_07(schemas), _draft_07(components)
    described = []
    for index, method in enumerate(methods):
        params_ref: str = schemas[2 * index]["$ref"]
        params_schema = components[params_ref.rsplit("/", 1)[1]]
        properties: dict[str, Any] = params_schema.get("properties", {})
        required = set(params_schema.get("required", []))
        params = [
            {"name": name, "required": name in required, "schema": schema}
            for name, schema in properties.items()
        ]
        entry: dict[str, Any] = {
            "name": method.name,
            "summary": method.summary,
            "paramStructure": "by-name",
            "params": params,
            "result": {"name": "result", "schema": schemas[2 * index + 1]},
        }
        if method.description:
            entry["description"] = method.description
        described.append(entry)
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "Every method the daemon serves, generated from its method registry. "
            "Application errors carry data.kind: "
            + ", ".join(f"{k.kind} ({k.code})" for k in ALL_KINDS),
        },
        "methods": described,
        "components": {"schemas": components},
    }


_CONTAINERS = frozenset({"properties", "$defs", "definitions", "patternProperties"})


def _draft_07(node: Any, *, names: bool = False) -> Any:
    """OpenRPC's schemas are JSON Schema draft-07; msgspec writes 2020-12, which differs in
    one place we use: a tuple's `prefixItems` + `items: false` is draft-07's `items: [...]` +
    `additionalItems: false`. (`names`: the keys of this mapping are names, not keywords.)"""
    if isinstance(node, list):
        return [_draft_07(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: _draft_07(value, names=key in _CONTAINERS and not names) for key, value in node.items()
    }
    if not names and "prefixItems" in out:
        rest = out.pop("items", True)
        out["items"] = out.pop("prefixItems")
        if rest is not True:
            out["additionalItems"] = rest
    return out
