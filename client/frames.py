"""The two framings, as the clients write and read them. Standard library only (fast path)."""

from __future__ import annotations

from client.errors import ProtocolError

FRAMINGS = ("ndjson", "lsp")
HEADER_END = b"\r\n\r\n"


def check(framing: str) -> str:
    if framing not in FRAMINGS:
        raise ValueError(f"unknown framing {framing!r}: use one of {', '.join(FRAMINGS)}")
    return framing


def frame(body: bytes, framing: str) -> bytes:
    if framing == "ndjson":
        return body + b"\n"
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def content_length(head: bytes) -> int:
    """The body size announced by an LSP header block (without its blank line)."""
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return int(value.strip())
    raise ProtocolError(f"a reply without a valid Content-Length header: {head[:80]!r}")
