"""What there is to translate: the course's English notebooks and README, and the languages they go into."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from mmlesson.errors import MMLessonError

SOURCE_DIR = "notebooks"
TRANSLATIONS_DIR = "translations"
README = "README.md"
# Regions of a README written by a program, never translated: (kind, first line starts with, last line).
GENERATED = (
    ("lessons", "<!-- lessons:start", "<!-- lessons:end -->"),
    ("languages", "<!-- languages:start", "<!-- languages:end -->"),
)
# Words of the generated lesson table, translated like any other entry of README.po (msgctxt "table: <word>").
TABLE_WORDS = ("Lesson", "Run")


class TranslationError(MMLessonError):
    """A translation problem; the message names the file and the entry."""


# --- languages -------------------------------------------------------------------------------------------


def language_name(code: str) -> str:
    """'Tiếng Việt / Vietnamese' for 'vi'; a clear error for a code no language has, or for 'zh_CN'.

    Where a script is named (zh-CN is written in Simplified characters), the script says more than the
    country, so the name shows the script: '中文 (简体) / Chinese (Simplified)'.
    """
    own, english = native_language_name(code), _locale(code).get_display_name("en")
    return own if own == english else f"{own} / {english}"


def native_language_name(code: str) -> str:
    """The language's name in that language: 'Tiếng Việt' for 'vi', '中文 (简体)' for 'zh-CN'."""
    return _locale(code).get_display_name()


