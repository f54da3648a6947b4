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

Modules, in the order the data flows: `project` (what there is to translate, and where writing is safe),
`catalog` (PO files, read as UTF-8 only), `markdown` (what a translation must keep), `safety` (what it may
not add: HTML, links elsewhere), `build` (the translated files), `commands` (the four steps).
"""

from mmlesson.course.i18n.build import lesson_table, notebook_title, repository_url
from mmlesson.course.i18n.catalog import merge, read_po, save_po
from mmlesson.course.i18n.commands import build, check, extract, update
from mmlesson.course.i18n.markdown import markdown_problems
from mmlesson.course.i18n.project import Project, TranslationError, Unit, language_name
from mmlesson.course.i18n.safety import safety_problems

__all__ = [
    "Project",
    "TranslationError",
    "Unit",
    "build",
    "check",
    "extract",
    "language_name",
    "lesson_table",
    "markdown_problems",
    "merge",
    "notebook_title",
    "read_po",
    "repository_url",
    "safety_problems",
    "save_po",
    "update",
]
