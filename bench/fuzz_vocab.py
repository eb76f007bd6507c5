"""The fuzz's vocabulary: values, tokens, method names, keys and LSP header blocks a careful
server must answer (or refuse) without harm; bench.fuzz_frames puts them in frames."""

from __future__ import annotations

from typing import Any


class Raw:
    """A JSON token json.dumps cannot write (NaN, 1e999, a 400-digit integer…)."""

    def __init__(self, token: bytes) -> None:
        self.token = token


WEIRD: list[Any] = [
    None, True, False, 0, -1, 1.5, -0.0, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1,
    10**30, 1e308, -1e308, 5e-324, "", " ", "NaN", "nan", "Infinity", "-Infinity", "1e999", "12",
    "-0", "0x10", "null", "true", "\x00", "x" * 5000, "é" * 300, "\U0001f600", "../../etc/passwd",
    "/", "~", "$HOME", "%s%n", "' OR 1=1 --", "*", "%", "_", "\\", "a\x00b", [], [1, 2], {},
    {"a": 1}, [[[]]], "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00", "2024-02-30T00:00:00Z",
    "not a date", Raw(b"NaN"), Raw(b"Infinity"), Raw(b"-Infinity"), Raw(b"1e999"),
    Raw(b"1" + b"0" * 400), Raw(b"-0"), Raw(b"1.0e+309"),
]  # fmt: skip
BAD_TOKENS = [b"0x10", b"01", b"+1", b".5", b"tru", b"nul", b"'s'", b"undefined", b"1.", b"--1"]
BAD_UTF8 = [b"\xff", b"\xfe", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xf0\x28\x8c\xbc",
            b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\x80",
            b"\xf8\x88\x80\x80\x80"]  # fmt: skip
BAD_ESCAPES = [b"\\ud800", b"\\udfff", b"\\ud800\\u0041", b"\\u00", b"\\x41", b"\\", b"\\u0000"]
ODD_METHODS = ["kv.gte", "KV.GET", "kv.get ", " kv.get", "", "rpc.discover.x", "$/unknown",
               "daemon.shutdown2", "x" * 500, "kv", ".", "kv..get", "été", "__init__",
               "constructor", "rpc.", "kv.get\x00", "kv/get", "$/cancelrequest"]  # fmt: skip
EXTRA_KEYS = ["extra", "nmespace", "Namespace", "__proto__", "constructor", "", "namespace ",
              "workDoneToken", "id", "params", "x" * 300]  # fmt: skip
LSP_BENIGN = [  # header blocks a reader must take (before the body)
    b"content-length: %d\r\n\r\n",
    b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n",
    b"X-Unknown: yes\r\nContent-Length: %d\r\n\r\n",
    b"Content-Length:%d\r\n\r\n",
    b"Content-Length: 000%d\r\n\r\n",
    b"Content-Length: 1\r\nContent-Length: %d\r\n\r\n",
]
LSP_FATAL = [  # header blocks that end the stream: (bytes, the error kind the daemon must send)
    (b"Content-Type: application/json\r\n\r\n{}", "parse_error"),  # no Content-Length
    (b"Content-Length: abc\r\n\r\n", "parse_error"),
    (b"Content-Length: -5\r\n\r\n", "parse_error"),
    (b"Content-Length: +5\r\n\r\n", "parse_error"),
    (b"Content-Length: 5.0\r\n\r\n", "parse_error"),
    (b"Content-Length: 0x10\r\n\r\n", "parse_error"),
    (b"Content-Length: \xef\xbc\x95\r\n\r\n", "parse_error"),  # a fullwidth 5
    (b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n", "too_large"),
    (b"Content-Length: 99999999999999999999999999\r\n\r\n", "too_large"),
    (b"Content-Length 12\r\n\r\n", "parse_error"),  # no colon
    (b"Content-Length: 12\n\n{}", "parse_error"),  # LF without CR
    (b"X-Long: " + b"a" * 9000, "parse_error"),  # a header block with no end
    (b"Content-Length: 2\r\nContent-Type: text/plain; charset=latin-1\r\n\r\n{}", "parse_error"),
    (b"Content-Length: 2\r\n\x00\x00\r\n\r\n{}", "parse_error"),
    (b": 2\r\n\r\n{}", "parse_error"),
]
