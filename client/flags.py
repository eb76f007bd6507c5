"""The global flags (`--json`, `--socket PATH`, `--no-spawn`), taken out wherever they stand.

Read before anything else, by the fast `pm status`, every other command and the completion:
standard library only, nothing imported.
"""

from __future__ import annotations

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def split_globals(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The global flags, wherever they stand, and the rest. Everything after `--` is left as
    it is."""
    opts: dict[str, Any] = {"json": False, "socket": None, "no_spawn": False}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if arg == "--json":
            opts["json"] = True
        elif arg == "--no-spawn":
            opts["no_spawn"] = True
        elif arg == "--socket" and i + 1 < len(argv):
            opts["socket"] = argv[i + 1]
            i += 1
        elif arg.startswith("--socket="):
            opts["socket"] = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return opts, rest


def as_words(opts: dict[str, Any]) -> list[str]:
    """The global flags again, as words (to run a command anew with the same ones)."""
    words = ["--json"] if opts["json"] else []
    if opts["socket"]:
        words += ["--socket", opts["socket"]]
    return words + (["--no-spawn"] if opts["no_spawn"] else [])
