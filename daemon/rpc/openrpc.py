"""`rpc.discover`: an OpenRPC document generated from the method registry itself."""

from __future__ import annotations

from typing import Any

import msgspec

from daemon.errors import ALL_KINDS
from daemon.rpc.registry import Registry

OPENRPC_VERSION = "1.3.2"
_REF = "#/components/schemas/{name}"


def document(registry: Registry, *, version: str, title: str = "pm-agent") -> dict[str, Any]:
    methods = registry.methods()
    types: list[Any] = []
    for method in methods:
        types += [method.params_type, method.result_type]
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
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
