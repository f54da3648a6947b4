"""Build the course website into _site/: every language's lessons, README and glossary, as static HTML.

    python site/build.py                 # all languages, into _site/ at the repository root
    python site/build.py --lang en vi    # some of them (a quicker look while writing)

The lessons are the committed, executed notebooks (nothing is run again): `notebooks/*.ipynb` in English and
`translations/<lang>/notebooks/*.ipynb` for each translation, read by Sphinx with MyST-NB. Each language is
its own Sphinx build under `_site/<lang>/`, with its own search index (Chinese is indexed by character pairs,
so that any word of two or more characters is found without a dictionary); `_site/index.html` lets a reader
choose the language. The pages work from any static host and opened from disk (search included).

Before Sphinx sees a lesson, this script rewrites what only makes sense in a repository or in Jupyter:
- links to repository files: a lesson, README or glossary becomes the page built from it; any other file
  becomes its address on GitHub; a link to a file that does not exist fails the build, naming both;
- images attached to markdown cells (`attachment:NAME`) become files beside the page;
- a widget cell's output (a line of text, in a saved notebook) becomes a note that the cell is interactive in
  Jupyter, with the lesson's Colab link; saved progress-bar widgets are dropped;
- solution cells (tag `solution`) are folded away, as they are in Jupyter.

Everything is built in a temporary folder and moved to `_site/` only when every language built without a
warning and every link and image of every page resolves: a failed build names the file (and the link) and
leaves the previous `_site/` as it was.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from pathlib import Path

from mmlesson.course.i18n.build import repository_url
from mmlesson.course.i18n.project import Project, native_language_name

SITE_DIR = Path(__file__).resolve().parent
ROOT = SITE_DIR.parent
LESSON_GLOB = "[0-9][0-9]_*.ipynb"  # the course's lessons, as `python -m mmlesson i18n` finds them
BRANCH = "main"
PARALLEL_BUILDS = 2  # Sphinx builds at once: CI has 2 cores


class BuildError(Exception):
    """What stops the build: each line names a file, and the link or cell where it applies."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- the course: languages, pages and where they come from --------------------------------------------------


@dataclass
class Language:
    code: str  # an IETF tag, as under translations/: en, vi, zh-CN
    folder: str  # where its files are, from the repository root: "" for English

    def path(self, name: str) -> str:
        return posixpath.join(self.folder, name) if self.folder else name

    @property
    def sphinx(self) -> str:
        """Sphinx's code for the language: zh_CN for zh-CN."""
        return self.code.replace("-", "_")


@dataclass
class Page:
    lang: str
    docname: str  # Sphinx's name for it: index, glossary, lessons/01_contrastive_loss
    source: str  # the repository file it is built from
    title: str = ""


@dataclass
class Course:
    root: Path
    languages: list[Language]
    pages: dict[str, Page] = field(default_factory=dict)  # repository path -> page
    lessons: list[str] = field(default_factory=list)  # English lesson names, in order: 00_setup, ...
    left_out: set[str] = field(default_factory=set)  # languages the course has and this build leaves out

    @property
    def repository(self) -> str:
        return repository_url(self.root)

    @property
    def site_url(self) -> str:
        """Where GitHub Pages publishes the site: https://OWNER.github.io/NAME/."""
        owner, name = urllib.parse.urlsplit(self.repository).path.strip("/").split("/")[:2]
        return f"https://{owner.lower()}.github.io/{name}/"

    def page(self, lang: str, docname: str) -> Page | None:
        return next((p for p in self.pages.values() if p.lang == lang and p.docname == docname), None)

    def docnames(self, lang: str) -> list[str]:
        return [p.docname for p in self.pages.values() if p.lang == lang]

    def github(self, path: str) -> str:
        kind = "tree" if (self.root / path).is_dir() else "blob"
        return f"{self.repository}/{kind}/{BRANCH}/{urllib.parse.quote(path)}"

    def colab(self, path: str) -> str:
        return (
            f"https://colab.research.google.com/github/{self.slug}/blob/{BRANCH}/{urllib.parse.quote(path)}"
        )

    def binder(self, path: str) -> str:
        labpath = urllib.parse.quote(path, safe="")
        return f"https://mybinder.org/v2/gh/{self.slug}/{BRANCH}?labpath={labpath}"

    @property
    def slug(self) -> str:
        return urllib.parse.urlsplit(self.repository).path.strip("/")


