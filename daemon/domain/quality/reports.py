"""The total of one coverage report, in each format the usual tools write.

`parse(path, expected_format)` returns `Parsed(source, percent, error)` and never raises. A
report that is there but holds no usable total (NaN, "Unknown", zero lines, truncated, not
the format its name promises) gives `percent=None` with the reason in `error`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import NamedTuple

import msgspec

from daemon.domain.quality import xmlsafe
from daemon.domain.quality.files import open_regular

REPORT_MAX_BYTES = 20 * 1024 * 1024
_MAX_LINE_NUMBER = 10_000_000  # a bigger "line" is corrupt data, and would cost memory here


class Parsed(NamedTuple):
    source: str  # the format's name, as in `Coverage.source`
    percent: float | None
    error: str | None = None


# --- JSON: coverage.py, Istanbul's json-summary, SimpleCov's .last_run.json -----------------
# Typed decoding skips everything else (per-file data is most of a report) without building it.


class _CoveragePyTotals(msgspec.Struct):
    percent_covered: float | None = None
    covered_lines: int | None = None
    num_statements: int | None = None


class _IstanbulMetric(msgspec.Struct):
    total: float | None = None
    covered: float | None = None
    pct: float | str | None = None  # "Unknown" when nothing was measured


class _IstanbulTotal(msgspec.Struct):
    lines: _IstanbulMetric | None = None


class _SimpleCovResult(msgspec.Struct):
    line: float | None = None  # SimpleCov ≥ 0.18
    covered_percent: float | None = None  # older releases


class _JsonReport(msgspec.Struct):
    totals: _CoveragePyTotals | None = None
    total: _IstanbulTotal | None = None
    result: _SimpleCovResult | None = None


_json_decoder = msgspec.json.Decoder(_JsonReport)


def parse_json(location: str, expected: str) -> Parsed:
    data, error = _read(location)
    if data is None:
        return Parsed(expected, None, error)
    try:
        report = _json_decoder.decode(data)
    except msgspec.ValidationError as exc:
        return Parsed(expected, None, f"unexpected JSON shape: {exc}")
    except msgspec.DecodeError:
        return Parsed(expected, None, "not valid JSON (truncated?)")
    if report.totals is not None:
        return _coverage_py(report.totals)
    if report.total is not None:
        return _istanbul(report.total.lines)
    if report.result is not None:
        result = report.result
        value = result.line if result.line is not None else result.covered_percent
        return _percent("simplecov", value, "no line total in result")
    return Parsed(expected, None, "not a coverage report (no totals)")


def _coverage_py(totals: _CoveragePyTotals) -> Parsed:
    if totals.num_statements == 0:
        # coverage.py reports 100% when nothing was measured; that is no figure at all
        return Parsed("coverage.py-json", None, "no statements measured")
    if totals.percent_covered is not None:
        # percent_covered includes branches when branch coverage is on: coverage.py's own total
        return _percent("coverage.py-json", totals.percent_covered, "percent_covered invalid")
    return _ratio("coverage.py-json", totals.covered_lines, totals.num_statements)


def _istanbul(lines: _IstanbulMetric | None) -> Parsed:
    if lines is None:
        return Parsed("istanbul-summary", None, "no total.lines")
    if not isinstance(lines.pct, str) and lines.pct is not None:
        return _percent("istanbul-summary", lines.pct, "total.lines.pct invalid")
    parsed = _ratio("istanbul-summary", lines.covered, lines.total)
    return (
        parsed if parsed.percent is not None else parsed._replace(error="total.lines.pct unknown")
    )


# --- XML: Cobertura, JaCoCo, Clover (told apart by their root element) ---------------------


def parse_xml(location: str, expected: str) -> Parsed:
    try:
        if os.stat(location).st_size == 0:
            return Parsed(expected, None, "empty file")
        # closing() ends the stream (and closes the file) wherever the reading stops
        with closing(
            xmlsafe.iter_starts(location, max_depth=2, max_bytes=REPORT_MAX_BYTES)
        ) as starts:
            root = next(starts, None)
            if root is None:
                return Parsed(expected, None, "empty XML")
            if root.tag == "coverage" and ({"lines-valid", "line-rate"} & root.attrs.keys()):
                return _cobertura(root.attrs)  # the total is on the root: stop reading here
            if root.tag == "coverage":
                return _clover(starts)
            if root.tag == "report":
                return _jacoco(starts)
            return Parsed(expected, None, f"not a coverage report (<{root.tag}>)")
    except xmlsafe.XMLError as exc:
        return Parsed(expected, None, str(exc))
    except (OSError, ValueError) as exc:
        return Parsed(expected, None, _os_error(exc))


def _cobertura(attrs: dict[str, str]) -> Parsed:
    """lines-covered/lines-valid; line-rate only without counts (it may be NaN)."""
    valid, covered = _number(attrs.get("lines-valid")), _number(attrs.get("lines-covered"))
    if valid is not None and covered is not None:
        return _ratio("cobertura", covered, valid)
    rate = _number(attrs.get("line-rate"))
    if rate is None or rate > 1:
        return Parsed("cobertura", None, "no usable line counts or line-rate")
    return Parsed("cobertura", rate * 100)


def _jacoco(starts: Iterator[xmlsafe.Start]) -> Parsed:
    """The report-level LINE counter: a child of <report>, written after every package."""
    line: dict[str, str] | None = None
    for start in starts:
        if start.depth == 1 and start.tag == "counter" and start.attrs.get("type") == "LINE":
            line = start.attrs
    if line is None:
        return Parsed("jacoco", None, "no report-level LINE counter")
    missed, covered = _number(line.get("missed")), _number(line.get("covered"))
    if missed is None or covered is None:
        return Parsed("jacoco", None, "LINE counter without numbers")
    return _ratio("jacoco", covered, covered + missed)


def _clover(starts: Iterator[xmlsafe.Start]) -> Parsed:
    """<project><metrics statements coveredstatements elements coveredelements/>; OpenClover
    writes it first, PHPUnit last. A sibling <testproject> describes the tests: skipped."""
    parent = ""
    metrics: dict[str, str] | None = None
    for start in starts:
        if start.depth == 1:
            parent = start.tag
        elif start.depth == 2 and start.tag == "metrics" and parent == "project":
            metrics = start.attrs
            break
    if metrics is None:
        return Parsed("clover", None, "no project-level metrics")
    statements = _number(metrics.get("statements"))
    if statements:
        return _ratio("clover", _number(metrics.get("coveredstatements")), statements)
    return _ratio(
        "clover", _number(metrics.get("coveredelements")), _number(metrics.get("elements"))
    )


# --- LCOV --------------------------------------------------------------------------------


def parse_lcov(location: str, _expected: str = "lcov") -> Parsed:
    """ΣLH/ΣLF over source files. A file can appear in several SF blocks (reports of test
    shards or processes concatenated); summing those would count its lines twice, so blocks
    of one file are merged: the union of their DA lines (a line is hit if any block hit it),
    or, for blocks with only LF/LH summaries, the largest of each."""
    data, error = _read(location)
    if data is None:
        return Parsed("lcov", None, error)
    files: dict[str, _LcovFile] = {}
    current: _LcovFile | None = None
    for raw in data.decode("utf-8", "replace").splitlines():
        key, _, value = raw.strip().partition(":")
        if key == "SF":
            current = files.setdefault(value, _LcovFile())
        elif current is None:
            continue
        elif key == "DA":
            current.line(value)
        elif key in ("LF", "LH"):
            current.summary(key, value)
        elif key == "end_of_record":
            current = None
    if not files:
        return Parsed("lcov", None, "no SF records")
    found = hit = 0
    for record in files.values():
        record_found, record_hit = record.totals()
        found += record_found
        hit += record_hit
    return _ratio("lcov", hit, found)


class _LcovFile:
    """One source file's lines as two bitmaps (found, hit): compact and merge-friendly."""

    __slots__ = ("found", "hit", "lf", "lh")

    def __init__(self) -> None:
        self.found = bytearray()
        self.hit = bytearray()
        self.lf = self.lh = 0

    def line(self, value: str) -> None:
        number, _, rest = value.partition(",")
        count = rest.partition(",")[0]  # an optional checksum follows
        try:
            line, hits = int(number), float(count)
        except ValueError:
            return
        if 0 <= line <= _MAX_LINE_NUMBER:
            _set_bit(self.found, line)
            if hits > 0:
                _set_bit(self.hit, line)

    def summary(self, key: str, value: str) -> None:
        try:
            number = int(value)
        except ValueError:
            return
        if key == "LF":
            self.lf = max(self.lf, number)
        else:
            self.lh = max(self.lh, number)

    def totals(self) -> tuple[int, int]:
        if self.found:
            return _bits(self.found), _bits(self.hit)
        return max(self.lf, 0), min(max(self.lh, 0), max(self.lf, 0))


