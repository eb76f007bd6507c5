"""The errors a client can see: one base carrying (code, message, data) and a subclass per kind.

Codes follow JSON-RPC 2.0 (-32700…-32603), LSP's RequestCancelled (-32800), and the
application range -32000…-32099. Every error carries a stable ``data.kind`` string that
clients and the CLI branch on; the numeric code is fixed per kind too.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RpcError(Exception):
    code: ClassVar[int] = -32603
    kind: ClassVar[str] = "internal"

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def error_object(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "data": {"kind": self.kind, **self.data},
        }


class ParseError(RpcError):
    code, kind = -32700, "parse_error"


class InvalidRequest(RpcError):
    code, kind = -32600, "invalid_request"


class MethodNotFound(RpcError):
    code, kind = -32601, "method_not_found"


class InvalidParams(RpcError):
    code, kind = -32602, "invalid_params"


class InternalError(RpcError):
    code, kind = -32603, "internal"


class RequestCancelled(RpcError):
    code, kind = -32800, "cancelled"


class NotFound(RpcError):
    code, kind = -32001, "not_found"


class Conflict(RpcError):
    code, kind = -32002, "conflict"


class Busy(RpcError):
    code, kind = -32003, "busy"


class InvalidState(RpcError):
    code, kind = -32004, "invalid_state"


class Starting(RpcError):
    code, kind = -32005, "starting"


class ShuttingDown(RpcError):
    code, kind = -32006, "shutting_down"


class DiskFull(RpcError):
    code, kind = -32007, "disk_full"


class Forbidden(RpcError):
    code, kind = -32008, "forbidden"


class TooLarge(RpcError):
    code, kind = -32009, "too_large"


class StorageError(RpcError):
    """The database failed in a way no other kind describes (I/O error, corruption)."""

    code, kind = -32010, "storage"


ALL_KINDS: tuple[type[RpcError], ...] = (
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    InternalError,
    RequestCancelled,
    NotFound,
    Conflict,
    Busy,
    InvalidState,
    Starting,
    ShuttingDown,
    DiskFull,
    Forbidden,
    TooLarge,
    StorageError,
)