def find_course(root: Path, wanted: list[str] | None) -> Course:
    """The languages (English first, then translations/<lang>/ with a po/ folder) and the pages of each."""
    project = Project(root)
    languages = [Language("en", "")]
    languages += [
        Language(code, project.language_dir(code).relative_to(root).as_posix())
        for code in project.languages()
    ]
    if wanted:
        unknown = set(wanted) - {language.code for language in languages}
        if unknown:
            known = ", ".join(language.code for language in languages)
            raise BuildError(
                [f"no language {code!r} in this course (it has {known})" for code in sorted(unknown)]
            )
    left_out = {language.code for language in languages} - set(
        wanted or [language.code for language in languages]
    )
    languages = [language for language in languages if language.code not in left_out]

    course = Course(root, languages, left_out=left_out)
    course.lessons = [p.stem for p in project.notebooks()]
    if not course.lessons:
        raise BuildError([f"notebooks/: no lessons ({LESSON_GLOB}) in {root}"])
    problems = []
    for language in languages:
        readme = language.path("README.md")
        if not (root / readme).is_file():
            problems.append(f"{readme}: missing (the home page of {language.code})")
        course.pages[readme] = Page(language.code, "index", readme)
        for name, docname in (("GLOSSARY.md", "glossary"), ("INSTRUCTORS.md", "instructors")):
            if (root / language.path(name)).is_file():
                course.pages[language.path(name)] = Page(language.code, docname, language.path(name))
        for lesson in course.lessons:
            path = language.path(f"notebooks/{lesson}.ipynb")
            if not (root / path).is_file():
                problems.append(f"{path}: missing (English has notebooks/{lesson}.ipynb)")
            course.pages[path] = Page(language.code, f"lessons/{lesson}", path)
        extra = sorted(
            p.relative_to(root).as_posix()
            for p in (root / language.path("notebooks")).glob(LESSON_GLOB)
            if p.stem not in course.lessons
        )
        problems += [
            f"{path}: a lesson English does not have (no notebooks/{Path(path).name})" for path in extra
        ]
    if problems:
        raise BuildError(problems)
    return course


def strings(lang: str) -> dict[str, str]:
    """The website's own words in `lang` (site/strings.json), English where a word is missing."""
    table = json.loads((SITE_DIR / "strings.json").read_text(encoding="utf-8"))
    return {**table["en"], **table.get(lang, {})}


def language_name(code: str) -> str:
    """A language's name in that language, capitalized as the switcher shows it: 'Tiếng Việt' for vi,
    '中文 (简体)' for zh-CN, 'Español' for es."""
    native = native_language_name(code)
    return native[:1].upper() + native[1:]


# --- markdown: links and images -----------------------------------------------------------------------------

SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
# [text](target "title") and ![alt](target): text may hold one level of brackets (a badge's image).
LINK = re.compile(
    r"(?P<bang>!?)\[(?P<text>(?:[^\[\]]|\[[^\[\]]*\])*)\]"
    r"\((?P<target><[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?P<title>\s+\"[^\"\n]*\")?\)"
)
REFERENCE = re.compile(r"^(?P<head> {0,3}\[[^\]\n]+\]:[ \t]*)(?P<target><[^>\n]*>|\S+)", re.M)
HTML_ATTRIBUTE = re.compile(
    r"(?P<head><(?P<tag>a|img)\b[^>]*?\b(?P<attr>href|src)=)(?P<q>[\"'])(?P<target>.*?)(?P=q)"
)
EXTERNAL_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?:https?:)?//[^)]*\)$")


