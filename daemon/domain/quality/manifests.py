"""JSON manifests (package.json, composer.json) for the detectors, refused past a fixed depth.

msgspec, like the json module, decodes nested values recursively: a package.json nested a few
thousand levels deep raised RecursionError, which is no DecodeError, and failed the whole
assessment. A real manifest is a handful of levels deep, so one nested deeper than
JSON_MAX_DEPTH is refused before it is decoded: a problem noted, its points lost, the
assessment goes on.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from daemon.domain.quality.files import MANIFEST_MAX_BYTES, ProjectFiles

JSON_MAX_DEPTH = 64

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')  # brackets inside strings do not nest
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (0 for a scalar). Linear, in C
    loops: the strings and everything but brackets go first, then a running sum."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0)


def json_manifest(files: ProjectFiles, rel: str) -> Any:
    """`files.json(rel)`, or None with a problem noted when it nests past JSON_MAX_DEPTH."""
    text = files.text(rel, MANIFEST_MAX_BYTES) if files.is_file(rel) else None
    if text is not None and json_depth(text) > JSON_MAX_DEPTH:
        _problem(files, f"{rel}: nested deeper than {JSON_MAX_DEPTH} levels")
        return None
    try:
        return files.json(rel)
    except RecursionError:  # the depth check is the rule; this only guards a deep call stack
        _problem(files, f"{rel}: nested too deeply")
        return None


def _problem(files: ProjectFiles, text: str) -> None:
    if text not in files.problems:  # several detectors ask for the same manifest
        files.problem(text)
