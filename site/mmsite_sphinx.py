"""The course website's Sphinx extension (site/conf.py loads it).

- math as MathML, converted at build time by latex2mathml: no MathJax to fetch from a CDN, so formulas show
  offline and from disk, and every browser of the last years draws MathML;
- search that finds Chinese words: Chinese has no spaces, and Sphinx's own Chinese search indexes nothing of
  it without jieba's dictionary; here every run of Han characters is indexed by its character pairs (and
  single characters), and the browser splits a query the same way, so that any word of the text is found,
  with or without a dictionary; Vietnamese (which Sphinx does not know) is indexed by its syllables,
  unstemmed;
- what each page's template needs: the language switcher (the same page in each language, its home where it
  has no such page), and on a lesson its Colab, Binder and download links.
"""

from __future__ import annotations

import json
import re
from typing import Any

from docutils import nodes
from sphinx.search import SearchLanguage
from sphinx.search.zh import SearchChinese

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]+")
LATIN = re.compile(r"[a-zA-Z0-9_]+")


def han_terms(run: str) -> list[str]:
    """What a run of Han characters is indexed and searched by: its overlapping pairs, or itself alone."""
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


class SearchChinesePairs(SearchChinese):
    """Sphinx's Chinese search (English stemming for Latin words), Han text indexed by character pairs."""

    lang = "zh"
    # Sphinx names the browser's stemmer after language_name ("ChineseStemmer", which no file defines);
    # Latin words in Chinese pages are stemmed as English, so the English stemmer is the one to name.
    language_name = "English"

    def split(self, input: str) -> list[str]:
        words = []
        for run in HAN.findall(input):
            words += han_terms(run)
            words += list(run)  # single characters: a one-character query finds them
        latin = LATIN.findall(input)
        known = self.latin_terms  # what stem() reads: a set in Sphinx 9, a list in older ones
        (known.update if isinstance(known, set) else known.extend)(latin)
        return words + latin

    def word_filter(self, stemmed_word: str) -> bool:
        return len(stemmed_word) > 1 or bool(HAN.fullmatch(stemmed_word))

    # The browser's half: a query's Han runs become pairs too. Pairs that no page holds (where a query joins
    # two words, as in 温度参数) are dropped once the index is loaded, so that a query of several words finds
    # the pages that hold each of them, as a dictionary's segmentation would.
    js_splitter_code = r"""
function splitQuery(query) {
  const index = typeof Search !== "undefined" && Search._index ? Search._index : null;
  const has = (table, term) => Object.prototype.hasOwnProperty.call(table || {}, term);
  const known = (term) => !index || has(index.terms, term) || has(index.titleterms, term);
  const terms = [];
  for (const token of query.split(/[^\p{Letter}\p{Number}_]+/u)) {
    for (const part of token.split(/(\p{Script=Han}+)/u)) {
      if (!part) continue;
      if (!/\p{Script=Han}/u.test(part)) {
        terms.push(part);
      } else if (part.length === 1) {
        terms.push(part);
      } else {
        const pairs = [];
        for (let i = 0; i + 1 < part.length; i++) pairs.push(part.slice(i, i + 2));
        const found = pairs.filter(known);
        terms.push(...(found.length ? found : pairs));
      }
    }
  }
  return terms;
}
"""


class SearchVietnamese(SearchLanguage):
    """Vietnamese: words (syllables) as written, lower-cased by the index, no stemming, no stop words."""

    lang = "vi"
    language_name = "Vietnamese"


# --- MathML -------------------------------------------------------------------------------------------------


def mathml(latex: str, display: str) -> str:
    from latex2mathml.converter import convert

    return convert(latex.strip(), display=display)


def visit_math(self, node: nodes.math) -> None:
    self.body.append(self.starttag(node, "span", "", CLASS="math"))
    self.body.append(mathml(node.astext(), "inline") + "</span>")
    raise nodes.SkipNode


def visit_displaymath(self, node: nodes.math_block) -> None:
    self.body.append(self.starttag(node, "div", CLASS="math"))
    parts = [part for part in node.astext().split("\n\n") if part.strip()]
    self.body.append("".join(mathml(part, "block") for part in parts))
    self.body.append("</div>\n")
    raise nodes.SkipNode


# --- each page ----------------------------------------------------------------------------------------------


def page_context(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    site = app.config.html_context["mm"]
    to_root = "../" * (pagename.count("/") + 1)  # from this page to _site/
    switcher = []
    for language in site["languages"]:
        same = pagename in language["docnames"] or pagename in ("search", "genindex")
        target = pagename if same else "index"
        switcher.append(
            {
                "code": language["code"],
                "name": language["name"],
                "url": f"{to_root}{language['code']}/{target}.html",
                "current": language["code"] == site["lang"],
            }
        )
    context["mm_languages"] = switcher
    context["mm_words"] = site["strings"]
    context["mm_launch"] = site["lessons"].get(pagename)
    context["mm_instructors"] = to_root + site["instructors"] if site["instructors"] else None


def search_words(app: Any, config: Any) -> None:
    """The language's words for the search page that Sphinx's catalog lacks (site/strings.json), for
    static/mmsite.js; before it (priority), after Sphinx's translations.js."""
    words = config.html_context["mm"]["strings"].get("search", {})
    if words:
        body = "window.MMSITE_SEARCH_WORDS = " + json.dumps(words, ensure_ascii=False) + ";"
        app.add_js_file(None, body=body, priority=400)


def setup(app: Any) -> dict:
    app.connect("config-inited", search_words)
    app.add_search_language(SearchChinesePairs)
    app.add_search_language(SearchVietnamese)
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_displaymath, None))
    app.connect("html-page-context", page_context)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
