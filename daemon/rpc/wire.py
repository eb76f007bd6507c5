"""JSON-RPC 2.0 messages as msgspec types, and the encoders for what the daemon sends."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from daemon.rpc.errors import RpcError

Id = int | float | str | None


class Request(msgspec.Struct):
    """A request (has `id`) or a notification (no `id`). `params` stays encoded until the
    method is known, then it is decoded straight into that method's params type."""

    jsonrpc: str
    method: str
    params: msgspec.Raw | UnsetType = UNSET
    id: Id | UnsetType = UNSET


request_decoder = msgspec.json.Decoder(Request)
batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])
any_decoder = msgspec.json.Decoder()
encoder = msgspec.json.Encoder()


def result_response(id_: Id, result: Any) -> bytes:
    return b'{"jsonrpc":"2.0","id":%s,"result":%s}' % (encoder.encode(id_), encoder.encode(result))


def error_response(id_: Id, error: RpcError) -> bytes:
    return b'{"jsonrpc":"2.0","id":%s,"error":%s}' % (
        encoder.encode(id_),
        encoder.encode(error.error_object()),
    )


def notification(method: str, params: Any) -> bytes:
    return b'{"jsonrpc":"2.0","method":%s,"params":%s}' % (
        encoder.encode(method),
        encoder.encode(params),
    )