def mask_code(text: str) -> tuple[str, list[str]]:
    """`text` with fenced and inline code replaced by placeholders (links there are code, not links)."""
    kept: list[str] = []

    def hide(chunk: str) -> str:
        kept.append(chunk)
        return f"\x00{len(kept) - 1}\x00"

    lines, out, fence = text.split("\n"), [], None
    block: list[str] = []
    for line in lines:
        match = FENCE.match(line)
        if fence is None and match:
            fence, block = match.group(1), [line]
        elif fence is not None:
            block.append(line)
            if line.strip().startswith(fence[0] * len(fence)) and line.strip().strip(fence[0]) == "":
                out.append(hide("\n".join(block)))
                fence = None
        else:
            out.append(line)
    if fence is not None:
        out.append(hide("\n".join(block)))
    masked = INLINE_CODE.sub(lambda m: hide(m.group(0)), "\n".join(out))
    return masked, kept


def unmask(text: str, kept: list[str]) -> str:
    return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], text)


@dataclass
class Document:
    """One markdown text of a page (a README, a glossary, or a markdown cell of a lesson)."""

    course: Course
    page: Page
    where: str  # for messages: the file, and the cell
    srcdir: Path  # the language's Sphinx source folder
    problems: list[str]
    attachments: dict[str, str] = field(default_factory=dict)  # attachment name -> file, from the page

    def url_to(self, target: Page, fragment: str = "") -> str:
        """The address of `target`'s HTML page, relative to this page's."""
        if target.lang == self.page.lang:
            start = posixpath.dirname(self.page.docname) or "."
            url = posixpath.relpath(f"{target.docname}.html", start)
        else:
            url = "../" * (self.page.docname.count("/") + 1) + f"{target.lang}/{target.docname}.html"
        return url + (f"#{fragment}" if fragment else "")

    def resolve(self, target: str, image: bool) -> str | None:
        """The site's address for a link or image target; None where it is broken (a problem is recorded)."""
        bare = target[1:-1] if target.startswith("<") else target
        if image and bare.startswith("attachment:"):
            name = urllib.parse.unquote(bare[len("attachment:") :])
            if name not in self.attachments:
                return self.broken(target, "the cell has no attachment of that name")
            return self.attachments[name]
        if bare.startswith(self.course.site_url):  # the published site: stay on this copy of it
            return self.site_link(bare)
        if SCHEME.match(bare) or bare.startswith(("#", "//")) or not bare:
            return target
        path, _, fragment = bare.partition("#")
        path = urllib.parse.unquote(path.split("?")[0])
        repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(self.page.source), path))
        if repo_path == ".." or repo_path.startswith("../"):
            return self.broken(target, "it points outside the repository")
        file = self.course.root / repo_path
        if not file.exists():
            return self.broken(target, f"there is no {repo_path} in the repository")
        if image:
            copy = Path("_repo") / repo_path
            (self.srcdir / copy).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, self.srcdir / copy)
            return posixpath.relpath(copy.as_posix(), posixpath.dirname(self.page.docname) or ".")
        page = self.course.pages.get(repo_path)
        if page is not None and page.lang in {language.code for language in self.course.languages}:
            return "site:" + self.url_to(page, fragment)
        return self.course.github(repo_path) + (f"#{fragment}" if fragment else "")

    def site_link(self, url: str) -> str | None:
        path, _, fragment = url[len(self.course.site_url) :].partition("#")
        lang, _, rest = path.partition("/")
        if not rest or rest.endswith("/"):
            rest += "index.html"
        page = self.course.page(lang, rest.removesuffix(".html"))
        if page is None:
            if lang in self.course.left_out:  # a language this build leaves out (--lang): the published one
                return url
            if not path:
                return "site:" + "../" * (self.page.docname.count("/") + 1) + "index.html"
            return self.broken(url, "no page of this site has that address")
        return "site:" + self.url_to(page, fragment)

    def broken(self, target: str, why: str) -> None:
        self.problems.append(f"{self.where}: broken link {target!r}: {why}")
        return None

    def rewrite(self, text: str) -> str:
        masked, kept = mask_code(text)

        def link(match: re.Match) -> str:
            image, label = bool(match["bang"]), match["text"]
            if not image:
                badge = EXTERNAL_IMAGE.match(label.strip())
                if badge:  # a badge image from another host: its words, as a plain link (works offline)
                    label = badge["alt"]
                else:
                    label = LINK.sub(link, label)
            resolved = self.resolve(match["target"], image)
            if resolved is None:
                return match.group(0)
            return f"{match['bang']}[{label}]({myst_target(resolved, image)}{match['title'] or ''})"

        def reference(match: re.Match) -> str:
            resolved = self.resolve(match["target"], image=False)
            return match.group(0) if resolved is None else match["head"] + myst_target(resolved, False)

        def attribute(match: re.Match) -> str:
            resolved = self.resolve(match["target"], image=match["tag"] == "img")
            if resolved is None:
                return match.group(0)
            resolved = re.sub("^site(frag)?:", "", resolved)
            return f"{match['head']}{match['q']}{escape(resolved)}{match['q']}"

        masked = LINK.sub(link, masked)
        masked = REFERENCE.sub(reference, masked)
        masked = HTML_ATTRIBUTE.sub(attribute, masked)
        return unmask(masked, kept)


