"""JSON-RPC 2.0 dispatch, apart from any transport: bytes of one message in, bytes out.

Handles single requests, notifications (never answered, not even with an error) and batches,
decodes params straight into each method's msgspec type, and turns every failure into an
error object: known kinds keep their code, anything unexpected becomes -32603 with a log
line and never a traceback on the wire.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Literal

import msgspec
import msgspec.inspect
import structlog
from msgspec import UNSET

from daemon.rpc import wire
from daemon.rpc.errors import (
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    RequestCancelled,
    RpcError,
    ShuttingDown,
    Starting,
)
from daemon.rpc.fairness import ReadShare, read_share
from daemon.rpc.registry import Method, ProgressParams, Registry
from daemon.store.cancellation import outcome_over_cancel
from daemon.store.writer import HEAVY_REQUEST_BYTES, heavy_write

log = structlog.get_logger("pm.rpc")

State = Literal["starting", "migrating", "ready", "stopping"]
CancelReason = Literal["client", "shutdown"]
AfterReply = Callable[[], None]


_TOO_DEEP = ParseError("Parse error: JSON nested too deeply")
# A batch's requests run at most this many at a time: a batch of 10,000 is not 10,000 tasks
# (about 1 KB each, and a connection may have `max_inflight` batches in flight).
BATCH_CONCURRENCY = 256


class Running:
    """A request being handled. It starts outside any task (daemon.rpc.server runs its first
    step at once: most requests finish there); `task` is the task that goes on with it once
    it has to wait, set when that is made."""

    __slots__ = ("task",)

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self.task = task


# The request the current context serves (the server reads it to hand over the task).
current_request: ContextVar[Running | None] = ContextVar("current_request", default=None)


class Session:
    """What one connection shares with the handlers of its requests."""

    def __init__(self) -> None:
        self.closed = False
        self.subscriptions = 0
        self.inflight: dict[Any, Running] = {}
        self.cancel_reasons: dict[asyncio.Task[Any], CancelReason] = {}
        self._close_callbacks: list[Callable[[], None]] = []
        self.read_share = ReadShare()

    def notify(self, method: str, params: Any) -> None:
        raise NotImplementedError

    def on_close(self, callback: Callable[[], None]) -> None:
        self._close_callbacks.append(callback)

    def run_close_callbacks(self) -> None:
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("close callback failed")

    def cancel(self, request_id: Any, reason: CancelReason) -> bool:
        running = self.inflight.get(request_id)
        task = running.task if running is not None else None
        if task is None or task.done():
            return False
        self.cancel_reasons[task] = reason
        task.cancel()
        return True


class Call:
    """One request as its handler sees it: who asked, progress reporting, cancellation."""

    __slots__ = ("_after", "_begun", "_percentage", "id", "method", "partial", "session", "token")

    def __init__(self, session: Session, id_: Any, method: str, token: Any) -> None:
        self.session = session
        self.id = id_
        self.method = method
        self.token = token
        self.partial: dict[str, Any] = {}  # what was done before a cancellation, for the error
        self._begun = False
        self._percentage: int | None = None  # the highest sent so far
        self._after: list[AfterReply] = []

    def progress(self, message: str, percentage: int | None = None) -> None:
        """Send `$/progress` (begin, then report) when the client asked with a workDoneToken.

        Percentages never go back, whatever the operation reports (a later phase that starts
        again at 0, steps that finish out of order): the highest so far is sent instead, and
        once one was sent every later message carries it."""
        if self.token is None:
            return
        value: dict[str, Any] = {"kind": "report" if self._begun else "begin", "message": message}
        if not self._begun:
            value["title"] = self.method
            self._begun = True
        if percentage is not None:
            given = max(0, min(100, int(percentage)))
            self._percentage = max(given, self._percentage or 0)
        if self._percentage is not None:
            value["percentage"] = self._percentage
        self.session.notify("$/progress", {"token": self.token, "value": value})

    def finish_progress(self, message: str) -> None:
        if self._begun:
            value: dict[str, Any] = {"kind": "end", "message": message}
            if self._percentage is not None:
                # LSP's end has none, but a client that reads one from every message showed a
                # finished scan or backup as 0 % at its end.
                value["percentage"] = self._percentage
            self.session.notify("$/progress", {"token": self.token, "value": value})
            self._begun = False

    def check_cancelled(self) -> None:
        """Raise CancelledError if a cancellation arrived while this task was not awaiting."""
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError

    def after_reply(self, callback: AfterReply) -> None:
        """Run `callback` once this request's reply has been written (e.g. start a replay)."""
        self._after.append(callback)


