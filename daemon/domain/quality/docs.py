"""Documentation: the README and the files around it, as the documentation score's items.

README 25; a README of at least 1 KB with at least 2 headings 15; an install/usage heading 10;
LICENSE 15; docs/ with markup or a docs generator config 15; CONTRIBUTING 5; CHANGELOG 5; a
manifest description 5; SECURITY or CODE_OF_CONDUCT 5. A scaffold README (create-react-app's,
`cargo new`'s…) still counts as a README, but earns neither bonus: it says nothing of the
project. Headings inside fenced code (shell comments) are not headings.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import deque
from dataclasses import dataclass, field

from daemon.domain.projects.readme import README_MAX_BYTES, first_paragraph, readme_files
from daemon.domain.quality.files import LIST_MAX_ENTRIES, ProjectFiles, nested, toml_has_value
from daemon.domain.quality.items import Item, item

README_LONG_BYTES = 1024
README_LONG_HEADINGS = 2
README_TEXT_BYTES = 300  # has_documentation: this much text once badges, tags and URLs go

DOC_FOLDERS = ("docs", "doc", "documentation")
_DOCS_LISTINGS = 30  # folders listed looking for markup under a docs folder
_MARKUP = (".md", ".mdx", ".rst", ".adoc", ".asciidoc", ".txt", ".html", ".org", ".tex")
# Docs generators' configs: any of them means a docs site, wherever the pages are.
DOC_GENERATORS: tuple[str, ...] = (
    "mkdocs.yml",
    "mkdocs.yaml",
    "docs/conf.py",  # Sphinx
    "doc/conf.py",
    "docs/source/conf.py",
    "docusaurus.config.js",
    "docusaurus.config.ts",
    "website/docusaurus.config.js",
    "book.toml",  # mdBook
    ".readthedocs.yml",
    ".readthedocs.yaml",
    "typedoc.json",
    "Doxyfile",
    "antora.yml",
    "docfx.json",
    "docs/.vitepress/config.ts",
    "docs/.vitepress/config.js",
    "docs/_config.yml",  # Jekyll on GitHub Pages
)
_LICENSE = ("license", "licence", "copying", "unlicense")
_CHANGELOG = ("changelog", "changes", "history", "news", "releases")
_FENCE = re.compile(r"\s{0,3}(`{3,}|~{3,})")
_FENCE_CHARS = frozenset("`~")
_ADORNMENT_CHARS = frozenset("=-~^\"'`#*+:._")
_ATX = re.compile(r" {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$")
_UNDERLINE = re.compile(r"([=\-~^\"'`#*+:._])\1{2,}\s*")  # setext (md) and rst adornments
# Bounded: unbounded [^>]* and .*? rescanned the rest of a line from every "<h1>" in it
# (a 64 KB README line of them took 7 s).
_HTML_HEADING = re.compile(r"<h[1-6][^>]{0,200}>(.{0,300}?)</h[1-6]>", re.IGNORECASE)
_INSTALL = re.compile(
    r"\b(install(ation|ing)?|usage|getting[ -]started|get[ -]started|quick[ -]?start|"
    r"set[ -]?up|how to (use|run|install|build)|running|building|examples?|tutorial)\b",
    re.IGNORECASE,
)
# Badges, tags, URLs and link targets are not text. Separate patterns, each starting with a
# literal, run ~20x faster than one alternation.
_NOISE = tuple(
    re.compile(pattern)
    for pattern in (r"!\[[^\]]*\]\([^)]*\)", r"<[^>\n]+>", r"https?://\S+", r"\]\([^)]*\)")
)
_TEXT_PREFIX = 8 * 1024  # enough to tell whether there are README_TEXT_BYTES of text
_MANIFEST_DESCRIPTION = re.compile(r"^description\s*[:=]\s*\S", re.MULTILINE)


@dataclass(slots=True)
class Docs:
    items: list[Item] = field(default_factory=list)
    found: list[str] = field(default_factory=list)  # for Detected.docs
    has_documentation: bool = False


@dataclass(slots=True)
class _Readme:
    path: str
    size: int  # bytes read, up to README_MAX_BYTES
    text_bytes: int
    headings: list[str]
    describes: bool  # a prose first paragraph that is not a generator's template


def detect_docs(files: ProjectFiles, *, description: str | None) -> Docs:
    docs = Docs()
    readme = _readme(files)
    site = _docs_site(files)
    license_file = next(iter(files.root_files_starting(_LICENSE)), None)
    contributing = _anywhere(files, ("contributing",))
    changelog = next(iter(files.root_files_starting(_CHANGELOG)), None) or (
        "changelog.d/" if "changelog.d" in files.dirs else None  # towncrier fragments
    )
    manifest = _manifest_description(files) if not description else "description"
    policy = _anywhere(files, ("security", "code_of_conduct", "code-of-conduct", "conduct"))
    # the two bonuses need a README that describes the project, not a generator's template
    real = readme if readme is not None and readme.describes else None
    long = bool(
        real and real.size >= README_LONG_BYTES and len(real.headings) >= README_LONG_HEADINGS
    )
    install = bool(real and any(_INSTALL.search(heading) for heading in real.headings))
    docs.items = [
        item("docs", 25, readme is not None, "add a README"),
        item("docs", 15, long, "a fuller README: at least 1 KB, in sections with headings"),
        item("docs", 10, install, "an Install or Usage section in the README"),
        item("docs", 15, license_file is not None, "add a LICENSE file"),
        item("docs", 15, site is not None, "a docs/ folder or a docs site (mkdocs.yml, Sphinx…)"),
        item("docs", 5, contributing is not None, "a CONTRIBUTING guide"),
        item("docs", 5, changelog is not None, "a CHANGELOG"),
        item("docs", 5, manifest is not None, _description_hint(files)),
        item("docs", 5, policy is not None, "a SECURITY policy or a CODE_OF_CONDUCT"),
    ]
    found = [readme.path if readme else None, license_file, site, contributing, changelog]
    docs.found = [name for name in [*found, manifest, policy] if name]
    docs.has_documentation = site is not None or (
        real is not None and real.text_bytes >= README_TEXT_BYTES
    )
    return docs


def headings(text: str) -> list[str]:
    """Heading texts of a Markdown, reStructuredText or HTML-ish README, outside code fences."""
    found: list[str] = []
    fence: str | None = None
    previous = ""
    for line in text.splitlines():
        stripped = line.strip()
        first = stripped[:1]
        if fence is not None:  # only the closing fence matters inside code
            fence = None if stripped.startswith(fence) else fence
            previous = ""
            continue
        # dispatch on the first character: most lines are prose, and skip the regexes
        if first in _FENCE_CHARS and (opening := _FENCE.match(line)):
            fence = opening.group(1)[:3]
            previous = ""
            continue
        if first == "#" and (atx := _ATX.match(line)):
            found.append(atx.group(1))
        elif first in _ADORNMENT_CHARS and previous and _UNDERLINE.fullmatch(stripped):
            if not _UNDERLINE.fullmatch(previous):  # an rst overline, not a title
                found.append(previous)
        elif first == "<" and (html := _HTML_HEADING.search(line)):
            found.append(html.group(1))
        previous = stripped
    return found


def _readme(files: ProjectFiles) -> _Readme | None:
    """The first README with any text: the root's, then .github's."""
    for location in readme_files(files.path, files.files):
        rel = os.path.relpath(location, files.path).replace(os.sep, "/")
        text = files.text(rel, README_MAX_BYTES)
        if not text or not text.strip():
            continue
        rst = rel.lower().endswith(".rst")
        plain = text[:_TEXT_PREFIX]
        for noise in _NOISE:
            plain = noise.sub(" ", plain)
        # text = what is not whitespace (str.count is much cheaper than a regex over 8 KB)
        spaces = sum(plain.count(space) for space in " \t\r\n")
        return _Readme(
            path=rel,
            size=len(text.encode("utf-8", "replace")),
            text_bytes=len(plain.encode("utf-8", "replace")) - spaces,
            headings=headings(text),
            describes=first_paragraph(text, rst=rst) is not None,
        )
    return None


def _docs_site(files: ProjectFiles) -> str | None:
    """A docs generator's config, or a docs folder holding markup within three levels."""
    if generator := files.first_file(DOC_GENERATORS):
        return generator
    for folder in DOC_FOLDERS:
        if folder in files.dirs and _holds_markup(files.join(folder)):
            return f"{folder}/"
    return None


