"""The bounded walk behind the test and language figures: test folders, test files, sources.

Breadth-first to depth 3 and about 2,000 entries, like the metadata walk (the budget goes to
the top levels, which say the most), pruning dependencies, virtualenvs, build output and
dot-folders. Only names are looked at: no file is opened and no file is stat'ed.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import Counter, deque
from dataclasses import dataclass, field

from daemon.domain.projects.discovery import MANIFEST_NAMES, MANIFEST_SUFFIXES
from daemon.domain.projects.metadata import LANGUAGES, MINIFIED_SUFFIXES, PRUNED_NAMES

WALK_MAX_DEPTH = 3  # folders this deep below the root are listed, deeper ones are not
WALK_MAX_ENTRIES = 2_000
TEST_DIRS_KEPT = 20  # Detected.test_dirs is for a person to read, not a full inventory

TEST_DIR_NAMES = frozenset({"tests", "test", "spec", "__tests__"})  # src/test is a "test"
_PLACEHOLDERS = frozenset({"__init__.py", ".gitkeep", ".keep", ".gitignore"})
PRUNED = PRUNED_NAMES | {"site-packages", "htmlcov", "bower_components", "obj"}
# Markup and style sheets are not code to test or lint (a site's HTML is not its source).
_NOT_CODE = frozenset({"HTML", "CSS", "SCSS", "Less"})
CODE_EXTENSIONS: dict[str, str] = {
    extension: language for extension, language in LANGUAGES.items() if language not in _NOT_CODE
}
# QUALITY.md's test names, plus each ecosystem's own convention (JUnit, PHPUnit, xUnit,
# XCTest, ExUnit, Flutter, minitest), which live in test folders the walk may not reach.
_TEST_NAME = re.compile(
    r"""(
        test_.*\.(py|rb) | .*_test\.(py|go|rb|exs|dart)
      | .*\.(test|spec)\.[cm]?[jt]sx? | .*_spec\.rb
      | .*Tests?\.(java|kt|php|cs|swift)
    )$""",
    re.VERBOSE,
)


@dataclass(slots=True)
class Tree:
    source_files: int = 0  # code files that are not tests
    test_files: int = 0  # test-named code files, and code files inside a test folder
    test_dirs: list[str] = field(default_factory=list)  # relative, "/"-separated
    go_tests: bool = False  # a *_test.go: `go test` is the runner
    languages: Counter[str] = field(default_factory=Counter)  # source files per language
    truncated: bool = False  # the entry budget ran out
    manifests: int = 0  # build manifests (package.json, go.mod, pom.xml…) at any level walked

    @property
    def has_tests(self) -> bool:
        return bool(self.test_dirs) or self.test_files > 0

    @property
    def has_code(self) -> bool:
        """Code was seen, or may lie past the walk: source or test files, a build manifest
        (a Java project's sources sit deeper than the walk goes), or a walk cut short."""
        return self.source_files + self.test_files + self.manifests > 0 or self.truncated

    def main_language(self) -> str | None:
        """The language with the most source files (tests count when there is nothing else)."""
        return self.languages.most_common(1)[0][0] if self.languages else None


def walk(path: str) -> Tree:
    """Counts over the bounded walk; unreadable folders are skipped, never raised."""
    tree = Tree()
    test_languages: Counter[str] = Counter()
    # (folder, depth, relative path, inside a test folder)
    queue: deque[tuple[str, int, str, bool]] = deque([(path, 0, "", False)])
    budget = WALK_MAX_ENTRIES
    while queue and budget > 0:
        folder, depth, rel, in_tests = queue.popleft()
        try:
            with os.scandir(folder) as listing:
                entries = list(itertools.islice(listing, budget))
        except OSError:
            continue  # unreadable or vanished: count what can be counted
        budget -= len(entries)
        if rel in tree.test_dirs and all(entry.name in _PLACEHOLDERS for entry in entries):
            tree.test_dirs.remove(rel)  # scaffolded and never used: no tests
        if depth and any(entry.name == "pyvenv.cfg" for entry in entries):
            continue  # a virtualenv, whatever its name
        for entry in entries:
            name = entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)  # never follow: loops, shared trees
            except OSError:
                continue
            if is_dir:
                if name in PRUNED or name.startswith("."):
                    continue
                child = f"{rel}/{name}" if rel else name
                is_test_dir = name in TEST_DIR_NAMES
                if is_test_dir and len(tree.test_dirs) < TEST_DIRS_KEPT and not in_tests:
                    tree.test_dirs.append(child)
                if depth < WALK_MAX_DEPTH:
                    queue.append((entry.path, depth + 1, child, in_tests or is_test_dir))
                continue
            _count_file(tree, test_languages, name, in_tests)
    tree.truncated = budget <= 0  # the last listing may have been cut short
    if not tree.languages:
        tree.languages = test_languages  # a folder of tests alone still has a language
    return tree


def _count_file(tree: Tree, test_languages: Counter[str], name: str, in_tests: bool) -> None:
    if name in MANIFEST_NAMES or name.endswith(MANIFEST_SUFFIXES):
        tree.manifests += 1
    dot = name.rfind(".")
    if dot <= 0:
        return
    language = CODE_EXTENSIONS.get(name[dot:].lower())
    if language is None or name.lower().endswith(MINIFIED_SUFFIXES):
        return
    if in_tests and name == "__init__.py":
        return  # a package marker: no test in it, and scaffolds leave one in an empty tests/
    if in_tests or _TEST_NAME.match(name):
        tree.test_files += 1
        test_languages[language] += 1
        tree.go_tests = tree.go_tests or name.endswith("_test.go")
    else:
        tree.source_files += 1
        tree.languages[language] += 1
