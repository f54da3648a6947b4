"""The four steps translators and CI run: extract, update, build and check."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import polib
from nbformat import NotebookNode

from mmlesson.course.i18n.build import BUILDER, Language, english_readme
from mmlesson.course.i18n.catalog import Status, merge, read_po, template, write_text
from mmlesson.course.i18n.markdown import broken_links
from mmlesson.course.i18n.project import (
    README,
    SOURCE_DIR,
    Project,
    TranslationError,
    Unit,
    language_name,
    parse_notebook,
)


def source_label(name: str) -> str:
    return README if name == "README" else f"{SOURCE_DIR}/{name}.ipynb"


def extract(project: Project, langs: Iterable[str]) -> list[str]:
    """Create the PO files a language lacks (every entry untranslated); existing ones are left alone."""
    return _merge_all(project, langs, only_new=True)


def update(project: Project, langs: Iterable[str]) -> list[str]:
    """Merge the English into every PO file: changed entries turn fuzzy, new ones appear, none is lost."""
    return _merge_all(project, langs, only_new=False)


def _merge_all(project: Project, langs: Iterable[str], only_new: bool) -> list[str]:
    """Read and merge every PO file first, then write: a file that cannot be read stops the step before any
    file is written, so no PO file is ever rewritten from a misreading of it. A PO folder reached through a
    symbolic link is refused even when no file in it changes, as `build` refuses its folders."""
    lines, files, paths, documents = [], {}, [], project.documents()
    for lang in langs:
        language_name(lang)  # a code that is no language stops here, before any folder is made
        for name, units in documents.items():
            path = project.po_path(lang, name)
            label = project.relative(path)
            paths.append(path)
            if path.exists() and only_new:
                lines.append(f"{label}: exists, kept (`i18n update` merges changes of the English into it)")
                continue
            old = read_po(path, label) if path.exists() else None
            po, report = merge(polib.POFile() if old is None else old, units, lang, source_label(name))
            if old is None or str(po) != str(old):
                files[path] = str(po) + "\n"
            created = f"{label}: created, {len(units)} entries to translate"
            lines.append(created if old is None else f"{label}: {report}")
    project.require_safe(paths)
    _write_all(project, files | templates(project, documents))
    return lines


def templates(project: Project, documents: dict[str, list[Unit]]) -> dict[Path, str]:
    """The POT file of every document (`project.documents()`), as `extract` and `update` write it."""
    return {
        project.template_path(name): str(template(units, source_label(name))) + "\n"
        for name, units in documents.items()
    }


def build(project: Project, langs: Iterable[str]) -> tuple[list[str], list[str]]:
    """Write every translated notebook and README whose translation is complete; report the others.

    A document with any entry untranslated, fuzzy, stale or broken is not written at all: a learner never
    gets a notebook that switches language half-way. Every PO file is read before anything is written, so
    one that cannot be read stops the build with nothing written.
    """
    files, problems = {}, []
    for lang in langs:
        language = Language(project, lang)
        built, missing = language.expected(language.statuses())
        files.update(built)
        problems += missing
    files[project.root / README] = english_readme(project)
    return _write_all(project, files), problems


def _write_all(project: Project, files: dict[Path, str]) -> list[str]:
    """Write the files whose text changed, once none of them could be written outside the repository."""
    project.require_safe(files)
    changed = [path for path, text in files.items() if not path.exists() or _read(path) != text]
    for path in changed:
        write_text(path, files[path])
    return [project.relative(path) for path in changed]


def _read(path: Path) -> str | None:
    """A file's text, or None when it is not UTF-8 text (then it is rewritten)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def check(project: Project, langs: Iterable[str]) -> tuple[list[str], str]:
    """Everything CI insists on, as a list of problems, and a coverage table per language."""
    problems, rows = [], []
    for lang in langs:
        language = Language(project, lang)
        statuses = language.statuses()
        files, _ = language.expected(statuses)
        on_disk = {path: _read(path) or "" for path in files if path.exists()}
        for status in statuses.values():
            problems += status.problems
        problems += _built_file_problems(language, files, on_disk) + language.figure_problems()
        glossary = language.folder / "GLOSSARY.md"
        if not glossary.exists():
            problems.append(
                f"{project.relative(glossary)} is missing: list the key terms and their translations"
            )
        current = sum(on_disk.get(path) == text for path, text in files.items())
        rows.append(_coverage_row(language, statuses, current))
    if project.languages() and english_readme(project) != (project.root / README).read_text(encoding="utf-8"):
        problems.append(f"{README}: the table of languages is out of date; run `{BUILDER}`")
    problems += [
        f"{project.relative(path)} is missing or out of date; run `python -m mmlesson i18n update`"
        for path, text in templates(project, project.documents()).items()
        if not path.exists() or _read(path) != text
    ]
    return problems, _table(rows)


