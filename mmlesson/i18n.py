"""Translated lessons: English notebooks <-> gettext PO files <-> translated notebooks.

Translators work in PO files because every translation tool speaks them (Poedit, Weblate, Crowdin, Lokalize)
and because gettext already knows how to carry a translation across a change of the source: the changed entry
becomes *fuzzy*, with the old English beside it, until a person checks it. The layout, under the repository:

    notebooks/<name>.ipynb                       the English source of truth
    translations/<lang>/po/<name>.po             one entry per markdown cell, keyed (msgctxt) by
                                                 the cell id, so moving a cell keeps its translation
    translations/<lang>/po/README.po             one entry per block of README.md
    translations/<lang>/notebooks/<name>.ipynb   built: translated markdown, English code cells and outputs
    translations/<lang>/README.md                built: translated README, lesson table linking the above

`python -m mmlesson i18n extract|update|build|check` runs the four steps; `check` is what CI runs. A
notebook's title is its first `# ` heading, translated with the cell that holds it; `build` also writes it
into the notebook's metadata and the translated README's lesson table.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import posixpath
import re
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import polib

from mmlesson.errors import MMLessonError

SOURCE_DIR = "notebooks"
TRANSLATIONS_DIR = "translations"
README = "README.md"
# Regions of a README written by a program, never translated: (kind, first line starts with, last line).
GENERATED = (
    ("lessons", "<!-- lessons:start", "<!-- lessons:end -->"),
    ("languages", "<!-- languages:start", "<!-- languages:end -->"),
)
BUILDER = "python -m mmlesson i18n build"
# Words of the generated lesson table, translated like any other entry of README.po (msgctxt "table: <word>").
TABLE_WORDS = ("Lesson", "Run")
SIMILAR_ENOUGH = 0.6  # difflib ratio above which an old translation is offered (fuzzy) for new English text


class TranslationError(MMLessonError):
    """A translation problem; the message names the file and the entry."""


# --- languages -------------------------------------------------------------------------------------------


def language_name(code: str) -> str:
    """'Tiếng Việt / Vietnamese' for 'vi'; a clear error for a code no language has, or for 'zh_CN'.

    Where a script is named (zh-CN is written in Simplified characters), the script says more than the
    country, so the name shows the script: '中文 (简体) / Chinese (Simplified)'.
    """
    from babel import Locale, UnknownLocaleError

    try:
        locale = Locale.parse(code, sep="-")
    except (UnknownLocaleError, ValueError, TypeError):
        raise TranslationError(
            f"{code!r} is not a language code: use an IETF tag such as vi, zh-CN, es or pt-BR "
            "(a hyphen, not an underscore)"
        ) from None
    if locale.script:
        locale = Locale(locale.language, script=locale.script)
    own, english = locale.get_display_name(), locale.get_display_name("en")
    return own if own == english else f"{own} / {english}"


# --- what there is to translate --------------------------------------------------------------------------


@dataclass(frozen=True)
class Unit:
    """One piece of English to translate: its key (a cell id, or None to key by the text), text and place."""

    key: str | None
    text: str
    where: tuple[str, str]


def read_notebook(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TranslationError(f"cannot read notebook {path.as_posix()}: {error}") from None


def notebook_units(notebook: dict, label: str) -> list[Unit]:
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

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

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


# --- PO files --------------------------------------------------------------------------------------------


def read_po(path: Path, label: str) -> polib.POFile:
    """The PO file, or an error that names it and the line polib stumbled on."""
    try:
        return polib.pofile(str(path), wrapwidth=100)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        detail = str(error).replace(str(path), label)
        raise TranslationError(
            f"{label} cannot be read: {detail}. Fix it with a PO editor (Poedit)."
        ) from None


def new_po(lang: str, source: str) -> polib.POFile:
    po = polib.POFile(wrapwidth=100)
    po.metadata = {
        "Project-Id-Version": "mmlesson",
        "Language": lang,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
        "X-Source": source,
    }
    return po


def entry_label(label: str, entry: polib.POEntry) -> str:
    key = entry.msgctxt or entry.msgid.splitlines()[0][:50]
    return f"{label}, entry {key!r} (line {entry.linenum})"


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file, so a crash never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_po(po: polib.POFile, path: Path) -> None:
    write_atomically(path, str(po) + "\n")


@dataclass
class MergeReport:
    kept: int = 0
    fuzzy: int = 0
    new: int = 0
    obsolete: int = 0

    def __str__(self) -> str:
        return f"{self.kept} kept, {self.fuzzy} changed (now fuzzy), {self.new} new, {self.obsolete} obsolete"


def merge(old: polib.POFile, units: list[Unit], lang: str, source: str) -> tuple[polib.POFile, MergeReport]:
    """The PO file for `units`, reusing every translation `old` holds; nothing translated is ever dropped.

    An entry whose key still exists keeps its translation; if its English changed it becomes fuzzy, with the
    old English kept as `#| msgid` for the translator to compare. English seen before under another key
    reuses that translation; English close to an unused old entry gets it as a fuzzy suggestion. Old
    translated entries nobody uses any more stay at the end as obsolete (`#~`), as msgmerge does.
    """
    po, report = new_po(lang, source), MergeReport()
    po.metadata.update({k: v for k, v in old.metadata.items() if k not in po.metadata})
    by_key = {e.msgctxt: e for e in old if e.msgctxt is not None and not e.obsolete}
    by_text = {e.msgid: e for e in old if e.msgstr}
    used: set[int] = set()
    for unit in units:
        entry = polib.POEntry(msgctxt=unit.key, msgid=unit.text, occurrences=[unit.where])
        before = by_key.get(unit.key) if unit.key is not None else None
        before = before or by_text.get(unit.text)
        if before is None:
            before = _closest(unit.text, [e for e in old if e.msgstr and id(e) not in used])
        if before is None:
            report.new += 1
        else:
            used.add(id(before))
            entry.msgstr, entry.flags = before.msgstr, list(before.flags)
            if before.msgid == unit.text:
                entry.previous_msgid = before.previous_msgid
                report.kept += 1
            else:
                entry.previous_msgid = before.msgid
                entry.flags = sorted(set(entry.flags) | {"fuzzy"})
                report.fuzzy += 1
        po.append(entry)
    for leftover in old:
        if leftover.msgstr and id(leftover) not in used:
            kept = copy.copy(leftover)
            kept.obsolete = True
            po.append(kept)
            report.obsolete += 1
    return po, report


def _closest(text: str, candidates: list[polib.POEntry]) -> polib.POEntry | None:
    scored = [(difflib.SequenceMatcher(None, text, c.msgid).ratio(), i) for i, c in enumerate(candidates)]
    best = max(scored, default=(0.0, -1))
    return candidates[best[1]] if best[0] >= SIMILAR_ENOUGH else None


# --- what a translation must keep ------------------------------------------------------------------------

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


def _rendered(markdown: str) -> tuple[Counter, str]:
    """The tags that rendering `markdown` produces, and its visible text outside code and math."""
    import mistune

    html = mistune.create_markdown(plugins=["table", "math"])(markdown)
    tags = Counter(re.findall(r"<(\w+)[\s>]", html))
    visible = re.sub(
        r"<(code|pre|span class=\"math\"|div class=\"math\")[^>]*>.*?</\w+>", "", html, flags=re.S
    )
    return tags, re.sub(r"<[^>]+>", "", visible)


def _differences(what: str, expected: Counter, found: Counter) -> list[str]:
    lost = [f"{what} lost or changed: {_short(item)}" for item in (expected - found)]
    added = [f"{what} not in the English: {_short(item)}" for item in (found - expected)]
    return lost + added


def _short(text: str, limit: int = 70) -> str:
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


# --- from PO files to translated documents ---------------------------------------------------------------


@dataclass
class Status:
    """How far one PO file is: counts for the coverage table, and every problem with its entry named."""

    total: int = 0
    translated: int = 0
    fuzzy: int = 0
    untranslated: int = 0
    stale: int = 0
    problems: list[str] = field(default_factory=list)
    texts: dict[tuple[str | None, str], str] = field(default_factory=dict)


def po_status(po: polib.POFile, units: list[Unit], label: str) -> Status:
    """Compare a PO file with the English it should translate; collect the usable translations."""
    status = Status(total=len(units))
    wanted = {(u.key, u.text) for u in units}
    keys = {u.key: u.text for u in units if u.key is not None}
    present, untranslated = set(), []
    for entry in (e for e in po if not e.obsolete):
        where, key = entry_label(label, entry), (entry.msgctxt, entry.msgid)
        present.add(key)
        if key not in wanted:
            status.stale += 1
            why = "its English has changed" if entry.msgctxt in keys else "its English is gone"
            status.problems.append(f"{where}: stale, {why}; run `python -m mmlesson i18n update`")
        elif not entry.msgstr.strip():
            untranslated.append(f"{entry.msgctxt or entry.msgid[:30]!r} (line {entry.linenum})")
        elif entry.fuzzy:
            status.fuzzy += 1
            status.problems.append(f"{where}: fuzzy (the English changed); review it and clear the flag")
        else:
            broken = markdown_problems(entry.msgid, entry.msgstr)
            status.problems += [f"{where}: {problem}" for problem in broken]
            if not broken:
                status.translated += 1
                status.texts[key] = entry.msgstr
    if untranslated:
        status.untranslated += len(untranslated)
        status.problems.append(
            f"{label}: {len(untranslated)} entries not translated yet: {', '.join(untranslated)}"
        )
    missing = len(wanted - present)
    if missing:
        status.untranslated += missing
        status.problems.append(
            f"{label}: {missing} English entries are missing; run `python -m mmlesson i18n update`"
        )
    return status


def repository_url(root: Path) -> str:
    """The course's address, written once in pyproject.toml ([project.urls] Repository)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project["urls"]["Repository"].rstrip("/")


