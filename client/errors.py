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


class ClientError(Exception):
    exit_code = EXIT_FAILED


class Unreachable(ClientError):
    """Nothing answers on the socket (and the client did not or could not start the daemon)."""

    exit_code = EXIT_UNAVAILABLE


class ProtocolError(ClientError):
    """The other side does not speak our protocol (or closed the connection mid-reply)."""


class IncompatibleDaemon(ClientError):
    """The daemon speaks another protocol version than this client."""


class RemoteError(ClientError):
    """The daemon answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data if isinstance(data, dict) else {}
        self.kind: str = str(self.data.get("kind", ""))
        if self.kind in ("busy", "starting"):
            self.exit_code = EXIT_TEMPFAIL

    @classmethod
    def from_error(cls, error: Any) -> RemoteError:
        if not isinstance(error, dict):
            return cls(-32603, f"malformed error object: {error!r}")
        return cls(int(error.get("code", -32603)), str(error.get("message", "")), error.get("data"))
