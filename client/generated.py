"""The commands generated from `rpc.discover` (client.catalogue), for every noun whose methods
are the generated CRUD (daemon/domain/crud.py) or look like them:

    pm NOUN list [--FIELD VALUE …] [--limit N] [--offset N]      NOUN.list
    pm NOUN show ID                                               NOUN.get
    pm NOUN add --FIELD VALUE …                                   NOUN.add
    pm NOUN update ID --FIELD VALUE …                             NOUN.update
    pm NOUN remove ID                                             NOUN.delete

Arguments come from each method's params: required ones are positionals (show, update,
remove) or required options (list, add); an enum gives choices, a boolean a flag (and
`--no-FIELD`), a list of scalars a repeatable option, anything else JSON text; in `update`,
`--no-FIELD` sets a nullable field to null. A `project` takes an id, a name or a path, and `.`
(or, where one is required, nothing) is the project holding the current directory. The
daemon checks every value; its errors are shown as they are.
"""

from __future__ import annotations

import sys

from client import errors, fastjson, output
from client.args import stdin_or
from client.columns import columns
from client.spec import Arg, Command

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from client.args import Args
    from client.session import Session

POSITIONAL_VERBS = ("show", "update", "remove")  # their required params are positionals
PROJECT = "project"  # the param every project reference goes by (DESIGN: API contract)


def command(noun: str, entry: dict[str, Any], only: Iterable[str] | None = None) -> Command:
    """`pm NOUN …` with the verbs the daemon offers (or just those in `only`)."""
    return Command(noun, verbs=verbs(noun, entry, only), help=entry.get("help", ""))


def verbs(noun: str, entry: dict[str, Any], only: Iterable[str] | None = None) -> list[Command]:
    """The noun's verbs, in their usual order (client.catalogue keeps them so). The arguments
    of the one verb a command line names are all that is built (`later`)."""
    offered = entry["verbs"]
    wanted = [v for v in offered if only is None or v in only]
    return [
        Command(
            verb,
            _handler(noun, verb, offered[verb], entry),
            later=_arguments(verb, offered[verb]["params"], entry),
            help=offered[verb].get("help", ""),
        )
        for verb in wanted
    ]


def _arguments(
    verb: str, params: list[dict[str, Any]], entry: dict[str, Any]
) -> Callable[[Session], list[Arg]]:
    def build(s: Session) -> list[Arg]:
        return _args(verb, params, {name for name, _ in entry.get("fields", [])})

    return build


def well_formed(entry: Any) -> bool:
    """Is this noun as client.catalogue makes it? (It may come from a cache file.)"""
    if not isinstance(entry, dict) or not isinstance(entry.get("verbs"), dict):
        return False
    if not isinstance(entry.get("fields", []), list):
        return False
    for spec in entry["verbs"].values():
        if not isinstance(spec, dict) or not isinstance(spec.get("method"), str):
            return False
        params = spec.get("params")
        if not isinstance(params, list) or not all(_param_ok(p) for p in params):
            return False
    return all(isinstance(f, list) and len(f) == 2 for f in entry.get("fields", []))


def _param_ok(p: Any) -> bool:
    return (
        isinstance(p, dict)
        and isinstance(p.get("name"), str)
        and isinstance(p.get("kind"), str)
        and isinstance(p.get("choices", []), list)
    )


# --- arguments --------------------------------------------------------------------------------
def number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def json_value(text: str) -> Any:
    """JSON text (`-` reads it from stdin)."""
    try:
        return fastjson.loads(stdin_or(text))
    except ValueError:
        raise ValueError("not JSON; quote a string as JSON, e.g. '\"text\"'") from None


def reference(text: str) -> int | str:
    """An id (digits) or a name; a path or `.` is resolved later (client.current)."""
    return int(text) if text.isascii() and text.isdigit() else text


_CONVERT: dict[str, Callable[[str], Any]] = {
    "int": int,
    "number": number,
    "ref": reference,
    "json": json_value,
}


def _choice(choices: list[Any]) -> Callable[[str], Any]:
    """The choice the text names: as it is written, with `-` for `_` (`--reset origin-type`),
    or a number's digits. Arg.value refuses what is none of them."""
    by_text = {str(c): c for c in choices}

    def choice(text: str) -> Any:
        return by_text.get(text, by_text.get(text.replace("-", "_"), text))

    return choice


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def dest(name: str) -> str:
    """Where a param's value is kept in Args: never a name of pm's own (`json`, `command`…),
    whatever the daemon's params are called."""
    return f"={name}"


def negation(name: str) -> str:
    """Where `--no-FIELD` is kept."""
    return f"no={name}"


