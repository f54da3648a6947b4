"""What a translation may not add to a lesson: HTML, and links to places its English entry does not go.

A translated notebook opens in a learner's browser, and Jupyter renders its markdown together with any raw
HTML in it; the PO files are the part of the course that the most people edit. So a translation may link
only where its English entry links, and may carry only the HTML its English entry has:

- links and images: relative paths and #anchors anywhere; http(s) only to a host the English entry links to;
  `mailto:` and `attachment:` (a Jupyter cell attachment) only to a target the English entry has; no other
  scheme (javascript:, data:, vbscript:, file:, ...). Autolinks, bare URLs, `www.` addresses (JupyterLab
  links them) and reference definitions count as links.
- raw HTML: each tag, with its attributes other than the translatable alt and title, must be one the English
  entry has (so no <script>, <iframe>, event handler, or image from another host).
- nothing hidden: a link inside an HTML comment, or a reference definition no link uses, reaches no reader
  and is refused unless the English entry has the same one.

The markdown is parsed with mistune, as `markdown.rendering_problems` renders it, so a link is found however
it is written (entities, angle brackets, a reference) and code spans, code blocks and math are no links.
"""

from __future__ import annotations

import functools
import html
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

from mmlesson.course.i18n.markdown import shortened

WEB_SCHEMES = ("http", "https")
# Schemes a translation may use only for a target its English entry has, character for character.
SAME_TARGET_SCHEMES = ("mailto", "attachment")
TRANSLATED_ATTRIBUTES = ("alt", "title", "aria-label")
# JupyterLab's markdown (marked, GitHub flavour) links a bare www. address; mistune's url plugin does not.
BARE_WWW = re.compile(r"(?<![\w./@-])www\.[a-z0-9-]+(?:\.[a-z0-9-]+)+[^\s<>]*", re.I)
# What makes an HTML comment's text a link: markdown link syntax, a reference definition, or a URL.
LINK_LIKE = re.compile(r"\]\s*[(:]|//|\bwww\.|\b[a-z][a-z0-9+.-]*:[^\s]", re.I)
# Characters browsers drop from a URL before reading its scheme ("java\tscript:" is javascript:).
IGNORED_IN_URL = re.compile(r"[\x00-\x20\x7f]+")


@dataclass
class Content:
    """Where a piece of markdown links to, and the raw HTML it carries, as a browser would get them."""

    targets: list[str] = field(default_factory=list)
    unused_definitions: list[str] = field(default_factory=list)
    tags: Counter = field(default_factory=Counter)
    comments: list[str] = field(default_factory=list)


def safety_problems(source: str, translation: str) -> list[str]:
    """What the translation adds that its English entry (`source`) does not have; see the module's rules."""
    english, translated = content(source), content(translation)
    hosts = {host for host in map(_host, english.targets) if host is not None}
    problems = [
        f"HTML the English entry does not have: {shortened(tag)}; keep only the English's HTML"
        for tag in (translated.tags - english.tags).elements()
    ]
    problems += [
        problem
        for target in translated.targets
        if (problem := _target_problem(target, english.targets, hosts))
    ]
    problems += [
        f"a link definition that no link uses, which no reader sees: {shortened(target)}"
        for target in translated.unused_definitions
        if target not in english.unused_definitions
    ]
    return problems + [
        f"a link hidden in an HTML comment, which no reader sees: {shortened(comment)}"
        for comment in translated.comments
        if comment not in english.comments and LINK_LIKE.search(comment)
    ]


def content(markdown: str) -> Content:
    """The link targets, unused reference definitions, HTML tags and comments of a piece of markdown."""
    tokens, state = _parser()(markdown)
    found, used, raw_html = Content(), set(), []
    for token in _walk(tokens):
        if token["type"] in ("link", "image"):
            found.targets.append(token["attrs"]["url"])
            used.add(token.get("ref"))
        elif token["type"] in ("block_html", "inline_html"):
            raw_html.append(token["raw"])
        elif token["type"] == "text":
            found.targets += [f"http://{match.group(0)}" for match in BARE_WWW.finditer(token["raw"])]
    for key, definition in state.env.get("ref_links", {}).items():
        found.targets.append(definition["url"])
        if key not in used:
            found.unused_definitions.append(definition["url"])
    html_parser = _HTMLParts()
    html_parser.feed("".join(raw_html))
    html_parser.close()
    found.tags, found.comments = Counter(html_parser.tags), html_parser.comments
    return found


def _target_problem(target: str, english_targets: list[str], english_hosts: set[str]) -> str | None:
    """Why a translation may not link to `target`, or None when it may."""
    scheme, host = _scheme(target), _host(target)
    if host is not None:
        if host in english_hosts:
            return None
        return f"a link to {host!r}, a host the English entry does not link to: {shortened(target)}"
    if not scheme:
        return None  # relative, or an #anchor
    if scheme in SAME_TARGET_SCHEMES:
        if target in english_targets:
            return None
        return f"{scheme}: link the English entry does not have: {shortened(target)}"
    allowed = "relative, #anchor, http and https"
    return f"{scheme}: link, and a lesson links only {allowed}: {shortened(target)}"


def _scheme(target: str) -> str:
    """The scheme a browser reads in `target` ('' for a relative link), lower case; '?' if none can be."""
    try:
        return urlsplit(IGNORED_IN_URL.sub("", html.unescape(target))).scheme.lower()
    except ValueError:
        return "?"


def _host(target: str) -> str | None:
    """The host an http(s) or scheme-relative (//host/...) link goes to ('' if it names none), else None."""
    cleaned = IGNORED_IN_URL.sub("", html.unescape(target))
    try:
        parts = urlsplit(cleaned)
        if parts.scheme.lower() in WEB_SCHEMES or (not parts.scheme and cleaned.startswith("//")):
            return parts.hostname or ""
    except ValueError:
        return None
    return None


class _HTMLParts(HTMLParser):
    """The tags (with their untranslated attributes) and comments of raw HTML, as a browser parses them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        kept = sorted((name, value) for name, value in attrs if name not in TRANSLATED_ATTRIBUTES)
        written = "".join(f" {name}" if value is None else f' {name}="{value}"' for name, value in kept)
        self.tags.append(f"<{tag}{written}>")

    def handle_comment(self, data: str) -> None:
        self.comments.append(data.strip())

    def handle_decl(self, decl: str) -> None:
        self.tags.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.tags.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.tags.append(f"<![{data}]>")


def _walk(tokens: list[dict]) -> Iterator[dict]:
    for token in tokens:
        yield token
        yield from _walk(token.get("children", []))


@functools.cache
def _parser() -> Callable[[str], tuple[list[dict], object]]:
    import mistune

    return mistune.create_markdown(renderer=None, plugins=["table", "math", "url"]).parse
