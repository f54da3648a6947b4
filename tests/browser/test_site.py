"""The built website (_site/) in headless Chromium, served from 127.0.0.1 as a static host would serve it.

- every page of every language, reached by following the links from _site/index.html, loads with no error
  in the console and nothing fetched from another host; every link that stays on the site leads to a file
  that is there (and to an anchor on its page), every image is drawn;
- the language switcher of a lesson opens the same lesson in each other language;
- search finds a lesson by a word of its text in each language, Chinese included (two words run together
  too), served and opened from disk;
- a screenshot of one lesson per language is saved for a person to look at (the path is printed).
"""

from __future__ import annotations

import functools
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("en", "es", "vi", "zh-CN")
LESSON = "lessons/01_contrastive_loss"
# Words of lesson 1's text, as a reader would type them; 温度参数 joins two words that the text never joins.
SEARCHES = {"en": ["temperature"], "es": ["temperatura"], "vi": ["nhiệt độ"], "zh-CN": ["温度", "温度参数"]}
MAX_PAGES = 400  # the crawl's bound: the site has about 60 pages
PAGE_TIMEOUT_MS = 30_000


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(built_site: Path) -> Iterator[str]:
    handler = functools.partial(QuietHandler, directory=str(built_site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class Watched:
    """A page whose console errors, uncaught exceptions, failed loads and requests to other hosts are kept."""

    def __init__(self, browser, origin: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.problems: list[str] = []
        self.context.route("**/*", self.route)
        self.origin = origin
        self.page = self.context.new_page()
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))
        self.page.on("requestfailed", self.failed)
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"{r.status}: {r.url}"))

    def failed(self, request) -> None:
        if request.failure != "net::ERR_ABORTED":  # aborted: the test moved on (a favicon still loading)
            self.problems.append(f"failed to load {request.url}: {request.failure}")

    def route(self, route) -> None:
        url = route.request.url
        if url.startswith((self.origin, "file:", "data:", "blob:", "about:")):
            route.continue_()
        else:  # the site must work offline: nothing may come from another host
            self.problems.append(f"loads {url} from another host")
            route.abort()

    def take(self) -> list[str]:
        problems, self.problems = self.problems, []
        return problems

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser, server) -> Iterator[Watched]:
    page = Watched(browser, server)
    yield page
    page.close()


def lesson_title(lang: str) -> str:
    folder = ROOT if lang == "en" else ROOT / "translations" / lang
    notebook = json.loads(
        (folder / "notebooks" / f"{LESSON.split('/')[1]}.ipynb").read_text(encoding="utf-8")
    )
    for cell in notebook["cells"]:
        for line in "".join(cell["source"]).splitlines():
            if cell["cell_type"] == "markdown" and line.startswith("# "):
                return line[2:].strip()
    raise AssertionError(f"{lang}: lesson 1 has no title")


PAGE_FACTS = """() => ({
  links: [...document.querySelectorAll("a[href]")].map((a) => a.href),
  images: [...document.images].map((i) => ({src: i.src, drawn: i.complete && i.naturalWidth > 0})),
  ids: [...document.querySelectorAll("[id], a[name]")].map((e) => e.id || e.getAttribute("name")),
  lang: document.documentElement.lang,
})"""


