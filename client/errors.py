"""What a client can fail with. No imports: the CLI's fast path loads this."""

from __future__ import annotations

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# The CLI's exit codes (sysexits.h where one fits).
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: nothing answers on the socket
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: the daemon is busy; retry


# The JSON-RPC protocol this client speaks; must equal daemon.PROTOCOL_VERSION (a test checks).
PROTOCOL_VERSION = 1


# Kinds that mean "try again in a moment": the daemon is busy, starting or stopping.
_RETRY_KINDS = ("busy", "starting", "shutting_down")


class ClientError(Exception):
    exit_code = EXIT_FAILED
    kind = "failed"  # what `pm --json` reports on stderr; a RemoteError has the daemon's

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class UsageError(ClientError):
    """The command line asks for something pm cannot do as given (exit 2)."""

    exit_code = EXIT_USAGE
    kind = "usage"

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage  # the parser's usage line, shown to a person


class Unreachable(ClientError):
    """Nothing answers on the socket (and the client did not or could not start the daemon)."""

    exit_code = EXIT_UNAVAILABLE
    kind = "unreachable"


class ProtocolError(ClientError):
    """The other side does not speak our protocol (or closed the connection mid-reply)."""

    kind = "protocol"


class IncompatibleDaemon(ClientError):
    """The daemon speaks another protocol version than this client."""

    kind = "incompatible"


class RemoteError(ClientError):
    """The daemon answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data if isinstance(data, dict) else {}
        self.kind = str(self.data.get("kind", ""))
        if self.kind in _RETRY_KINDS:
            self.exit_code = EXIT_TEMPFAIL

    @classmethod
    def from_error(cls, error: Any) -> RemoteError:
        if not isinstance(error, dict):
            return cls(-32603, f"malformed error object: {error!r}")
        return cls(int(error.get("code", -32603)), str(error.get("message", "")), error.get("data"))
