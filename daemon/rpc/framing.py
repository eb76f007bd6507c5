"""The two framings a connection may speak, detected from its first byte.

`{` or `[` first means newline-delimited JSON (scripts, socat, nc); anything else must be
LSP's base protocol (`Content-Length: N` headers, a blank line, N bytes of UTF-8 JSON).
Decoders never hold more than the size limit: an oversized message is refused as soon as its
size is known, before its body is read.
"""

from __future__ import annotations

from typing import Protocol

_WHITESPACE = b" \t\r\n"
_HEADER_END = b"\r\n\r\n"
_MAX_HEADER_BYTES = 8192


class FramingError(Exception):
    """The byte stream cannot be split into messages any more (the connection must close)."""


class FrameTooLarge(FramingError):
    def __init__(self, size: int | None, limit: int) -> None:
        shown = f"{size} bytes" if size is not None else f"more than {limit} bytes"
        super().__init__(f"message of {shown} exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class Framing(Protocol):
    name: str

    def feed(self, data: bytes) -> list[bytes]: ...

    def frame(self, body: bytes) -> bytes: ...

    def partial(self) -> bool:
        """Whether bytes of a message that has not completed yet are buffered."""
        ...

    def finish(self) -> list[bytes]:
        """The peer sends nothing more (it half-closed): what is buffered, as messages."""
        ...


class NdjsonFraming:
    name = "ndjson"

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer + data if self._buffer else data
        if b"\n" not in data:
            if len(buffer) > self._limit:
                raise FrameTooLarge(None, self._limit)
            self._buffer = buffer
            return []
        *lines, rest = buffer.split(b"\n")
        if len(rest) > self._limit:
            raise FrameTooLarge(None, self._limit)
        self._buffer = rest
        messages = []
        for line in lines:
            if len(line) > self._limit:
                raise FrameTooLarge(len(line), self._limit)
            message = line.strip(_WHITESPACE)
            if message:
                messages.append(message)
        return messages

    def partial(self) -> bool:
        return bool(self._buffer)

    def finish(self) -> list[bytes]:
        """A last line needs no newline: the end of the stream ends it (`printf … | nc -N`)."""
        rest, self._buffer = self._buffer.strip(_WHITESPACE), b""
        return [rest] if rest else []

    def frame(self, body: bytes) -> bytes:
        return body + b"\n"


class LspFraming:
    name = "lsp"

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._body_size: int | None = None  # known once headers are parsed

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        messages: list[bytes] = []
        while True:
            if self._body_size is None:
                end = self._buffer.find(_HEADER_END)
                if end < 0:
                    self._check_partial_headers()
                    if len(self._buffer) > _MAX_HEADER_BYTES:
                        raise FramingError(
                            "header block longer than 8192 bytes without a blank line"
                        )
                    return messages
                self._body_size = self._parse_headers(bytes(self._buffer[:end]))
                del self._buffer[: end + len(_HEADER_END)]
            if len(self._buffer) < self._body_size:
                return messages
            messages.append(bytes(self._buffer[: self._body_size]))
            del self._buffer[: self._body_size]
            self._body_size = None

    def partial(self) -> bool:
        return bool(self._buffer) or self._body_size is not None

    def finish(self) -> list[bytes]:
        """Content-Length says where a message ends: cut short, it is not a message."""
        if self.partial():
            raise FramingError("the connection ended in the middle of a message")
        return []

    def _check_partial_headers(self) -> None:
        """Refuse at the first complete line that cannot be a header, not after 8 KiB."""
        complete = self._buffer[: self._buffer.rfind(b"\n") + 1]
        for line in bytes(complete).split(b"\n")[:-1]:
            if not line.endswith(b"\r") or b":" not in line:
                raise FramingError(
                    f"malformed header line {line[:80]!r} (expected 'Name: value' and CRLF)"
                )

    def _parse_headers(self, block: bytes) -> int:
        size: int | None = None
        for line in block.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep or not name.strip():
                raise FramingError(f"malformed header line {line[:80]!r} (expected 'Name: value')")
            key = name.strip().lower()
            if key == b"content-length":
                text = value.strip()
                if not text.isdigit():
                    raise FramingError(f"Content-Length is not a number: {text[:40]!r}")
                digits = text.lstrip(b"0") or b"0"
                if len(digits) > 18:  # beyond any limit, and int() refuses > 4300 digits
                    raise FrameTooLarge(None, self._limit)
                size = int(digits)
            elif key == b"content-type":
                charset = value.lower().partition(b"charset=")[2].strip().strip(b'"')
                if charset and charset not in (b"utf-8", b"utf8"):
                    raise FramingError(
                        f"unsupported charset {charset.decode('latin-1')!r}: use utf-8"
                    )
        if size is None:
            raise FramingError("missing Content-Length header")
        if size > self._limit:
            raise FrameTooLarge(size, self._limit)
        return size

    def frame(self, body: bytes) -> bytes:
        return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def detect(first_bytes: bytes, limit: int) -> Framing | None:
    """Pick the framing from the first non-blank byte; None while only blanks have arrived."""
    stripped = first_bytes.lstrip(_WHITESPACE)
    if not stripped:
        return None
    if stripped[:1] in (b"{", b"["):
        return NdjsonFraming(limit)
    return LspFraming(limit)
