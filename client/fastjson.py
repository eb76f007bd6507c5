"""JSON in microseconds of start-up: decoding and compact encoding.

`import json` costs ~2.5 ms here beyond what the console script already imports, a good part
of any `pm` command's whole budget. The C scanner behind it (`_json.make_scanner`) needs only
an object with the decoder's settings, and the C encoder (`_json.make_encoder`) only the
encoder's; the fast path uses those and falls back to `json` where `_json` is missing.
"""

from __future__ import annotations

# `typing` costs ~2 ms of start-up; annotations are strings, so import only for mypy.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any


class _Settings:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}  # noqa: RUF012 - the C scanner expects a plain dict

    @staticmethod
    def parse_constant(name: str) -> float:
        return float(name.replace("Infinity", "inf"))


_WHITESPACE = " \t\r\n"


def _refuse(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_scan: Callable[[str, int], tuple[Any, int]] | None
try:
    from _json import make_scanner as _make_scanner

    _scan = _make_scanner(_Settings())  # type: ignore[arg-type]  # any object with the settings
except ImportError:  # pragma: no cover - other Pythons
    _scan = None

_encode: Callable[[Any, int], Sequence[str]] | None
try:
    from _json import encode_basestring as _quote
    from _json import make_encoder as _make_encoder

    # As json.dumps(separators=(",", ":"), ensure_ascii=False): no indent, no key sorting.
    _encode = _make_encoder(None, _refuse, _quote, None, ":", ",", False, False, True)
except ImportError:  # pragma: no cover - other Pythons
    _encode = None


def loads(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if _scan is None:
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
        if not text[end:].strip(_WHITESPACE):
            return value
    except Exception:  # noqa: S110 - the scanner reports errors through json.decoder
        pass
    import json  # only malformed input pays for the full module and its error message

    return json.loads(text)


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept: what `json.dumps(value, separators=(",", ":"),
    ensure_ascii=False)` gives."""
    if _encode is None:
        import json

        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return "".join(_encode(value, 0))