def _set_bit(bits: bytearray, index: int) -> None:
    byte = index >> 3
    if byte >= len(bits):
        bits.extend(bytes(byte + 1 - len(bits)))
    bits[byte] |= 1 << (index & 7)


def _bits(bits: bytearray) -> int:
    return int.from_bytes(bits, "little").bit_count()


# --- Go cover profiles ---------------------------------------------------------------------


def parse_go(location: str, _expected: str = "go-profile") -> Parsed:
    """`mode: set|count|atomic`, then `file.go:l.c,l.c statements count` per block. Profiles
    concatenated from several packages or runs repeat blocks (and the mode line): a block is
    counted once, covered if any of its lines has a count above zero."""
    data, error = _read(location)
    if data is None:
        return Parsed("go-profile", None, error)
    lines = data.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0].startswith("mode:"):
        return Parsed("go-profile", None, "no mode: line (not a Go cover profile)")
    blocks: dict[str, tuple[int, bool]] = {}
    for raw in lines[1:]:
        rest, _, count = raw.strip().rpartition(" ")
        block, _, statements = rest.rpartition(" ")
        try:
            number, hits = int(statements), int(count)
        except ValueError:
            continue  # a repeated mode: line, a blank or a cut-off last line
        if ":" not in block or number < 0:
            continue
        seen = blocks.get(block)
        blocks[block] = (number, hits > 0 or (seen is not None and seen[1]))
    total = sum(number for number, _ in blocks.values())
    covered = sum(number for number, hit in blocks.values() if hit)
    return _ratio("go-profile", covered, total)