class Dispatcher:
    def __init__(self, registry: Registry, state: Callable[[], State], max_batch: int) -> None:
        self._registry = registry
        self._state = state
        self._max_batch = max_batch

    async def handle(
        self, frame: bytes, session: Session, *, eager: bool = False
    ) -> tuple[bytes | None, list[AfterReply]]:
        """One framed message (a request, a notification or a batch) → the reply, if any.
        `eager`: the caller runs the first step outside any task (daemon.rpc.server), so there
        is no task to look up (asyncio.current_task() costs a getpid() system call)."""
        after: list[AfterReply] = []
        if not frame.isascii():
            # msgspec checks UTF-8 only where it decodes strings: not in object keys (it
            # raises UnicodeDecodeError) nor in what it keeps raw for later (params, values).
            try:
                frame.decode()
            except UnicodeDecodeError as e:
                return wire.error_response(None, ParseError(f"Parse error: not UTF-8: {e}")), after
        if frame[:1] == b"[":
            return await self._batch(frame, session, after), after
        return await self._one(frame, session, after, eager), after

    async def _batch(self, frame: bytes, session: Session, after: list[AfterReply]) -> bytes | None:
        try:
            items = wire.batch_decoder.decode(frame)
        except msgspec.DecodeError as e:
            return wire.error_response(None, ParseError(f"Parse error: {e}"))
        except RecursionError:
            return wire.error_response(None, _TOO_DEEP)
        if not items:
            return wire.error_response(None, InvalidRequest("Invalid Request: empty batch"))
        if len(items) > self._max_batch:
            return wire.error_response(
                None,
                InvalidRequest(
                    f"Invalid Request: batch of {len(items)} exceeds the limit of {self._max_batch}"
                ),
            )
        replies: list[bytes | None] = [None] * len(items)
        todo = iter(range(len(items)))

        async def work() -> None:
            for i in todo:  # shared by the workers: each takes the next request
                replies[i] = await self._one(items[i], session, after, False)

        await asyncio.gather(*(work() for _ in range(min(BATCH_CONCURRENCY, len(items)))))
        answered = [r for r in replies if r is not None]
        if not answered:
            return None  # a batch of notifications gets no bytes at all
        return b"[" + b",".join(answered) + b"]"

    async def _one(
        self, raw: bytes | msgspec.Raw, session: Session, after: list[AfterReply], eager: bool
    ) -> bytes | None:
        try:
            request = wire.request_decoder.decode(raw)
        except msgspec.ValidationError as e:
            return _invalid_request(raw, e)
        except msgspec.DecodeError as e:
            return wire.error_response(None, ParseError(f"Parse error: {e}"))
        except RecursionError:
            return wire.error_response(None, _TOO_DEEP)
        is_request = request.id is not UNSET
        request_id = None if request.id is UNSET else request.id
        try:
            method, params = self._resolve(request)
        except RpcError as e:
            if not is_request and not isinstance(e, InvalidRequest):
                return None
            return wire.error_response(request_id, e)
        token = params.workDoneToken if isinstance(params, ProgressParams) else UNSET
        call = Call(session, request_id, method.name, None if token is UNSET else token)
        # This request's own context (a copy made by the server, or a batch's task's):
        outcome_over_cancel.set(True)  # it is a client's request
        read_share.set(session.read_share)
        heavy_write.set(len(raw) > HEAVY_REQUEST_BYTES)
        running = Running(None if eager else asyncio.current_task())
        current_request.set(running)
        if is_request:
            session.inflight[request_id] = running
        try:
            result = await method.handler(call, params)
        except asyncio.CancelledError:
            task = running.task
            reason = session.cancel_reasons.pop(task, None) if task is not None else None
            if task is None or reason is None:
                raise  # the connection went away: there is nobody to answer
            task.uncancel()
            error: RpcError = (
                RequestCancelled("Request cancelled", **call.partial)
                if reason == "client"
                else ShuttingDown(
                    "the daemon is shutting down; the request was stopped", **call.partial
                )
            )
            return wire.error_response(request_id, error) if is_request else None
        except RpcError as e:
            return wire.error_response(request_id, e) if is_request else None
        except Exception as e:
            error = _unexpected(e, method.name)
            return wire.error_response(request_id, error) if is_request else None
        finally:
            if is_request and session.inflight.get(request_id) is running:
                del session.inflight[request_id]
            call.finish_progress("done")
        after.extend(call._after)
        return wire.result_response(request_id, result) if is_request else None

    def _resolve(self, request: wire.Request) -> tuple[Method, Any]:
        if request.jsonrpc != "2.0":
            raise InvalidRequest('Invalid Request: "jsonrpc" must be "2.0"')
        method = self._registry.get(request.method)
        if method is None:
            raise MethodNotFound(f"Method not found: {request.method}", method=request.method)
        params = _decode_params(method, request.params)
        state = self._state()
        if state != "ready" and not method.when_starting:
            if state == "stopping":
                raise ShuttingDown("the daemon is shutting down; the request was not run")
            raise Starting(
                f"the daemon is {state}; {method.name} will be available in a moment",
                state=state,
            )
        return method, params