def myst_target(resolved: str, image: bool) -> str:
    """A resolved address as MyST must read it: `site:` (`sitefrag:` with an anchor) marks an address on
    this site that MyST leaves as it is (site/conf.py's myst_url_schemes); an image is a plain path."""
    if resolved.startswith("site:"):
        if image:
            resolved = resolved[len("site:") :]
        elif "#" in resolved:
            resolved = "sitefrag:" + resolved[len("site:") :]
    if " " in resolved and not resolved.startswith("<"):
        resolved = f"<{resolved}>"
    return resolved


# --- lessons ------------------------------------------------------------------------------------------------

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
IMPORTS_WIDGETS = re.compile(r"^\s*(?:import\s+ipywidgets|from\s+ipywidgets\b)", re.M)
SHOWS_WIDGET = re.compile(r"\b(?:interactive|interact|interact_manual)\s*\(|\bdisplay\s*\(\s*widgets?\.")
WIDGET_TEXT = re.compile(r"^\s*(?:interactive\(|\[An interactive figure)")  # a widget's text form, as saved
PROGRESS_BAR = re.compile(r"\d+%\|")
ATTACHMENT_TYPES = {"image/svg+xml": ".svg", "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif"}


def is_widget_cell(cell: dict) -> bool:
    """A cell that shows a widget: it imports ipywidgets and calls interact/interactive, or its output is a
    widget (saved as a widget view, or as the text line a widget leaves in a saved notebook)."""
    source = "".join(cell.get("source", ""))
    if IMPORTS_WIDGETS.search(source) and SHOWS_WIDGET.search(source):
        return True
    for output in cell.get("outputs", []):
        data = output.get("data", {})
        text = "".join(data.get("text/plain", ""))
        if WIDGET_VIEW in data and not PROGRESS_BAR.search(text):
            return True
        if WIDGET_TEXT.match(text):
            return True
    return False