def notebook_title(notebook: dict) -> str:
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

    def label(self, path: Path) -> str:
        return self.project.relative(path)

    def status(self, name: str) -> Status:
        path = self.project.po_path(self.lang, name)
        if not path.exists():
            status = Status(total=len(self.documents[name]), untranslated=len(self.documents[name]))
            status.problems.append(f"{self.label(path)} is missing; run `python -m mmlesson i18n extract`")
            return status
        return po_status(read_po(path, self.label(path)), self.documents[name], self.label(path))

    def built_notebook_path(self, name: str) -> Path:
        return self.folder / SOURCE_DIR / f"{name}.ipynb"

    def translated_paths(self) -> set[str]:
        return {f"{SOURCE_DIR}/{name}.ipynb" for name in self.documents if name != "README"} | {README}

    def notebook(self, name: str, status: Status) -> str:
        """The translated notebook as JSON text: translated markdown, the English code cells and outputs."""
        self._require_complete(name, status, self.built_notebook_path(name))
        notebook = read_notebook(self.project.root / SOURCE_DIR / f"{name}.ipynb")
        built_dir = self.label(self.built_notebook_path(name).parent)
        for cell in notebook["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "markdown" and source.strip():
                text = relocate_links(
                    status.texts[(cell["id"], source)], SOURCE_DIR, built_dir, self.translated_paths()
                )
                cell["source"] = text.splitlines(keepends=True)
        notebook["metadata"]["title"] = notebook_title(notebook)
        notebook["metadata"]["mmlesson"] = {"language": self.lang, "source": f"{SOURCE_DIR}/{name}.ipynb"}
        return json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n"

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
                parts.append(relocate_links(text, ".", built_dir, self.translated_paths()))
            elif block.kind == "verbatim":
                parts.append(block.text)
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
                text = self.notebook(name, status)
            except TranslationError as error:
                problems.append(str(error))
                continue
            files[self.built_notebook_path(name)] = text
            titles.append(json.loads(text)["metadata"]["title"])
        readme = self.folder / README
        if len(titles) < len(statuses) - 1:
            problems.append(f"{self.label(readme)} was not written: it needs every lesson translated first")
        else:
            try:
                files[readme] = self.readme(statuses["README"], titles)
            except TranslationError as error:
                problems.append(str(error))
        return files, problems


def _region(kind: str, rows: list[str], writer: str) -> str:
    start, end = next((g[1], g[2]) for g in GENERATED if g[0] == kind)
    return "\n".join([f"{start} (generated by {writer}; do not edit by hand) -->", *rows, end])


def language_table(project: Project, seen_from: str = ".") -> list[str]:
    """The README's table of languages, its links relative to the folder `seen_from` (from the root)."""

    def link(path: str) -> str:
        name = posixpath.basename(path) + ("/" if "." not in posixpath.basename(path) else "")
        return f"[{name}]({posixpath.relpath(path, seen_from)})"

    rows = ["| language | README | lessons | glossary |", "|---|---|---|---|"]
    rows.append(f"| English | {link(README)} | {link(SOURCE_DIR)} | |")
    for lang in project.languages():
        folder = f"{TRANSLATIONS_DIR}/{lang}"
        files = [f"{folder}/{README}", f"{folder}/{SOURCE_DIR}", f"{folder}/GLOSSARY.md"]
        rows.append(f"| {language_name(lang)} | " + " | ".join(link(f) for f in files) + " |")
    return rows


def english_readme(project: Project) -> str:
    """README.md with its table of languages brought up to date (the rest is as it is)."""
    text = (project.root / README).read_text(encoding="utf-8")
    start, end = GENERATED[1][1], GENERATED[1][2]
    if start not in text:
        raise TranslationError(f"{README} has no {start} ... {end} region for the table of languages")
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    return head + _region("languages", language_table(project), BUILDER) + tail


# --- the four commands -----------------------------------------------------------------------------------


def source_label(name: str) -> str:
    return README if name == "README" else f"{SOURCE_DIR}/{name}.ipynb"


def extract(project: Project, langs: Iterable[str]) -> list[str]:
    """Create the PO files a language lacks (every entry untranslated); existing ones are left alone."""
    return _merge_all(project, langs, only_new=True)


def update(project: Project, langs: Iterable[str]) -> list[str]:
    """Merge the English into every PO file: changed entries turn fuzzy, new ones appear, none is lost."""
    return _merge_all(project, langs, only_new=False)


def _merge_all(project: Project, langs: Iterable[str], only_new: bool) -> list[str]:
    lines = []
    for lang in langs:
        for name, units in project.documents().items():
            path = project.po_path(lang, name)
            label = project.relative(path)
            if path.exists() and only_new:
                lines.append(f"{label}: exists, kept (`i18n update` merges changes of the English into it)")
                continue
            old = read_po(path, label) if path.exists() else polib.POFile()
            po, report = merge(old, units, lang, source_label(name))
            if not path.exists() or str(po) != str(old):
                save_po(po, path)
            lines.append(
                f"{label}: {report}" if old else f"{label}: created, {len(units)} entries to translate"
            )
    return lines


def build(project: Project, langs: Iterable[str]) -> tuple[list[str], list[str]]:
    """Write every translated notebook and README whose translation is complete; report the others.

    A document with any entry untranslated, fuzzy, stale or broken is not written at all: a learner never
    gets a notebook that switches language half-way.
    """
    written, problems = [], []
    for lang in langs:
        language = Language(project, lang)
        files, missing = language.expected(language.statuses())
        problems += missing
        for path, text in files.items():
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                write_atomically(path, text)
                written.append(project.relative(path))
    readme = project.root / README
    text = english_readme(project)
    if readme.read_text(encoding="utf-8") != text:
        write_atomically(readme, text)
        written.append(README)
    return written, problems


def check(project: Project, langs: Iterable[str]) -> tuple[list[str], str]:
    """Everything CI insists on, as a list of problems, and a coverage table per language."""
    problems, rows = [], []
    for lang in langs:
        language = Language(project, lang)
        statuses = language.statuses()
        files, _ = language.expected(statuses)
        for status in statuses.values():
            problems += status.problems
        problems += _built_file_problems(language, files)
        glossary = language.folder / "GLOSSARY.md"
        if not glossary.exists():
            problems.append(
                f"{project.relative(glossary)} is missing: list the key terms and their translations"
            )
        rows.append(_coverage_row(language, statuses, files))
    if project.languages() and english_readme(project) != (project.root / README).read_text(encoding="utf-8"):
        problems.append(f"{README}: the table of languages is out of date; run `{BUILDER}`")
    return problems, _table(rows)


def _built_file_problems(language: Language, files: dict[Path, str]) -> list[str]:
    """Built files that are missing, out of date, hand-edited, or link to nothing; and strays."""
    problems = []
    for path, text in files.items():
        label = language.label(path)
        if not path.exists():
            problems.append(f"{label} has not been built; run `{BUILDER}`")
            continue
        on_disk = path.read_text(encoding="utf-8")
        if path.suffix == ".ipynb" and _code_cells(on_disk) != _code_cells(text):
            problems.append(f"{label}: its code cells differ from the English notebook's; run `{BUILDER}`")
        elif on_disk != text:
            problems.append(f"{label} is out of date with its PO file or the English; run `{BUILDER}`")
        problems += [
            f"{label}: broken link {target}" for target in broken_links(_markdown(on_disk, path), path.parent)
        ]
    expected = {path.name for path in files if path.suffix == ".ipynb"}
    strays = language.folder.glob(f"{SOURCE_DIR}/*.ipynb")
    problems += [
        f"{language.label(p)} has no English source; delete it" for p in strays if p.name not in expected
    ]
    return problems


def _code_cells(notebook_text: str) -> list[dict]:
    try:
        return [c for c in json.loads(notebook_text)["cells"] if c["cell_type"] == "code"]
    except (ValueError, KeyError):
        return []


def _markdown(text: str, path: Path) -> str:
    if path.suffix != ".ipynb":
        return text
    try:
        cells = json.loads(text)["cells"]
    except (ValueError, KeyError):
        return ""
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def _coverage_row(language: Language, statuses: dict[str, Status], files: dict[Path, str]) -> list[str]:
    total = sum(s.total for s in statuses.values())
    translated = sum(s.translated for s in statuses.values())
    current = sum(p.exists() and p.read_text(encoding="utf-8") == t for p, t in files.items())
    counts = [sum(getattr(s, what) for s in statuses.values()) for what in ("fuzzy", "untranslated", "stale")]
    share = f"{translated}/{total} ({100 * translated / max(total, 1):.0f}%)"
    return [language.lang, language.name, share, *map(str, counts), f"{current}/{len(statuses)}"]


def _table(rows: list[list[str]]) -> str:
    header = ["lang", "language", "translated", "fuzzy", "untranslated", "stale", "built and current"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]
    )
