"""XML from a project's files, parsed as untrusted input with the standard library alone.

The same defences as defusedxml, on expat directly: a DTD with an internal subset is refused
at its first byte (that is where entity declarations live: billion laughs, quadratic blowup,
external entities), and handlers for entity declarations and external entity references raise
should one get past that. A plain `<!DOCTYPE coverage SYSTEM "…dtd">` line, which Cobertura
and JaCoCo reports carry, is accepted: expat never loads an external DTD unless asked to
(parameter entity parsing stays off). Files over a size limit are refused before reading.

Errors are `XMLError` (a ValueError) with a message a person can read; nothing else escapes
except OSError from opening or reading the file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Generator
from typing import BinaryIO, NamedTuple, NoReturn
from xml.parsers import expat

from daemon.platform import untrusted

XML_MAX_BYTES = 20 * 1024 * 1024  # coverage reports of large projects reach a few MB
_CHUNK = 64 * 1024


class XMLError(ValueError):
    """The document was refused or is not well-formed."""


class UnsafeXMLError(XMLError):
    """A DTD internal subset, an entity declaration or an external entity."""


class XMLTooLargeError(XMLError):
    """The file is over the size limit."""


class Start(NamedTuple):
    """An element's start tag: how deep it is (the root is 0), its name and attributes."""

    depth: int
    tag: str
    attrs: dict[str, str]


def parse_bytes(data: bytes, *, max_bytes: int = XML_MAX_BYTES) -> ET.Element:
    """The whole document as an ElementTree element (namespaces are left as written)."""
    if len(data) > max_bytes:
        raise XMLTooLargeError(f"XML is {len(data)} bytes, over the {max_bytes}-byte limit")
    builder = ET.TreeBuilder()
    parser = _parser()
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    _feed(parser, [data])
    root: ET.Element = builder.close()
    return root


def parse_file(
    path: str, *, max_bytes: int = XML_MAX_BYTES, within: str | None = None
) -> ET.Element:
    """`parse_bytes` on a file, refused before reading when it is over `max_bytes`. `within`:
    the folder it must lie in (see `daemon.platform.untrusted`)."""
    with _open(path, max_bytes, within) as handle:
        return parse_bytes(_read(handle, max_bytes), max_bytes=max_bytes)


def iter_starts(
    path: str, *, max_depth: int, max_bytes: int = XML_MAX_BYTES, within: str | None = None
) -> Generator[Start, None, None]:
    """Start tags no deeper than `max_depth`, streamed: no tree is built, and a caller that
    has what it needs stops early (a Cobertura total sits on the root element, so reading a
    20 MB report costs one chunk). The whole file is checked only if it is read to the end."""
    pending: list[Start] = []
    depth = 0

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        if depth <= max_depth:
            pending.append(Start(depth, tag, attrs))
        depth += 1

    def end(_tag: str) -> None:
        nonlocal depth
        depth -= 1

    parser = _parser()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    with _open(path, max_bytes, within) as handle:
        total = 0
        while chunk := handle.read(_CHUNK):
            total += len(chunk)
            if total > max_bytes:  # it grew after the size check
                _too_large(max_bytes)
            _feed(parser, [chunk], final=False)
            yield from pending
            pending.clear()
        _feed(parser, [b""])
        yield from pending


def _parser() -> expat.XMLParserType:
    parser = expat.ParserCreate()
    parser.buffer_text = True  # one data call per text run, not one per line
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)  # never load a DTD
    parser.StartDoctypeDeclHandler = _doctype
    parser.EntityDeclHandler = _entity_declaration
    parser.UnparsedEntityDeclHandler = _unparsed_entity
    parser.ExternalEntityRefHandler = _external_entity
    return parser


def _feed(parser: expat.XMLParserType, chunks: list[bytes], *, final: bool = True) -> None:
    try:
        for chunk in chunks:
            parser.Parse(chunk, False)
        if final:
            parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise XMLError(f"not well-formed XML: {exc}") from None


def _doctype(name: str, _system: str | None, _public: str | None, internal: int) -> None:
    if internal:
        raise UnsafeXMLError(f"refused: a DTD with an internal subset (<!DOCTYPE {name} [...]>)")


def _entity_declaration(name: str, *_rest: object) -> NoReturn:
    raise UnsafeXMLError(f"refused: an entity declaration ({name})")


def _unparsed_entity(name: str, *_rest: object) -> NoReturn:
    raise UnsafeXMLError(f"refused: an unparsed entity declaration ({name})")


def _external_entity(_context: str, _base: str | None, system: str | None, *_rest: object) -> int:
    raise UnsafeXMLError(f"refused: an external entity ({system})")


def _open(path: str, max_bytes: int, within: str | None) -> BinaryIO:
    """The file opened through `daemon.platform.untrusted` after its size check: without
    blocking (a FIFO in place of a report is refused, never waited on), a regular file only,
    inside `within` (without it, a link as the last component is refused)."""
    try:
        return untrusted.open_file(path, within=within, max_bytes=max_bytes)
    except untrusted.TooLarge as exc:  # an XMLError like every other refusal of the content
        raise XMLTooLargeError(f"refused: the file is {exc.strerror}") from None


def _read(handle: BinaryIO, max_bytes: int) -> bytes:
    data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew after the size check
        _too_large(max_bytes)
    return data


def _too_large(max_bytes: int) -> NoReturn:
    raise XMLTooLargeError(f"refused: the file is growing, over the {max_bytes}-byte limit")