def terminal_text(text: str) -> str:
    """Printed text as a terminal leaves it: of a line rewritten with carriage returns, only its last form."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def shown_outputs(outputs: list[dict]) -> list[dict]:
    """Outputs without progress-bar widgets (saved at their first frame), printed text as it ended."""
    kept = []
    for output in outputs:
        data = output.get("data", {})
        if WIDGET_VIEW in data and PROGRESS_BAR.search("".join(data.get("text/plain", ""))):
            continue
        if output.get("output_type") == "stream":
            output = {**output, "text": terminal_text("".join(output.get("text", "")))}
        kept.append(output)
    return kept


def prepare_lesson(course: Course, page: Page, srcdir: Path, problems: list[str]) -> None:
    """Write the lesson of `page` into srcdir as Sphinx will read it (see the module's docstring)."""
    path = course.root / page.source
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        problems.append(f"{page.source}: cannot be read as a notebook: {error}")
        return
    shape = notebook_shape_problem(notebook)
    if shape:  # MyST-NB validates the rest (nbformat's schema), and its warnings fail the build
        problems.append(f"{page.source}: not a notebook of format 4: {shape}")
        return

    stem = posixpath.basename(page.docname)
    files = srcdir / "lessons" / "_attachments"
    words = strings(page.lang)
    note = words["widget_note"].format(colab=escape(course.colab(page.source), quote=True))
    for number, cell in enumerate(notebook["cells"]):
        where = f"{page.source} (cell {cell.get('id', number)})"
        if cell["cell_type"] == "markdown":
            attached = {}
            for name, bundle in (cell.get("attachments") or {}).items():
                mime = next((m for m in ATTACHMENT_TYPES if m in bundle), None)
                if mime is None:
                    problems.append(f"{where}: attachment {name!r} is of no image type the site shows")
                    continue
                data = "".join(bundle[mime])
                content = data.encode("utf-8") if data.lstrip().startswith("<") else base64.b64decode(data)
                file = files / f"{stem}-{number}-{Path(name).stem}{ATTACHMENT_TYPES[mime]}"
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_bytes(content)
                attached[name] = f"_attachments/{file.name}"
            cell.pop("attachments", None)
            document = Document(course, page, where, srcdir, problems, attached)
            cell["source"] = document.rewrite("".join(cell["source"]))
        elif cell["cell_type"] == "code":
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if "solution" in tags:  # folded away, as in Jupyter, under "Show the solution"
                tags.append("hide-cell")
                cell["metadata"]["mystnb"] = {"code_prompt_show": words["show_solution"]}
                cell["metadata"]["mystnb"]["code_prompt_hide"] = words["hide_solution"]
            elif cell["metadata"].get("jupyter", {}).get("source_hidden"):
                tags.append("hide-input")
            outputs = shown_outputs(cell.get("outputs", []))
            if is_widget_cell(cell):
                outputs = [o for o in outputs if o.get("output_type") == "stream"]
                html = f'<p class="mm-widget-note">{note}</p>'
                outputs.append({"output_type": "display_data", "data": {"text/html": html}, "metadata": {}})
            cell["outputs"] = outputs
    notebook.get("metadata", {}).pop("widgets", None)
    target = srcdir / f"{page.docname}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(notebook, ensure_ascii=False), encoding="utf-8")
    page.title = title_of(notebook, page.source, problems)


def notebook_shape_problem(notebook: object) -> str | None:
    """What keeps `notebook` (parsed JSON) from being read cell by cell, or None."""
    if not isinstance(notebook, dict) or notebook.get("nbformat") != 4:
        return "no 'nbformat': 4 at its top level"
    if not isinstance(notebook.get("cells"), list):
        return "no list of 'cells'"
    for number, cell in enumerate(notebook["cells"]):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("markdown", "code", "raw"):
            return f"cell {number} has no cell_type markdown, code or raw"
        if not isinstance(cell.get("source"), (str, list)):
            return f"cell {number} has no source"
        if cell["cell_type"] == "code" and not isinstance(cell.get("outputs", []), list):
            return f"cell {number}'s outputs are not a list"
    return None


def title_of(notebook: dict, source: str, problems: list[str]) -> str:
    """The lesson's title: its first '# ' heading (as the README's lesson table has it)."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    problems.append(f"{source}: no '# ' title in its markdown")
    return source


# --- one language's Sphinx source ---------------------------------------------------------------------------


def prepare_language(course: Course, language: Language, srcdir: Path, problems: list[str]) -> dict:
    """Write the language's pages into srcdir; return what site/conf.py needs to know about them."""
    words = strings(language.code)
    lessons = [course.pages[language.path(f"notebooks/{lesson}.ipynb")] for lesson in course.lessons]
    for page in lessons:
        prepare_lesson(course, page, srcdir, problems)
    for page in course.pages.values():
        if page.lang != language.code or page.docname.startswith("lessons/"):
            continue
        text = (course.root / page.source).read_text(encoding="utf-8")
        text = Document(course, page, page.source, srcdir, problems).rewrite(text)
        if page.docname == "index":
            text += home_toctrees(course, language, lessons, words)
        (srcdir / f"{page.docname}.md").write_text(text, encoding="utf-8")

    def launch(page: Page) -> dict[str, str]:
        return {
            "colab": course.colab(page.source),
            "binder": course.binder(page.source),
            "download": posixpath.basename(page.source),
        }

    english_instructors = course.page("en", "instructors")
    return {
        "lang": language.code,
        "sphinx_language": language.sphinx,
        "strings": words,
        "languages": [
            {"code": other.code, "name": language_name(other.code), "docnames": course.docnames(other.code)}
            for other in course.languages
        ],
        "lessons": {page.docname: launch(page) for page in lessons},
        "instructors": None
        if english_instructors is None or course.page(language.code, "instructors")
        else "en/instructors.html",
        "repository": course.repository,
    }


def home_toctrees(course: Course, language: Language, lessons: list[Page], words: dict[str, str]) -> str:
    """The home page's hidden tables of contents: the sidebar and the previous/next links follow them."""
    entries = [f"{int(p.docname.split('/')[1][:2])}. {p.title} <{p.docname}>" for p in lessons]
    more = [d for d in ("glossary", "instructors") if course.page(language.code, d)]
    text = toctree(words["lessons"], entries)
    if more:
        text += toctree(words["more"], more)
    return text


def toctree(caption: str, entries: list[str]) -> str:
    return "\n\n```{toctree}\n:hidden:\n:caption: " + caption + "\n\n" + "\n".join(entries) + "\n```\n"


# --- building -----------------------------------------------------------------------------------------------


def run_sphinx(jobs: list[tuple[Language, Path, Path, Path]], origins: dict[str, str]) -> list[str]:
    """Build each (language, source, output, config) with Sphinx, PARALLEL_BUILDS at once; warnings fail."""
    problems, running, waiting = [], [], list(jobs)
    while waiting or running:
        while waiting and len(running) < PARALLEL_BUILDS:
            language, srcdir, outdir, config = waiting.pop(0)
            command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going"]
            command += ["-c", str(SITE_DIR), "-d", str(srcdir.parent / f"doctrees-{language.code}")]
            command += [str(srcdir), str(outdir)]
            env = {**os.environ, "MMSITE_CONFIG": str(config), "PYTHONHASHSEED": "0"}
            log = open(srcdir.parent / f"sphinx-{language.code}.log", "w+", encoding="utf-8")
            started = time.monotonic()
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=srcdir)
            running.append((language, process, log, started))
        language, process, log, started = running.pop(0)
        process.wait()
        log.seek(0)
        said = log.read()
        log.close()
        for temporary, source in origins.items():
            said = said.replace(temporary, source)
        if process.returncode != 0:
            lines = [line for line in said.splitlines() if line.strip()] or ["(no output)"]
            problems.append(f"Sphinx failed for {language.code} (exit {process.returncode}):")
            problems += ["  " + line for line in lines[-40:]]
        else:
            print(f"site: {language.code} built in {time.monotonic() - started:.0f} s", flush=True)
    return problems


