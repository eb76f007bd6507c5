"""The client's one way into the daemon's code: daemon.runtime.offline.answer.

`pm doctor` and the recovery commands (when no daemon answers) need what only the daemon's
code knows — how the config resolves, why the daemon last stopped, how to check or restore
the file itself. They ask here; nothing else in client/ imports daemon code
(tests/test_client_imports.py). Imported only by the commands that need it: the daemon's
modules cost ~200 ms to load.
"""

from __future__ import annotations

from client import errors

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Refused(errors.ClientError):
    """The daemon's code cannot answer: `str()` says why, `fix` what to do, `kind` what
    went wrong ("offline"; "config" or "dev_root" for the config)."""

    def __init__(self, message: str, *, kind: str, fix: str) -> None:
        super().__init__(message, kind=kind)
        self.fix = fix


def ask(question: str, params: dict[str, Any] | None = None) -> Any:
    """The answer, as plain data; Refused when there is none."""
    from daemon.runtime.offline import OfflineError, answer

    try:
        return answer(question, params)
    except OfflineError as e:
        raise Refused(str(e), kind=e.kind, fix=e.fix) from None