def test_every_page_loads_cleanly_and_every_link_and_image_resolves(built_site: Path, server: str, watched):
    assert {p.name for p in built_site.iterdir() if (p / "index.html").is_file()} >= set(LANGUAGES)
    queue, seen, ids, anchors, files, problems = [f"{server}/index.html"], set(), {}, [], set(), []
    while queue:
        url = queue.pop(0)
        if url in seen:
            continue
        seen.add(url)
        assert len(seen) <= MAX_PAGES, f"more than {MAX_PAGES} pages: is the crawl going round in circles?"
        response = watched.page.goto(url, wait_until="load")
        if response is None or response.status != 200:
            problems.append(f"{url}: status {response and response.status}")
            continue
        facts = watched.page.evaluate(PAGE_FACTS)
        problems += [f"{url}: {problem}" for problem in watched.take()]
        problems += [
            f"{url}: image not drawn: {image['src']}" for image in facts["images"] if not image["drawn"]
        ]
        ids[url] = set(facts["ids"])
        for link in facts["links"]:
            target, fragment = urllib.parse.urldefrag(link)
            if not target.startswith(server):
                continue  # another site: not fetched (no network here); the build checked its form
            target = target.split("?")[0]
            if target.endswith("/"):
                target += "index.html"
            if target.endswith(".html"):
                queue.append(target)
                if fragment:
                    anchors.append((url, target, urllib.parse.unquote(fragment)))
            else:
                files.add((url, target))
    for source, target, fragment in anchors:
        if target in ids and fragment not in ids[target]:
            problems.append(f"{source}: link to {target}#{fragment}: no such anchor")
    for source, target in sorted(files):
        try:
            with urllib.request.urlopen(target, timeout=10) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        if status != 200:
            problems.append(f"{source}: link to {target}: status {status}")
    assert not problems, f"{len(problems)} problems on {len(seen)} pages:\n" + "\n".join(problems[:60])
    lessons = [url for url in seen if "/lessons/" in url]
    assert len(lessons) >= 4 * 7, f"only {len(lessons)} lesson pages were reached"
    print(f"\n{len(seen)} pages, {len(files)} other files (notebooks to download) checked")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_language_switcher_keeps_the_lesson_and_a_screenshot_is_saved(
    lang: str, server: str, watched, screenshots: Path
):
    page = watched.page
    page.goto(f"{server}/{lang}/{LESSON}.html", wait_until="load")
    assert lesson_title(lang) in page.locator("h1").first.inner_text()
    assert (
        page.locator(".mm-launch a.mm-colab")
        .get_attribute("href")
        .endswith(
            ("notebooks/" if lang == "en" else f"translations/{lang}/notebooks/")
            + "01_contrastive_loss.ipynb"
        )
    )
    assert page.locator(".mm-widget-note").count() == 1, "the widget cell shows its note"
    outputs = "\n".join(page.locator("article .cell_output").all_inner_texts())
    assert "interactive(" not in outputs and "An interactive figure" not in outputs
    shot = screenshots / f"{lang}-01_contrastive_loss.png"
    page.screenshot(path=str(shot), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 1800})
    print(f"\nscreenshot of lesson 1 in {lang}: {shot}")
    for other in LANGUAGES:  # each other language: the same lesson
        link = page.locator(f'.mm-languages a[hreflang="{other}"]').evaluate("a => a.href")
        assert link == f"{server}/{other}/{LESSON}.html"
    following = LANGUAGES[(LANGUAGES.index(lang) + 1) % len(LANGUAGES)]  # and one of them, followed
    page.locator(f'.mm-languages a[hreflang="{following}"]').click()
    page.wait_for_url(f"**/{following}/{LESSON}.html", wait_until="domcontentloaded")
    assert lesson_title(following) in page.locator("h1").first.inner_text()
    assert not watched.take()


# Sphinx writes the summary line ("Search finished, found N pages...") once the last result is listed.
SEARCH_DONE = """() => {
  const summary = document.querySelector("#search-results .search-summary");
  return summary !== null && summary.innerText.trim() !== "";
}"""


def search(page, url: str) -> list[str]:
    """The addresses of the results of a search page, once Sphinx's search has finished."""
    page.goto(url, wait_until="load")
    page.wait_for_function(SEARCH_DONE, timeout=PAGE_TIMEOUT_MS)
    return page.eval_on_selector_all("#search-results ul.search li > a", "links => links.map((a) => a.href)")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_search_finds_a_lesson_by_a_word_of_its_text(lang: str, server: str, watched):
    for query in SEARCHES[lang]:
        found = search(watched.page, f"{server}/{lang}/search.html?q={urllib.parse.quote(query)}")
        pages = [urllib.parse.urldefrag(url)[0] for url in found]
        assert f"{server}/{lang}/{LESSON}.html" in pages, f"{lang}: {query!r} found {pages}"
    assert not watched.take()


def test_search_works_from_disk(built_site: Path, watched):
    """Opened from disk, as a reader who downloaded the site would: the index loads by a script tag."""
    url = (built_site / "zh-CN" / "search.html").resolve().as_uri() + "?q=" + urllib.parse.quote("温度")
    found = search(watched.page, url)
    assert any(link.split("#")[0].endswith(f"/zh-CN/{LESSON}.html") for link in found), found
    assert not watched.take()
