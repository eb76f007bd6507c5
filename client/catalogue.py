"""The daemon's `rpc.discover`, read for the generated commands: which nouns have which of
list / show / add / update / remove, and what each takes, as plain data the CLI builds its
commands from (client.generated) and keeps in its cache (client.session).

Only the methods' own description is read — param names, JSON Schema types, which are
required, enums, descriptions — so a noun another engineer adds to the daemon through
daemon/domain/crud.py has its commands at once, with no change here.

A noun:  {"help": str, "fields": [[name, kind], …], "verbs": {verb: {"method", "help",
          "params": [param, …]}}}, its verbs in the order of VERBS
A param: {"name", "kind", "required", "nullable", "help", "choices"?, "item"?}
Kinds:   int, number, bool, str, choice (an enum: "choices"), ref (an id or a name: integer
         or string), list (of "item", a scalar kind), json (anything else, given as JSON text)
"""

from __future__ import annotations

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The verbs a noun can have, and the method each one calls (`<noun>.<method>`).
VERBS = {"list": "list", "show": "get", "add": "add", "update": "update", "remove": "delete"}
HIDDEN_PARAMS = frozenset({"workDoneToken"})  # protocol plumbing, not a user's argument
_SCALAR = {"integer": "int", "number": "number", "boolean": "bool", "string": "str"}
_REF = "#/components/schemas/"


def nouns(discover: dict[str, Any]) -> dict[str, Any]:
    """Every namespace with at least one of the generated verbs' methods."""
    schemas = (discover.get("components") or {}).get("schemas") or {}
    methods = {m["name"]: m for m in discover.get("methods") or () if isinstance(m, dict)}
    found: dict[str, Any] = {}
    for name in sorted(methods):
        noun, _, method = name.rpartition(".")
        if not noun or noun.startswith("$") or "." in noun:
            continue
        verb = next((v for v, m in VERBS.items() if m == method), None)
        if verb is None:
            continue
        entry = found.setdefault(noun, {"help": "", "fields": [], "verbs": {}})
        spec = methods[name]
        entry["verbs"][verb] = {
            "method": name,
            "help": _one_line(spec.get("summary") or spec.get("description") or ""),
            "params": [
                _param(p, schemas)
                for p in spec.get("params") or ()
                if isinstance(p, dict) and p.get("name") not in HIDDEN_PARAMS
            ],
        }
        if verb == "list" or (verb == "show" and not entry["fields"]):  # a list's rows first
            entry["fields"] = _fields(spec, schemas, paged=verb == "list")
    for noun, entry in found.items():
        entry["verbs"] = {v: entry["verbs"][v] for v in VERBS if v in entry["verbs"]}  # in order
        entry["help"] = f"{noun}: " + ", ".join(entry["verbs"])
    return found


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _resolve(schema: Any, schemas: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    while isinstance(schema, dict) and "$ref" in schema and depth < 20:
        ref = str(schema["$ref"])
        schema = schemas.get(ref[len(_REF) :]) if ref.startswith(_REF) else None
        depth += 1
    return schema if isinstance(schema, dict) else {}


def _kind(schema: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """{kind, nullable, help, choices?, item?} of one JSON Schema."""
    schema = _resolve(schema, schemas)
    help_text = schema.get("description", "")
    options = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(options, list):
        resolved = [_resolve(o, schemas) for o in options]
        real = [o for o in resolved if o.get("type") != "null"]
        nullable = len(real) < len(resolved)
        if len(real) == 1:
            inner = _kind(real[0], schemas)
            inner["nullable"] = inner["nullable"] or nullable
            inner["help"] = help_text or inner["help"]
            return inner
        types = {o.get("type") for o in real}
        kind = "ref" if types == {"integer", "string"} else "json"
        return {"kind": kind, "nullable": nullable, "help": help_text}
    if "enum" in schema and isinstance(schema["enum"], list):
        return {
            "kind": "choice",
            "nullable": False,
            "help": help_text,
            "choices": list(schema["enum"]),
        }
    kind = _SCALAR.get(schema.get("type", ""), "json")
    if schema.get("type") == "array":
        item = _kind(schema.get("items", {}), schemas)
        if item["kind"] in ("int", "number", "str", "choice", "ref") and not item["nullable"]:
            found = {"kind": "list", "nullable": False, "help": help_text, "item": item["kind"]}
            if "choices" in item:
                found["choices"] = item["choices"]
            return found
    return {"kind": kind, "nullable": False, "help": help_text}


def _param(spec: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    found = _kind(spec.get("schema", {}), schemas)
    found["name"] = str(spec["name"])
    found["required"] = bool(spec.get("required"))
    found["help"] = _one_line(found["help"] or spec.get("description", ""))
    return found


def _fields(spec: dict[str, Any], schemas: dict[str, Any], *, paged: bool) -> list[list[str]]:
    """The row's fields, in order, each a scalar or json: what a table may show."""
    row = _resolve((spec.get("result") or {}).get("schema"), schemas)
    if paged:
        items = _resolve((row.get("properties") or {}).get("items"), schemas)
        row = _resolve(items.get("items"), schemas)
    fields = []
    for name, schema in (row.get("properties") or {}).items():
        kind = _kind(schema, schemas)["kind"]
        fields.append([str(name), "json" if kind in ("json", "list") else "scalar"])
    return fields