def _holds_markup(folder: str) -> bool:
    """Breadth-first, at most _DOCS_LISTINGS folders: docs/content/guides/*.md is common."""
    queue: deque[tuple[str, int]] = deque([(folder, 0)])
    for _ in range(_DOCS_LISTINGS):
        if not queue:
            return False
        path, depth = queue.popleft()
        try:
            with os.scandir(path) as listing:
                entries = list(itertools.islice(listing, LIST_MAX_ENTRIES))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth < 2 and not entry.name.startswith("."):
                        queue.append((entry.path, depth + 1))
                elif entry.name.lower().endswith(_MARKUP):
                    return True
            except OSError:
                continue
    return False


def _anywhere(files: ProjectFiles, prefixes: tuple[str, ...]) -> str | None:
    """A file whose name starts with a prefix: at the root, in .github/ or in docs/."""
    if found := files.root_files_starting(prefixes):
        return found[0]
    for folder in (".github", "docs"):
        if folder in files.dirs:
            for name in files.listdir(folder):
                if name.lower().startswith(prefixes) and files.is_file(f"{folder}/{name}"):
                    return f"{folder}/{name}"
    return None


def _manifest_description(files: ProjectFiles) -> str | None:
    """The manifest that describes the project in one line, if any does."""
    for name in ("package.json", "composer.json"):
        text = nested(files.json(name), "description")
        if isinstance(text, str) and text.strip():
            return f"description ({name})"
    tables = (("pyproject.toml", ("project", "tool.poetry")), ("Cargo.toml", ("package",)))
    for name, where in tables:
        if name in files.files:
            bodies = files.toml_tables(name)
            if any(toml_has_value(bodies.get(table, ""), "description") for table in where):
                return f"description ({name})"
    for name in ("setup.cfg", "pubspec.yaml"):
        if name in files.files and _MANIFEST_DESCRIPTION.search(files.text(name) or ""):
            return f"description ({name})"
    return None


def _description_hint(files: ProjectFiles) -> str:
    manifests = ("package.json", "pyproject.toml", "Cargo.toml", "composer.json")
    manifest = next((name for name in manifests if name in files.files), None)
    return f"a description in {manifest}" if manifest else "a one-line description in a manifest"
