"""A command's parsed arguments (client.spec reads the words into one)."""

from __future__ import annotations

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Args:
    """The parsed words: one attribute per argument (None, False or [] when not given), plus
    the global flags (`json`, `socket`, `no_spawn`) and `command`, the words that named it."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # mypy: any argument a command declares
        raise AttributeError(f"no argument {name!r}")

    def get(self, name: str, default: Any = None) -> Any:
        """The argument, or `default` for one this command does not have."""
        return self.__dict__.get(name, default)


def stdin_or(text: str) -> str:
    """`-` means the text on stdin, as in `pm call METHOD -` and `pm kv set NS K -`."""
    import sys

    return sys.stdin.read() if text == "-" else text