def _built_file_problems(language: Language, files: dict[Path, str], on_disk: dict[Path, str]) -> list[str]:
    """Built files that are missing, out of date, hand-edited, link to nothing, or sit behind a symbolic link
    (`build` would refuse to write them); and strays.

    `files` holds what each file should be, `on_disk` what those that exist are.
    """
    problems = []
    for path, text in files.items():
        label = language.label(path)
        if path not in on_disk:
            problems.append(f"{label} has not been built; run `{BUILDER}`")
            continue
        if path.suffix == ".ipynb" and _cells(on_disk[path], "code") != _cells(text, "code"):
            problems.append(
                f"{label} is out of date: its code or outputs differ from the English notebook's (the "
                f"English changed, or this file was edited by hand); run `{BUILDER}`"
            )
        elif on_disk[path] != text:
            problems.append(f"{label} is out of date with its PO file; run `{BUILDER}`")
        problems += [
            f"{label}: broken link {target}"
            for target in broken_links(_markdown(on_disk[path], path), path.parent)
        ]
    # A stray is a built notebook whose English is gone, not one whose PO file has problems right now.
    sources = {f"{name}.ipynb" for name in language.documents if name != "README"}
    strays = language.folder.glob(f"{SOURCE_DIR}/*.ipynb")
    problems += [
        f"{language.label(p)} has no English source; delete it" for p in strays if p.name not in sources
    ]
    unsafe = {path: language.project.unsafe(path) for path in files}
    return problems + [
        f"{language.label(path)} cannot be built: {why}" for path, why in unsafe.items() if why
    ]


def _cells(notebook_text: str, kind: str) -> list[NotebookNode]:
    """The cells of one kind in a notebook's JSON; none if the file no longer parses (edited by hand)."""
    try:
        return [c for c in parse_notebook(notebook_text, "")["cells"] if c["cell_type"] == kind]
    except (TranslationError, KeyError):
        return []


def _markdown(text: str, path: Path) -> str:
    """The markdown of a built file: all of a README, the markdown cells of a notebook."""
    if path.suffix != ".ipynb":
        return text
    return "\n".join("".join(c["source"]) for c in _cells(text, "markdown"))


def _coverage_row(language: Language, statuses: dict[str, Status], current: int) -> list[str]:
    """One line of the coverage table; `current` counts the built files that are up to date."""
    total = sum(s.total for s in statuses.values())
    translated = sum(s.translated for s in statuses.values())
    counts = [sum(getattr(s, what) for s in statuses.values()) for what in ("fuzzy", "untranslated", "stale")]
    share = f"{translated}/{total} ({100 * translated / max(total, 1):.0f}%)"
    return [language.lang, language.name, share, *map(str, counts), f"{current}/{len(statuses)}"]


def _table(rows: list[list[str]]) -> str:
    header = ["lang", "language", "translated", "fuzzy", "untranslated", "stale", "built and current"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]
    )