class Links(HTMLParser):
    """The ids a page defines and the addresses it links to or loads."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("id", "name"):
            if values.get(name) and (name == "id" or tag == "a"):
                self.ids.add(values[name])
        for name in ("href", "src"):
            if values.get(name) is not None and tag in ("a", "img", "link", "script", "source", "iframe"):
                self.refs.append((tag, values[name]))


def check_links(site: Path, sources: dict[str, str]) -> list[str]:
    """Every link, image, stylesheet and script of every page that stays on the site resolves, anchors too."""
    pages = {}
    for path in sorted(site.rglob("*.html")):
        parser = Links()
        parser.feed(path.read_text(encoding="utf-8"))
        pages[path] = parser
    problems = []
    for path, parser in pages.items():
        where = path.relative_to(site).as_posix()
        where = f"{where} (from {sources[where]})" if where in sources else where
        for tag, ref in parser.refs:
            if SCHEME.match(ref) or ref.startswith("//") or ref in ("", "#"):
                continue
            target_path, _, fragment = urllib.parse.unquote(ref).partition("#")
            target_path = target_path.split("?")[0]
            target = (path.parent / target_path).resolve() if target_path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file() or site.resolve() not in target.resolve().parents:
                problems.append(f"{where}: broken {'image' if tag == 'img' else 'link'} {ref!r}")
            elif fragment and target.suffix == ".html" and fragment not in pages[target].ids:
                problems.append(f"{where}: link {ref!r}: no anchor #{fragment} on that page")
    return problems


def chooser_page(course: Course) -> str:
    """_site/index.html: the course's title in every language, each a link to that language's home."""
    items = []
    for language in course.languages:
        home = course.page(language.code, "index")
        readme = (course.root / home.source).read_text(encoding="utf-8")
        title = next((line[2:].strip() for line in readme.splitlines() if line.startswith("# ")), "mmlesson")
        items.append(
            f'<li lang="{language.code}"><a href="{language.code}/index.html">'
            f"<strong>{escape(language_name(language.code))}</strong>"
            f"<span>{escape(title)}</span></a></li>"
        )
    choose = " · ".join(
        f'<span lang="{language.code}">{escape(strings(language.code)["choose_language"])}</span>'
        for language in course.languages
    )
    return CHOOSER.format(items="\n".join(items), choose=choose)


CHOOSER = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mmlesson: multimodal networks</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 44rem; margin: 3rem auto; padding: 0 1rem;
       color: #222; }}
h1 {{ font-size: 1.6rem; }}
ul {{ list-style: none; padding: 0; }}
li a {{ display: block; padding: 0.9rem 1rem; margin: 0.6rem 0; border: 1px solid #ccd; border-radius: 8px;
       text-decoration: none; color: inherit; }}
li a:hover {{ border-color: #2962ff; background: #f4f7ff; }}
li strong {{ display: block; font-size: 1.1rem; color: #2962ff; }}
@media (prefers-color-scheme: dark) {{
  body {{ background: #131416; color: #ddd; }}
  li a {{ border-color: #444; }}
  li a:hover {{ background: #1c2030; }}
}}
</style>
</head>
<body>
<h1>mmlesson</h1>
<p>{choose}</p>
<ul>
{items}
</ul>
</body>
</html>
"""


