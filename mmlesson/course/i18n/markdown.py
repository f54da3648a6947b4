"""What a translation must keep from the English markdown, and where its links point once it is built."""

from __future__ import annotations

import functools
import posixpath
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

FENCE = re.compile(r"^(```|~~~)[^\n]*\n.*?^\1[ \t]*$", re.S | re.M)
# Inline code and inline math may wrap onto the next line of their paragraph, but never cross a blank line.
INLINE_CODE = re.compile(r"(`+)((?:[^`\n]|\n(?!\s*\n)|(?!\1)`)+?)\1")
MATH = re.compile(r"\$\$.+?\$\$|\$(?:[^$\n]|\n(?!\s*\n))+?\$", re.S)
LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
# What the rendered markdown must have as many of as the English: the page's structure.
STRUCTURE = {
    "h1": "level-1 headings",
    "h2": "level-2 headings",
    "h3": "level-3 headings",
    "h4": "level-4 headings",
    "li": "list items",
    "tr": "table rows",
    "td": "table cells",
    "th": "table header cells",
    "pre": "code blocks",
    "code": "inline code spans",
    "a": "links",
    "img": "images",
    "blockquote": "quotes",
}


def _counted(pattern: re.Pattern, text: str) -> Counter:
    return Counter(match.group(0) for match in pattern.finditer(text))


def markdown_problems(source: str, translation: str) -> list[str]:
    """What a translation broke: code, math, links and the rendered structure must come through unchanged.

    Code, math and link targets are compared as multisets, so a language may reorder them within the text.
    """
    problems = []
    fences = [line for line in translation.splitlines() if line.lstrip().startswith(("```", "~~~"))]
    if len(fences) % 2:
        problems.append("a code fence (```) is opened and never closed")
    problems += _differences("code block", _counted(FENCE, source), _counted(FENCE, translation))
    prose_source, prose_translation = FENCE.sub("", source), FENCE.sub("", translation)
    problems += _differences(
        "inline code", _counted(INLINE_CODE, prose_source), _counted(INLINE_CODE, prose_translation)
    )
    no_code_source = INLINE_CODE.sub("", prose_source)
    no_code_translation = INLINE_CODE.sub("", prose_translation)
    problems += _differences("math", _counted(MATH, no_code_source), _counted(MATH, no_code_translation))
    if no_code_source.count("$") != no_code_translation.count("$"):
        problems.append("math delimiters ($) were lost or added")
    targets = [Counter(m.group(2) for m in LINK.finditer(t)) for t in (no_code_source, no_code_translation)]
    problems += _differences("link target", *targets)
    return problems + rendering_problems(source, translation)


def rendering_problems(source: str, translation: str) -> list[str]:
    """Render both as markdown: the same structure must come out, and no bold marker may stay as text.

    The second catches what no count of characters can: CommonMark does not close `**bold。**` when the
    closing marker sits between full-width punctuation and a letter, so the reader sees the asterisks.
    """
    (english, english_text), (translated, text) = _rendered(source), _rendered(translation)
    problems = [
        f"renders with {translated[tag]} {name} where the English has {english[tag]}"
        for tag, name in STRUCTURE.items()
        if english[tag] != translated[tag]
    ]
    if "**" in text and "**" not in english_text:
        problems.append(
            "a bold marker (**) shows as text: close it, and after punctuation such as 。or ： put a space "
            "after the closing **"
        )
    return problems


@functools.cache
def _renderer() -> Callable[[str], str]:
    import mistune

    return mistune.create_markdown(plugins=["table", "math"])


def _rendered(markdown: str) -> tuple[Counter, str]:
    """The tags that rendering `markdown` produces, and its visible text outside code and math."""
    html = _renderer()(markdown)
    tags = Counter(re.findall(r"<(\w+)[\s>]", html))
    visible = re.sub(
        r"<(code|pre|span class=\"math\"|div class=\"math\")[^>]*>.*?</\w+>", "", html, flags=re.S
    )
    return tags, re.sub(r"<[^>]+>", "", visible)


def _differences(what: str, expected: Counter, found: Counter) -> list[str]:
    lost = [f"{what} lost or changed: {shortened(item)}" for item in (expected - found)]
    added = [f"{what} not in the English: {shortened(item)}" for item in (found - expected)]
    return lost + added


def shortened(text: str, limit: int = 70) -> str:
    text = text.replace("\n", "\\n")
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


# --- links -----------------------------------------------------------------------------------------------


def is_relative(target: str) -> bool:
    return not re.match(r"^([a-z][a-z0-9+.-]*:|#|/)", target, re.I)


def relocate_links(text: str, source_dir: str, built_dir: str, translated: set[str]) -> str:
    """Rewrite relative link targets written for `source_dir` so they work from `built_dir`.

    Both are folders relative to the repository root. A link to a translated document (`translated` holds
    their paths from the root) points at its translation, which sits beside the built file.
    """

    def moved(match: re.Match) -> str:
        target = match.group(2)
        if not is_relative(target):
            return match.group(0)
        path, hash_, fragment = target.partition("#")
        from_root = posixpath.normpath(posixpath.join(source_dir, path))
        if from_root in translated:
            new = posixpath.relpath(from_root, source_dir)
        else:
            new = posixpath.relpath(from_root, built_dir)
        return match.group(1) + new + hash_ + fragment + match.group(3)

    return LINK.sub(moved, text)


def broken_links(text: str, folder: Path) -> list[str]:
    targets = [m.group(2) for m in LINK.finditer(INLINE_CODE.sub("", FENCE.sub("", text)))]
    return [t for t in targets if is_relative(t) and not (folder / t.split("#")[0]).exists()]