_NO_PARAMS = (b"null", b"[]")  # jsonrpc.el sends nil as null; some encoders write {} as []


def _decode_params(method: Method, raw: msgspec.Raw | msgspec.UnsetType) -> Any:
    if raw is UNSET or (len(raw) < 16 and b"".join(bytes(raw).split()) in _NO_PARAMS):
        body: bytes | msgspec.Raw = b"{}"
    else:
        body = raw
        first = bytes(memoryview(raw)[:1])
        if first == b"[":
            raise InvalidParams(
                f"Invalid params: {method.name} takes params by name (an object), not an array"
            )
        if first != b"{":
            raise InvalidRequest("Invalid Request: params must be an object or an array")
    try:
        return method.decoder.decode(body)
    except RecursionError:
        raise InvalidParams("Invalid params: nested too deeply") from None
    except msgspec.ValidationError as e:
        text = str(e).replace("`$.", "`params.").replace(" - at `$`", "")
        field = _field_of(str(e))
        data: dict[str, Any] = {"field": field} if field else {}
        allowed = _allowed(method.params_type, field) if field else None
        if allowed and str(e).startswith("Invalid enum value"):
            data["allowed"] = list(allowed)
            text += f"; allowed: {', '.join(map(str, allowed))}"
        raise InvalidParams(f"Invalid params: {text}", **data) from None


@functools.cache
def _allowed(params_type: type, field: str) -> tuple[Any, ...] | None:
    """The values an enum field of the params takes (its Literal), for the error message."""
    info = msgspec.inspect.type_info(params_type)
    name = field.split(".", maxsplit=1)[0].split("[", maxsplit=1)[0]
    if not isinstance(info, msgspec.inspect.StructType):
        return None
    for f in info.fields:
        if f.encode_name != name:
            continue
        kinds = [f.type]
        while kinds:
            kind = kinds.pop()
            if isinstance(kind, msgspec.inspect.Metadata):
                kinds.append(kind.type)
            elif isinstance(kind, msgspec.inspect.UnionType):
                kinds.extend(kind.types)
            elif isinstance(kind, msgspec.inspect.ListType):
                kinds.append(kind.item_type)
            elif isinstance(kind, msgspec.inspect.LiteralType):
                return kind.values
    return None


def _field_of(message: str) -> str | None:
    for marker in ("at `$.", "field `"):
        start = message.find(marker)
        if start >= 0:
            rest = message[start + len(marker) :]
            return rest[: rest.find("`")]
    return None


def _invalid_request(raw: bytes | msgspec.Raw, error: msgspec.ValidationError) -> bytes:
    try:
        obj = wire.any_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        obj = None
    request_id = None
    if isinstance(obj, dict):
        candidate = obj.get("id")
        if isinstance(candidate, int | float | str) and not isinstance(candidate, bool):
            request_id = candidate
        detail = str(error).replace("`$.", "`")
    else:
        detail = "a request must be a JSON object"
    return wire.error_response(request_id, InvalidRequest(f"Invalid Request: {detail}"))


def _unexpected(error: Exception, method: str) -> RpcError:
    """What a handler raised that is not an RpcError (call it inside the `except`)."""
    if isinstance(error, OverflowError):  # past SQLite's 64-bit integers, a date past 9999
        return InvalidParams(f"Invalid params: a value is out of range ({error})")
    log.exception("handler failed", method=method)
    return InternalError(f"internal error in {method}; the daemon log has the details")