def build(root: Path, out: Path, wanted: list[str] | None = None) -> float:
    """Build the site of the course at `root` into `out`; replace `out` only once all of it is right."""
    started = time.monotonic()
    course = find_course(root, wanted)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="mmlesson-site-"))
    staging = Path(tempfile.mkdtemp(prefix=f"{out.name}.build-", dir=out.parent))
    try:
        problems, jobs, origins = [], [], {}
        for language in course.languages:
            srcdir = work / "src" / language.code
            srcdir.mkdir(parents=True)
            config = prepare_language(course, language, srcdir, problems)
            config_path = work / f"config-{language.code}.json"
            config_path.write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
            jobs.append((language, srcdir, staging / f".{language.code}" / "html", config_path))
            for page in course.pages.values():
                if page.lang == language.code:
                    suffix = ".ipynb" if page.docname.startswith("lessons/") else ".md"
                    origins[str(srcdir / f"{page.docname}{suffix}")] = page.source
        if problems:
            raise BuildError(problems)
        problems = run_sphinx(jobs, origins)
        if problems:
            raise BuildError(problems)
        for language in course.languages:  # Sphinx wrote beside html/ what MyST-NB extracted: not needed
            (staging / f".{language.code}" / "html").rename(staging / language.code)
            shutil.rmtree(staging / f".{language.code}")
        sources = {}
        for page in course.pages.values():
            sources[f"{page.lang}/{page.docname}.html"] = page.source
            if page.docname.startswith("lessons/"):  # "Download notebook": the committed notebook, as is
                shutil.copyfile(root / page.source, staging / page.lang / "lessons" / Path(page.source).name)
        (staging / "index.html").write_text(chooser_page(course), encoding="utf-8")
        (staging / ".nojekyll").write_text("", encoding="utf-8")
        for leftover in staging.glob("*/.buildinfo*"):
            leftover.unlink()
        for leftover in staging.glob("*/_sources"):
            shutil.rmtree(leftover)
        print(f"site: checking the links of {sum(1 for _ in staging.rglob('*.html'))} pages", flush=True)
        problems = check_links(staging, sources)
        if problems:
            raise BuildError(problems)
        old = None
        if out.exists():
            old = out.with_name(f"{staging.name}-old")
            out.rename(old)
        staging.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lang", nargs="+", help="build only these languages (IETF tags: en vi zh-CN es)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the course repository (default: this one)")
    parser.add_argument("--out", type=Path, help="where the site goes (default: _site/ in the repository)")
    args = parser.parse_args(argv)
    out = args.out or args.root / "_site"
    try:
        seconds = build(args.root.resolve(), out, args.lang)
    except BuildError as error:
        print(f"site: the build failed; {out} was left as it was:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"site: built {out} in {seconds:.0f} s; open {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