PARSERS: dict[str, Callable[[str, str], Parsed]] = {
    "coverage.py-json": parse_json,
    "istanbul-summary": parse_json,
    "simplecov": parse_json,
    "cobertura": parse_xml,
    "jacoco": parse_xml,
    "clover": parse_xml,
    "lcov": parse_lcov,
    "go-profile": parse_go,
}


def parse(location: str, expected: str) -> Parsed:
    """The report at `location`, which by its name should be in format `expected`; the
    content decides (a coverage.xml may be Clover), `expected` only names the failures."""
    try:
        return PARSERS[expected](location, expected)
    except Exception as exc:  # a last guard: a parser bug must not stop an assessment
        return Parsed(expected, None, f"unreadable report: {exc!r}"[:160])


# --- shared --------------------------------------------------------------------------------


def _read(location: str) -> tuple[bytes | None, str | None]:
    try:
        with open_regular(location) as handle:
            data = handle.read(REPORT_MAX_BYTES + 1)
    except (OSError, ValueError) as exc:
        return None, _os_error(exc)
    if len(data) > REPORT_MAX_BYTES:
        return None, f"refused: over the {REPORT_MAX_BYTES}-byte limit"
    if not data.strip():
        return None, "empty file"
    return data, None


def _number(text: str | float | None) -> float | None:
    """A finite, non-negative number, or None (NaN, inf, "", garbage)."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _ratio(source: str, covered: float | None, total: float | None) -> Parsed:
    if covered is None or total is None:
        return Parsed(source, None, "no line counts")
    if total <= 0:
        return Parsed(source, None, "no lines measured")
    return Parsed(source, min(max(covered / total * 100, 0.0), 100.0))


def _percent(source: str, value: float | None, error: str) -> Parsed:
    number = _number(value)
    if number is None or number > 100:
        return Parsed(source, None, error)
    return Parsed(source, number)


def _os_error(exc: OSError | ValueError) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
