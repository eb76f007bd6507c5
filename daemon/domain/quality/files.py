"""Bounded, cached, never-raising reads of one project's files, shared by the detectors.

One `ProjectFiles` per assessment: the root is listed once, each small file is read at most
once (package.json and pyproject.toml feed several detectors), and every problem is recorded
as a short line instead of raised, so an odd file costs a point, never the assessment.
"""

from __future__ import annotations

import itertools
import os
import re
import stat
import sys
from typing import Any, BinaryIO

import msgspec

from daemon.platform import untrusted
from daemon.store import jsontext

TEXT_MAX_BYTES = 64 * 1024  # configs, CI files, READMEs: what matters is near the top
MANIFEST_MAX_BYTES = 1024 * 1024  # package.json and pyproject.toml, parsed whole
JSON_MAX_DEPTH = 64  # levels a JSON manifest may nest
LIST_MAX_ENTRIES = 500  # a folder listed by name (docs/, .github/workflows/…), not walked

# [table] or [[array.of.tables]]; a key path only, so an array value on its own line is not one
_TOML_HEADER = re.compile(r"^[ \t]*\[\[?([\w\-. \"']+)\]\]?[ \t]*(?:#.*)?$", re.MULTILINE)
_INI_SECTION = re.compile(r"^\s*\[([^\]\n]+)\]", re.MULTILINE)


