"""From complete PO files to translated notebooks and READMEs, and the READMEs' lesson and language tables."""

from __future__ import annotations

import base64
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from mmlesson.course.i18n.catalog import Status, po_status, read_po
from mmlesson.course.i18n.markdown import relocate_links
from mmlesson.course.i18n.project import (
    GENERATED,
    README,
    SOURCE_DIR,
    TABLE_WORDS,
    TRANSLATIONS_DIR,
    Project,
    TranslationError,
    language_name,
    read_notebook,
    readme_blocks,
)

BUILDER = "python -m mmlesson i18n build"
# The README's command that opens the lessons in JupyterLab; a translated README opens the translated ones.
OPEN_LESSONS = re.compile(rf"(jupyter lab ){SOURCE_DIR}/")
# Figures: images/NAME.svg in English, images/<lang>/NAME.svg the same drawing with its text translated.
FIGURES_DIR = "images"
SVG_TEXT = re.compile(rb"<text[\s>]")


def repository_url(root: Path) -> str:
    """The course's address, written once in pyproject.toml ([project.urls] Repository)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["urls"]["Repository"].rstrip("/")


def notebook_title(notebook: NotebookNode) -> str:
    """The text of the first '# ' heading in the notebook's markdown: the lesson's title."""
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise TranslationError("the notebook has no '# ' title in its markdown")


def lesson_table(
    repo: str, lessons: list[tuple[str, str]], words: tuple[str, str] = TABLE_WORDS
) -> list[str]:
    """README table rows, one per lesson given as (title, notebook path from the repository root).

    Titles link to the notebook as seen from the root; the Colab and Binder badges open it from GitHub.
    """
    owner_name = repo.removeprefix("https://github.com/")
    rows = [f"| # | {words[0]} | {words[1]} |", "|---|---|---|"]
    for title, path in lessons:
        colab = f"https://colab.research.google.com/github/{owner_name}/blob/main/{path}"
        binder = f"https://mybinder.org/v2/gh/{owner_name}/main?labpath={path.replace('/', '%2F')}"
        badges = (
            f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}) "
            f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder})"
        )
        name = posixpath.basename(path)
        rows.append(f"| {int(name[:2])} | [{title}]({SOURCE_DIR}/{name}) | {badges} |")
    return rows


@dataclass
class Language:
    """One language of a project: its PO files, what they build, and what is missing."""

    project: Project
    lang: str

    def __post_init__(self) -> None:
        self.name = language_name(self.lang)
        self.folder = self.project.language_dir(self.lang)
        self.documents = self.project.documents()
        # Documents that have a translation, from the root: a link to one points at its translation.
        self.translated = {f"{SOURCE_DIR}/{name}.ipynb" for name in self.documents if name != "README"} | {
            README
        }

    def label(self, path: Path) -> str:
        return self.project.relative(path)

    def status(self, name: str) -> Status:
        path = self.project.po_path(self.lang, name)
        if not path.exists():
            status = Status(total=len(self.documents[name]), untranslated=len(self.documents[name]))
            status.problems.append(f"{self.label(path)} is missing; run `python -m mmlesson i18n extract`")
            return status
        po = read_po(path, self.label(path))
        status = po_status(po, self.documents[name], self.label(path))
        declared = po.metadata.get("Language", "")
        if declared.replace("_", "-") != self.lang:
            status.problems.append(
                f"{self.label(path)} says it is in language {declared!r}, but it sits in the {self.lang} "
                "folder: move it, or correct its Language header"
            )
        return status

    def built_notebook_path(self, name: str) -> Path:
        return self.folder / SOURCE_DIR / f"{name}.ipynb"

    def notebook(self, name: str, status: Status) -> NotebookNode:
        """The translated notebook: translated markdown, the English code cells and outputs."""
        self._require_complete(name, status, self.built_notebook_path(name))
        notebook = read_notebook(self.project.root / SOURCE_DIR / f"{name}.ipynb")
        built_dir = self.label(self.built_notebook_path(name).parent)
        for cell in notebook["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "markdown" and source.strip():
                text = relocate_links(
                    status.texts[(cell["id"], source)], SOURCE_DIR, built_dir, self.translated
                )
                cell["source"] = text.splitlines(keepends=True)
                self._translate_figures(cell)
        notebook["metadata"]["title"] = notebook_title(notebook)
        notebook["metadata"]["mmlesson"] = {"language": self.lang, "source": f"{SOURCE_DIR}/{name}.ipynb"}
        return notebook

    def figure_path(self, name: str) -> Path:
        return self.project.root / FIGURES_DIR / self.lang / name

    def _translate_figures(self, cell: NotebookNode) -> None:
        """Swap each SVG attachment of a markdown cell for this language's drawing of it, where there is one
        (`figure_problems` reports the missing ones)."""
        for name, bundle in cell.get("attachments", {}).items():
            translated = self.figure_path(name)
            if "image/svg+xml" in bundle and translated.is_file():
                bundle["image/svg+xml"] = base64.b64encode(translated.read_bytes()).decode("ascii")

    def figure_problems(self) -> list[str]:
        """Figures of the English lessons that this language has not drawn, or has drawn with a different
        number of text labels than the English (a label lost, or the English figure changed since)."""
        problems = []
        for name in sorted(figures_used(self.project)):
            english, translated = self.project.root / FIGURES_DIR / name, self.figure_path(name)
            if not english.is_file():
                continue  # scripts/sync_links.py --check reports a figure that does not exist
            if not translated.is_file():
                problems.append(
                    f"{self.label(translated)} is missing: copy {FIGURES_DIR}/{name} and translate its text"
                )
            elif text_labels(translated) != text_labels(english):
                problems.append(
                    f"{self.label(translated)} has a different number of <text> labels than "
                    f"{FIGURES_DIR}/{name}: bring it up to date with the English figure"
                )
        return problems

    def readme(self, status: Status, titles: list[str]) -> str:
        """The translated README: its prose from README.po, its tables pointing at the translations."""
        self._require_complete("README", status, self.folder / README)
        english = (self.project.root / README).read_text(encoding="utf-8")
        words = tuple(status.texts[(f"table: {word}", word)] for word in TABLE_WORDS)
        notebooks = [self.label(self.built_notebook_path(n)) for n in self.documents if n != "README"]
        lessons = lesson_table(repository_url(self.project.root), list(zip(titles, notebooks)), words)
        built_dir, parts = self.label(self.folder), []
        for block in readme_blocks(english):
            if block.kind == "text":
                text = status.texts[(None, block.text)]
                parts.append(relocate_links(text, ".", built_dir, self.translated))
            elif block.kind == "verbatim":
                parts.append(OPEN_LESSONS.sub(rf"\g<1>{built_dir}/{SOURCE_DIR}/", block.text))
            else:
                rows = lessons if block.kind == "lessons" else language_table(self.project, built_dir)
                parts.append(_region(block.kind, rows, BUILDER))
        return "\n\n".join(parts) + "\n"

    def _require_complete(self, name: str, status: Status, target: Path) -> None:
        if status.problems:
            listed = "\n  ".join(status.problems)
            raise TranslationError(
                f"{self.label(target)} was not written: {name} is not fully translated:\n  {listed}"
            )

    def statuses(self) -> dict[str, Status]:
        return {name: self.status(name) for name in self.documents}

    def expected(self, statuses: dict[str, Status]) -> tuple[dict[Path, str], list[str]]:
        """Every file this language can build, with its text, and why the others cannot be built."""
        files, problems, titles = {}, [], []
        for name, status in statuses.items():
            if name == "README":
                continue
            try:
                notebook = self.notebook(name, status)
            except TranslationError as error:
                problems.append(str(error))
                continue
            files[self.built_notebook_path(name)] = notebook_text(notebook)
            titles.append(notebook["metadata"]["title"])
        readme = self.folder / README
        if len(titles) < len(statuses) - 1:
            problems.append(f"{self.label(readme)} was not written: it needs every lesson translated first")
        else:
            try:
                files[readme] = self.readme(statuses["README"], titles)
            except TranslationError as error:
                problems.append(str(error))
        return files, problems


def text_labels(figure: Path) -> int:
    """How many <text> labels an SVG figure has: a translation keeps every one of them."""
    return len(SVG_TEXT.findall(figure.read_bytes()))


def figures_used(project: Project) -> set[str]:
    """The SVG figures the English lessons show (`![...](attachment:NAME.svg)` in their markdown)."""
    names = set()
    for path in project.notebooks():
        names |= set(re.findall(r"attachment:([\w.\-]+\.svg)", path.read_text(encoding="utf-8")))
    return names


def notebook_text(notebook: NotebookNode) -> str:
    """A notebook's file text: nbformat's JSON, with the newline `nbformat.write` adds at the end.

    Its lines stay split as `parse_notebook` read them from the English file (see there): nbformat's own
    splitting would store the English notebook's SVG attachments differently.
    """
    return nbformat.writes(notebook, split_lines=False) + "\n"


def _markers(kind: str) -> tuple[str, str]:
    """How a generated region of the README starts and ends."""
    return next((start, end) for name, start, end in GENERATED if name == kind)


def _region(kind: str, rows: list[str], writer: str) -> str:
    start, end = _markers(kind)
    return "\n".join([f"{start} (generated by {writer}; do not edit by hand) -->", *rows, end])


def language_table(project: Project, seen_from: str = ".") -> list[str]:
    """The README's table of languages, its links relative to the folder `seen_from` (from the root)."""

    def link(path: str) -> str:
        name = posixpath.basename(path) + ("/" if "." not in posixpath.basename(path) else "")
        return f"[{name}]({posixpath.relpath(path, seen_from)})"

    rows = ["| language | README | lessons | glossary |", "|---|---|---|---|"]
    glossary = link("GLOSSARY.md") if (project.root / "GLOSSARY.md").exists() else ""
    rows.append(f"| English | {link(README)} | {link(SOURCE_DIR)} | {glossary} |")
    for lang in project.languages():
        folder = f"{TRANSLATIONS_DIR}/{lang}"
        files = [f"{folder}/{README}", f"{folder}/{SOURCE_DIR}", f"{folder}/GLOSSARY.md"]
        rows.append(f"| {language_name(lang)} | " + " | ".join(link(f) for f in files) + " |")
    return rows


def english_readme(project: Project) -> str:
    """README.md with its table of languages brought up to date (the rest is as it is)."""
    text = (project.root / README).read_text(encoding="utf-8")
    start, end = _markers("languages")
    if start not in text:
        raise TranslationError(f"{README} has no {start} ... {end} region for the table of languages")
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    return head + _region("languages", language_table(project), BUILDER) + tail