def _args(verb: str, params: list[dict[str, Any]], fields: set[str] | None = None) -> list[Arg]:
    """The arguments of one verb. `fields`: the row's own, which `update --no-FIELD` may set
    to null (not a param like `expected_version`)."""
    out: list[Arg] = []
    for p in params:
        name, kind = p["name"], p["kind"]
        item = p.get("item", kind)
        convert = _CONVERT.get(item)
        choices = p.get("choices")
        if choices is not None:
            convert = _choice(choices)
        project = name == PROJECT and kind in ("ref", "str")
        help_text = p.get("help", "") + (" (. is the project here)" if project else "")
        required = p["required"] and not (project and verb == "add")  # nothing: here
        if p["required"] and verb in POSITIONAL_VERBS and kind != "bool":
            out.append(
                Arg(
                    dest(name),
                    convert=convert,
                    choices=choices,
                    help=help_text,
                    metavar=name.upper(),
                    complete=PROJECT if project else None,
                )
            )
            continue
        if kind == "bool":
            out.append(Arg(dest(name), _flag(name), flag=True, group=name, help=help_text))
            out.append(
                Arg(
                    negation(name),
                    f"--no-{name.replace('_', '-')}",
                    flag=True,
                    group=name,
                    help=f"{name} false",
                )
            )
            continue
        out.append(
            Arg(
                dest(name),
                _flag(name),
                convert=convert,
                choices=choices,
                repeat=kind == "list",
                required=required,
                group=name,
                help=help_text,
                metavar=_metavar(name, kind),
                complete=PROJECT if project else None,
            )
        )
        if verb == "update" and p.get("nullable") and (fields is None or name in fields):
            out.append(
                Arg(
                    negation(name),
                    f"--no-{name.replace('_', '-')}",
                    flag=True,
                    group=name,
                    help=f"set {name} to null",
                )
            )
    return out


def options(params: list[dict[str, Any]]) -> list[Arg]:
    """Every param as an option, none required (a hand-written command's own form of one
    method: `pm project set`)."""
    return _args("set", [{**p, "required": False} for p in params], set())


def _metavar(name: str, kind: str) -> str:
    return "JSON" if kind == "json" else "N" if kind in ("int", "number") else name.upper()


def params(spec: dict[str, Any], args: Args, s: Session) -> dict[str, Any]:
    """The method's params from the parsed arguments: only what was given."""
    given = args.__dict__
    out: dict[str, Any] = {}
    for p in spec["params"]:
        name, kind = p["name"], p["kind"]
        value = given.get(dest(name))
        if given.get(negation(name)):
            out[name] = False if kind == "bool" else None
        elif kind == "bool":
            if value:
                out[name] = True
        elif value not in (None, []):
            out[name] = value
        if name == PROJECT and kind in ("ref", "str"):
            out.update(_project(out.get(name), p, spec, s))
    return out


def _project(value: Any, p: dict[str, Any], spec: dict[str, Any], s: Session) -> dict[str, Any]:
    if isinstance(value, str):
        from client import current

        if current.is_path(value):
            return {PROJECT: current.project_ref(s, value)}
    if value is None and p["required"] and spec["method"].endswith(".add"):
        from client import current

        return {PROJECT: current.project_ref(s, None)}  # nothing: the project here
    return {}


# --- running and showing ----------------------------------------------------------------------
def _handler(
    noun: str, verb: str, spec: dict[str, Any], entry: dict[str, Any]
) -> Callable[[Args, Session], int]:
    def run(args: Args, s: Session) -> int:
        result = s.call(spec["method"], params(spec, args, s))
        if args.json:
            output.print_json(result)
        elif verb == "list" and isinstance(result, dict) and isinstance(result.get("items"), list):
            sys.stdout.write(render_list(noun, entry, result))
            _more(result, args)
        elif verb == "remove":
            print(output.visible(f"removed {noun} {_id(result, args)}"))
        elif verb in ("add", "update") and isinstance(result, dict):
            sys.stdout.write(render_list(noun, entry, {"items": [result]}))  # its list line
        elif isinstance(result, dict):
            sys.stdout.write(render_row(result))
        else:
            output.print_json(result)
        return errors.EXIT_OK

    return run


def _id(result: Any, args: Args) -> Any:
    return result.get("id") if isinstance(result, dict) and "id" in result else args.get(dest("id"))


def _more(page: dict[str, Any], args: Args) -> None:
    shown = len(page["items"])
    offset = args.get(dest("offset")) or 0
    if isinstance(page.get("total"), int) and page["total"] > offset + shown:
        output.error(f"showing {shown} of {page['total']}; use --offset/--limit for more")


def cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return output.relative_time(value) if name.endswith("_at") else value
    if isinstance(value, dict | list):
        return output.json_text(value)
    return str(value)


def render_list(noun: str, entry: dict[str, Any], page: dict[str, Any]) -> str:
    chosen = columns(noun, entry.get("fields") or [])
    rows = [
        [cell(name, item.get(name)) if isinstance(item, dict) else "" for name, _ in chosen]
        for item in page["items"]
    ]
    headers = [name.replace("_", " ").upper() for name, _ in chosen]
    return output.table(headers, rows, [width for _, width in chosen])


def render_row(row: dict[str, Any]) -> str:
    """Every field on its line: `name  value` (times also as "3 days ago")."""
    width = max((len(name) for name in row), default=0)
    out = []
    for name, value in row.items():
        if value in (None, "", [], {}):
            shown = "—"
        elif isinstance(value, str) and name.endswith("_at"):
            shown = f"{value} ({output.relative_time(value)})"
        elif isinstance(value, dict | list):
            shown = output.compact(value, 200)
        else:
            shown = cell(name, value)
        out.append(output.visible(f"{name:<{width}}  {shown}") + "\n")
    return "".join(out)