def _locale(code: str):
    from babel import Locale, UnknownLocaleError

    try:
        locale = Locale.parse(code, sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        raise TranslationError(
            f"{code!r} is not a language code: use an IETF tag such as vi, zh-CN, es or pt-BR "
            "(a hyphen, not an underscore)"
        ) from None
    return Locale(locale.language, script=locale.script) if locale.script else locale


# --- what there is to translate --------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One piece of English to translate: its key (a cell id, or None to key by the text), text and place."""

    key: str | None
    text: str
    where: tuple[str, str]


def read_notebook(path: Path) -> NotebookNode:
    """The notebook at `path`, as `parse_notebook` reads it; a clear error when the file cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as error:
        raise TranslationError(f"cannot read notebook {path.as_posix()}: {error}") from None
    return parse_notebook(text, path.as_posix())


def parse_notebook(text: str, label: str) -> NotebookNode:
    """A notebook of format 4 with its multi-line strings as its file stores them; a clear error otherwise.

    Not `nbformat.reads`: it joins the lists of lines, and `nbformat.writes` splits them again its own way,
    which turns the SVG attachments that scripts/sync_links.py stores as one string into lists. Read as
    stored, a built notebook differs from the English one only where it is translated. What nbformat's schema
    rejects is left to the checks that say what to do about it: a markdown cell without an id, for one, is
    reported by `notebook_units`.
    """
    try:
        notebook = nbformat.from_dict(nbformat.reader.parse_json(text))
    except nbformat.reader.NotJSONError as error:  # its cause says where: "line 5 column 3"
        raise TranslationError(f"cannot read notebook {label}: {error.__cause__ or error}") from None
    if (
        not isinstance(notebook, dict)
        or notebook.get("nbformat") != 4
        or not isinstance(notebook.get("cells"), list)
    ):
        raise TranslationError(
            f"cannot read notebook {label}: it is not a notebook of format 4; "
            "open it in JupyterLab 3 or newer and save it"
        )
    return notebook


def notebook_units(notebook: NotebookNode, label: str) -> list[Unit]:
    """One unit per non-empty markdown cell, keyed by its cell id (nbformat 4.5): ids survive reordering."""
    units, seen = [], set()
    for number, cell in enumerate(notebook["cells"], start=1):
        if cell["cell_type"] != "markdown" or not "".join(cell["source"]).strip():
            continue
        cell_id = cell.get("id")
        if not cell_id:
            raise TranslationError(
                f"{label}: markdown cell {number} has no id, and translations are keyed by cell ids. "
                "Open the notebook in JupyterLab 3 or newer and save it: that gives every cell an id."
            )
        if cell_id in seen:
            raise TranslationError(f"{label}: two cells share the id {cell_id!r}; give one of them a new id")
        seen.add(cell_id)
        units.append(Unit(cell_id, "".join(cell["source"]), (label, str(number))))
    return units


@dataclass(frozen=True)
class Block:
    """A block of README.md: translated (`text`), copied (`verbatim`) or generated (`lessons`, ...)."""

    kind: str
    text: str


def readme_blocks(text: str) -> list[Block]:
    """Split a README into blank-line-separated blocks; fences, HTML comments and generated regions stay."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        start = i
        region = next((g for g in GENERATED if lines[i].startswith(g[1])), None)
        if region:
            while i < len(lines) and not lines[i].startswith(region[2]):
                i += 1
            if i == len(lines):
                raise TranslationError(f"{README}: {region[1]!r} has no {region[2]!r} after it")
            blocks.append(Block(region[0], "\n".join(lines[start : i + 1])))
        elif lines[i].startswith(("```", "~~~")):
            i += 1
            while i < len(lines) and not lines[i].startswith(lines[start][:3]):
                i += 1
            blocks.append(Block("verbatim", "\n".join(lines[start : i + 1])))
        else:
            while i + 1 < len(lines) and lines[i + 1].strip() and not lines[i + 1].startswith(("```", "~~~")):
                i += 1
            kind = "verbatim" if lines[start].startswith("<!--") else "text"
            blocks.append(Block(kind, "\n".join(lines[start : i + 1])))
        i += 1
    return blocks


def readme_units(text: str) -> list[Unit]:
    """The README's prose blocks (keyed by their text, as gettext does) and the lesson table's words."""
    units = [
        Unit(None, block.text, (README, str(number)))
        for number, block in enumerate(readme_blocks(text), start=1)
        if block.kind == "text"
    ]
    return units + [Unit(f"table: {word}", word, (README, "lesson table")) for word in TABLE_WORDS]


# --- the repository --------------------------------------------------------------------------------------


@dataclass
class Project:
    """Where the English source and the translations live."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not (self.root / SOURCE_DIR).is_dir():
            raise TranslationError(
                f"no {SOURCE_DIR}/ folder in {self.root.as_posix()}: run this from the course repository, "
                "or pass --root"
            )

    def notebooks(self) -> list[Path]:
        return sorted((self.root / SOURCE_DIR).glob("[0-9][0-9]_*.ipynb"))

    def languages(self) -> list[str]:
        folder = self.root / TRANSLATIONS_DIR
        return sorted(p.parent.name for p in folder.glob("*/po")) if folder.is_dir() else []

    def language_dir(self, lang: str) -> Path:
        return self.root / TRANSLATIONS_DIR / lang

    def po_path(self, lang: str, name: str) -> Path:
        return self.language_dir(lang) / "po" / f"{name}.po"

    def template_path(self, name: str) -> Path:
        """The POT file of one document, which a new language (in Weblate, or by hand) starts from."""
        return self.root / TRANSLATIONS_DIR / "templates" / f"{name}.pot"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def unsafe(self, path: Path) -> str | None:
        """Why writing `path` could change a file outside the repository, or None when it cannot.

        A language folder (or any folder on the way, or the file itself) that is a symbolic link would make
        `build` or `update` write wherever the link points: into another checkout, a home folder, a system
        file. So every component from the root down to the file must be a real folder or file.
        """
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            parts = ("..",)
        if ".." in parts:
            return f"{path.as_posix()} is outside the repository {self.root.as_posix()}"
        for depth in range(1, len(parts) + 1):
            if (self.root.joinpath(*parts[:depth])).is_symlink():
                return (
                    f"{'/'.join(parts[:depth])} is a symbolic link, and writing through it could change "
                    "files outside the repository; replace the link with a real folder (or file)"
                )
        return None

    def require_safe(self, paths: Iterable[Path]) -> None:
        """Refuse, before anything is written, when any of `paths` could be written outside the repository."""
        reasons = [reason for reason in map(self.unsafe, paths) if reason]
        if reasons:
            raise TranslationError("nothing was written: " + "; ".join(dict.fromkeys(reasons)))

    def documents(self) -> dict[str, list[Unit]]:
        """Every translatable document by PO name: each lesson, then the README."""
        documents = {}
        for path in self.notebooks():
            documents[path.stem] = notebook_units(read_notebook(path), self.relative(path))
        documents["README"] = readme_units((self.root / README).read_text(encoding="utf-8"))
        return documents

    def chosen_languages(self, requested: Iterable[str] | None, new_allowed: bool = False) -> list[str]:
        """The languages asked for (each checked), or every language that has a po/ folder."""
        chosen = list(requested or self.languages())
        start = "start one with `python -m mmlesson i18n extract --lang <code>`"
        if not chosen:
            raise TranslationError(f"no languages in {TRANSLATIONS_DIR}/ yet: {start}")
        for lang in chosen:
            name = language_name(lang)
            if not new_allowed and lang not in self.languages():
                raise TranslationError(
                    f"there is no {name} translation yet ({lang}): {start.replace('<code>', lang)}"
                )
        return chosen
