"""A README's first prose paragraph, as a project description.

Line-based and forgiving: Markdown, reStructuredText and plain text go through the same rules,
which skip what is not prose (headings, badges, HTML, code, lists, tables, rst adornments and
directives) and strip inline markup to plain text. Scaffold templates count as no description.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator

README_MAX_BYTES = 64 * 1024  # the first paragraph sits near the top; never read a whole manual
# Enough to truncate to 200; also keeps every regex here on short strings, whatever the file.
_PARAGRAPH_MAX_CHARS = 2_000
_SUFFIX_RANK = {".md": 0, ".markdown": 1, ".rst": 2, ".txt": 3, "": 4}

# Kinds of line, as far as finding prose goes.
_PROSE, _BREAK, _TITLE, _FENCE, _COMMENT, _DIRECTIVE, _ALERT = range(7)

_FENCE_OPEN = re.compile(r"(`{3,}|~{3,})")
# rst over/underlines, Markdown setext underlines and thematic breaks: one repeated punctuation
_ADORNMENT = re.compile(r"([=\-~^\"'`#*+:._<>])\1+")
_TABLE_RULE = re.compile(r"\+[-=+]+\+?")
_LIST_ITEM = re.compile(r"([-*+•]|\d+[.)])(\s|$)")
_LINK_DEF = re.compile(r"\[[^\[\]]+\]:\s")
_BRACKETED = re.compile(r"\[+[^\[\]]*\]+")  # [TOC], [[_TOC_]]
_RST_FIELD = re.compile(r":[\w -]+:(\s|$)")
_ALERT_MARK = re.compile(r">\s*\[![a-zA-Z]+\]")  # GitHub's "> [!NOTE]": a warning, not a summary

_IMAGE = re.compile(r"!\[[^\[\]]*\](\([^()]*\)|\[[^\[\]]*\])")
_LINK = re.compile(r"\[([^\[\]]*)\](\([^()]*\)|\[[^\[\]]*\])")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_URL = re.compile(r"https?://\S+")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^<>]*>|<!--.*?-->")
_RST_LINK = re.compile(r"`([^`<]+?)\s*<[^<>`]*>`__?")
_RST_ROLE = re.compile(r":[\w-]+:`([^`]*)`")
_RST_SUBSTITUTION = re.compile(r"\|[^|\s][^|]*\|_{0,2}")
_RST_REF_TAIL = re.compile(r"(?<=\w)__?(?=[\s.,;:!?)]|$)")
_CODE = re.compile(r"`+([^`]+)`+")
_STRONG = re.compile(r"(\*\*|__)(.+?)\1")
_EMPHASIS = re.compile(r"(?<![\w*])([*_])(\S(?:.*?\S)?)\1(?![\w*])")
_STRIKE = re.compile(r"~~(.+?)~~")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>])")
_SHORTCODE = re.compile(r":[a-z_+-][a-z0-9_+-]*:")  # :rocket: emoji names
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]{2,}")

# First paragraphs that project generators write: they describe the tool, not the project.
_SCAFFOLDS = tuple(
    re.compile(pattern)
    for pattern in (
        r"^this project was (bootstrapped|generated|created) (with|using|by)\b",  # CRA, Angular
        r"^this is an? .{1,60}? (bootstrapped|created|generated) (with|using|by)\b",  # Next, Expo
        r"^this template (should help get you started|provides a minimal setup)",  # Vite, Vue
        r"^this readme would normally document whatever steps",  # rails new
        r"^welcome to your new\b",  # bundle gem, TanStack, …
        r"^todo: delete this and the text below",  # bundle gem
        r"^everything you need to build a svelte project",  # sv create
        r"^a new flutter (project|application|app|package|plugin|module)\b",  # flutter create
        r"^look at the \w+( \d+)? documentation to learn more",  # nuxi init
        r"^to start your phoenix server",  # mix phx.new
        r"^to make it easy for you to get started with gitlab",  # GitLab's new-project README
        r"^edit a file, create a new file, and clone from bitbucket",  # Bitbucket's
        r"^kick off your project with this",  # Gatsby starters
        r"^see configuration reference\b",  # Vue CLI
        r"seasoned astronaut\? delete this file",  # create astro
        r"^\W*see the remix docs\b",  # create-remix
    )
)


def readme_rank(name: str) -> int | None:
    """How much `name` is preferred as the README (lower is better); None: not a README."""
    lower = name.lower()
    if not lower.startswith("readme"):
        return None
    return _SUFFIX_RANK.get(lower[len("readme") :])


def choose_readme(names: Iterable[str]) -> str | None:
    """The README among file names, matched case-insensitively (README.md before readme.txt)."""
    ranked = [(rank, name) for name in names if (rank := readme_rank(name)) is not None]
    return min(ranked)[1] if ranked else None


def readme_files(path: str, root_names: Iterable[str]) -> list[str]:
    """Paths of the READMEs to try, in order: the root's, then .github's (one listing)."""
    found = [os.path.join(path, name) for name in [choose_readme(root_names)] if name]
    github = os.path.join(path, ".github")
    try:
        names = os.listdir(github)
    except OSError:  # usually: there is no .github
        return found
    return found + [os.path.join(github, name) for name in [choose_readme(names)] if name]


def first_paragraph(text: str, *, rst: bool = False) -> str | None:
    """The first prose paragraph as plain text, whitespace collapsed; None when there is none
    or it is a scaffold template's (the whole README then says nothing about the project)."""
    for paragraph in _paragraphs(text.lstrip("\ufeff").splitlines(), rst=rst):
        plain = _plain(paragraph, rst=rst)
        if _WORD.search(plain) is None:
            continue
        lower = plain.lower()
        return None if any(p.search(lower) for p in _SCAFFOLDS) else plain
    return None