class ProjectFiles:
    """The project's root, listed once; files read on demand, relative to the root."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []
        self.dirs: set[str] = set()
        self.files: set[str] = set()
        self.listed = self._list_root()
        self._texts: dict[str, str | None] = {}
        self._parsed: dict[str, Any] = {}
        self._tables: dict[str, dict[str, str]] = {}
        self._lists: dict[str, list[str]] = {}

    def is_file(self, rel: str) -> bool:
        if "/" not in rel:
            return rel in self.files
        try:
            return os.path.isfile(self.join(rel))
        except ValueError:  # a NUL in a name
            return False

    def is_dir(self, rel: str) -> bool:
        if "/" not in rel:
            return rel in self.dirs
        return os.path.isdir(self.join(rel))

    def first_file(self, names: tuple[str, ...] | list[str]) -> str | None:
        return next((name for name in names if self.is_file(name)), None)

    def root_files_starting(self, prefixes: tuple[str, ...]) -> list[str]:
        """Root files whose lowercased name starts with one of `prefixes`."""
        return sorted(name for name in self.files if name.lower().startswith(prefixes))

    def join(self, rel: str) -> str:
        return os.path.join(self.path, *rel.split("/"))

    def listdir(self, rel: str) -> list[str]:
        """Names in a folder below the root, sorted, at most LIST_MAX_ENTRIES; [] on error."""
        if rel not in self._lists:
            try:
                with os.scandir(self.join(rel)) as listing:
                    names = [entry.name for entry in itertools.islice(listing, LIST_MAX_ENTRIES)]
            except (OSError, ValueError):
                names = []
            self._lists[rel] = sorted(names)
        return self._lists[rel]

    def text(self, rel: str, limit: int = TEXT_MAX_BYTES) -> str | None:
        """The file's first `limit` bytes as text (bad UTF-8 replaced); None if unreadable."""
        key = f"{rel}\0{limit}"
        if key not in self._texts:
            self._texts[key] = self._read(rel, limit)
        return self._texts[key]

    def json(self, rel: str) -> Any:
        """A JSON file parsed whole (None when absent, too big, not JSON, or nested deeper than
        JSON_MAX_DEPTH: a real manifest is a handful of levels deep, and decoding a deeper one
        recursively raised RecursionError, failing the whole assessment)."""
        if rel not in self._parsed:
            text = self.text(rel, MANIFEST_MAX_BYTES) if self.is_file(rel) else None
            value: Any = None
            if text is not None and jsontext.depth(text) > JSON_MAX_DEPTH:
                self.problem(f"{rel}: nested deeper than {JSON_MAX_DEPTH} levels")
            elif text is not None:
                try:
                    value = msgspec.json.decode(text)
                except msgspec.DecodeError:
                    self.problem(f"{rel}: not valid JSON")
            self._parsed[rel] = value
        return self._parsed[rel]

    def toml_tables(self, rel: str) -> dict[str, str]:
        """A TOML file's tables: name ("tool.ruff", "" for the top) → the text of its body.

        Not a TOML parser: the detectors only ask which tables exist ([tool.ruff], [tool.mypy],
        [lints.clippy]) and whether a key has a value, and tomllib costs about a millisecond
        per pyproject.toml, half a scan's budget for a project. Multi-line strings holding a
        line that looks like a header can fool it; that costs a point at worst.
        """
        if rel not in self._tables:
            text = self.text(rel, MANIFEST_MAX_BYTES) if self.is_file(rel) else None
            tables: dict[str, str] = {}
            if text:
                headers = list(_TOML_HEADER.finditer(text))
                tables[""] = text[: headers[0].start()] if headers else text
                for index, header in enumerate(headers):
                    end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
                    name = ".".join(part.strip().strip("\"'") for part in header[1].split("."))
                    tables[name] = tables.get(name, "") + text[header.end() : end]
            self._tables[rel] = tables
        return self._tables[rel]

    def ini_sections(self, rel: str) -> set[str]:
        """Section names of an INI file (setup.cfg, tox.ini): enough to see which tools it
        configures, without configparser's interpolation or its errors on odd files."""
        text = self.text(rel, MANIFEST_MAX_BYTES)
        return {match.strip() for match in _INI_SECTION.findall(text)} if text else set()

    def problem(self, text: str) -> None:
        self.problems.append(printable(text)[:160])

    def _read(self, rel: str, limit: int) -> str | None:
        try:
            data = untrusted.read(self.join(rel), within=self.path, max_bytes=limit, whole=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # ValueError: a NUL in a name
            folder = isinstance(exc, untrusted.NotRegular) and stat.S_ISDIR(exc.mode)
            if not folder:  # a folder where a file may be is simply no such file
                self.problem(f"{rel}: {getattr(exc, 'strerror', None) or type(exc).__name__}")
            return None
        return data.decode("utf-8", errors="replace").lstrip("\ufeff")

    def _list_root(self) -> bool:
        try:
            with os.scandir(self.path) as listing:
                entries = list(listing)
        except OSError as exc:
            self.problem(f"project: {exc.strerror or type(exc).__name__}")
            return False
        for entry in entries:
            try:
                # follows symlinks: a README.md or a docs/ linked from elsewhere is common
                if entry.is_dir():
                    self.dirs.add(entry.name)
                elif entry.is_file():  # not sockets or FIFOs, which would block a read
                    self.files.add(entry.name)
            except OSError:
                continue
        return True


def open_regular(location: str, *, within: str | None = None) -> BinaryIO:
    """A project's file opened for reading through `daemon.platform.untrusted`: non-blocking (a
    FIFO named like a config file cannot hang the scan), a regular file only, inside `within`.
    Without `within`, `location` must already be resolved inside the project (a link as its
    last component is refused). The caller bounds what it reads."""
    return untrusted.open_file(location, within=within, max_bytes=sys.maxsize)


def printable(text: str) -> str:
    """Undecodable bytes of a file name (surrogate escapes) as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def toml_has_value(body: str, key: str) -> bool:
    """`key = <a non-empty value>` in a table body from `toml_tables`."""
    return (
        re.search(rf"^[ \t]*{re.escape(key)}[ \t]*=[ \t]*[\"']*[ \t]*[^\s\"']", body, re.M)
        is not None
    )


def tool_tables(tables: dict[str, str]) -> set[str]:
    """The X of every [tool.X…] table of a pyproject.toml's `toml_tables`."""
    return {name.split(".")[1] for name in tables if name.startswith("tool.")}


def nested(value: Any, *keys: str) -> Any:
    """value[k1][k2]… through dicts only; None as soon as a level is missing."""
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value