def _paragraphs(lines: list[str], *, rst: bool) -> Iterator[str]:
    """Runs of prose lines, joined; every other kind of line ends a run."""
    current: list[str] = []
    fence: str | None = None
    in_comment = in_directive = in_alert = False
    for whole in lines[_front_matter_end(lines) if not rst else 0 :]:
        raw = whole[:_PARAGRAPH_MAX_CHARS]
        line = raw.strip()
        if fence is not None:
            fence = None if line.startswith(fence) else fence
            continue
        if in_comment:
            in_comment = "-->" not in line
            continue
        if in_directive and (not line or raw[:1].isspace()):
            continue  # a directive's options and body are indented
        in_directive = False
        in_alert = in_alert and line.startswith(">")
        kind = _kind(raw, line, rst=rst, continuing=bool(current))
        if kind == _PROSE and not in_alert and sum(map(len, current)) < _PARAGRAPH_MAX_CHARS:
            current.append(line.lstrip("> ") if line.startswith(">") else line)
            continue
        if kind == _PROSE:
            continue
        if kind == _TITLE:
            current.clear()  # the lines above an underline were a heading
        elif kind == _FENCE:
            fence = line[:3]
        in_comment = kind == _COMMENT and "-->" not in line[4:]
        in_directive = kind == _DIRECTIVE
        in_alert = in_alert or kind == _ALERT
        if current:
            yield " ".join(current)
            current.clear()
    if current:
        yield " ".join(current)


def _kind(raw: str, line: str, *, rst: bool, continuing: bool) -> int:
    if not line:
        return _BREAK
    if line.startswith("<!--"):
        return _COMMENT
    if not rst and _FENCE_OPEN.match(line):
        return _FENCE
    if line == ".." or line.startswith(".. "):
        return _DIRECTIVE
    if _ADORNMENT.fullmatch(line):
        return _TITLE
    if _ALERT_MARK.match(line):
        return _ALERT
    if (
        (line.startswith("#") and not rst)
        or line.startswith(("<", "|"))  # HTML blocks, tables, rst substitution-only lines
        or _TABLE_RULE.fullmatch(line)
        or _LIST_ITEM.match(line)
        or _LINK_DEF.match(line)
        or _BRACKETED.fullmatch(line)
        or (rst and _RST_FIELD.match(line))
        or (not continuing and raw[:1].isspace() and (rst or raw.expandtabs(4)[:4] == "    "))
    ):
        return _BREAK  # indented at a paragraph's start: code (md) or a quote/literal (rst)
    if _WORD.search(_strip_links(line)) is None:
        return _BREAK  # badges, images, link-only lines
    return _PROSE


def _front_matter_end(lines: list[str]) -> int:
    """Index after a leading `---` … `---` YAML block (Jekyll, Hugo, Docusaurus), else 0."""
    if lines and lines[0].strip() == "---":
        for index, line in enumerate(lines[1:], start=1):
            if line.strip() in ("---", "..."):
                return index + 1
    return 0


def _strip_links(text: str) -> str:
    for pattern in (_IMAGE, _LINK, _AUTOLINK, _URL, _HTML_TAG, _RST_SUBSTITUTION):
        text = pattern.sub(" ", text)
    return text


def _plain(text: str, *, rst: bool) -> str:
    """Inline markup to plain text: links keep their text, images and tags go."""
    text = _IMAGE.sub(" ", text)
    if rst:
        text = _RST_ROLE.sub(r"\1", _RST_LINK.sub(r"\1", text))
        text = _RST_REF_TAIL.sub("", _RST_SUBSTITUTION.sub(" ", text))
    else:
        text = _SHORTCODE.sub(" ", text)
    # autolinks (<https://…>) before tags, which they look like
    text = _HTML_TAG.sub(" ", _AUTOLINK.sub(r"\1", _LINK.sub(r"\1", text)))
    text = _CODE.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\2", _STRIKE.sub(r"\1", _STRONG.sub(r"\2", text)))
    text = _ESCAPE.sub(r"\1", text)
    text = _SPACE.sub(" ", text).strip()
    return text[:-1] if rst and text.endswith("::") else text  # rst "Intro::" reads "Intro:"
