"""The translation tooling on a small course made up for the test, and the real translations' check.

Bad input of every kind (broken markdown, unreadable PO files, unknown languages, HTML, foreign links,
symbolic links, ...) is tried in tests/test_bad_input_i18n.py, one row of its table per case; the helpers
here (`make_course`, `make_translated`, `i18n_command`, ...) build the course those rows spoil.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
from pathlib import Path

import nbformat
import polib
import pytest

from mmlesson.course import i18n
from mmlesson.course.cli import main

ROOT = Path(__file__).resolve().parents[1]

TITLE_CELL = "# Demo: a lesson\n\nThe loss is $-\\log p$; see ![the figure](../images/figure.png) and `f(x)`."
BODY_CELL = "## Part 1\n\nRun the cell below:\n\n```python\nprint(1)\n```"
README = """# Demo course

An intro with a [link](notebooks/00_demo.ipynb).

<!-- lessons:start (generated) -->
<!-- lessons:end -->

## Languages

<!-- languages:start -->
<!-- languages:end -->

```bash
pip install demo
```
"""

# What a translator of the fixture might write, keyed by the English.
FRENCH = {
    TITLE_CELL: "# Démo : une leçon\n\nLa perte vaut $-\\log p$ ; voir ![la figure](../images/figure.png)"
    " et `f(x)`.",
    BODY_CELL: "## Partie 1\n\nExécutez la cellule ci-dessous :\n\n```python\nprint(1)\n```",
    "# Demo course": "# Cours de démo",
    "An intro with a [link](notebooks/00_demo.ipynb).": "Une intro, un [lien](notebooks/00_demo.ipynb).",
    "## Languages": "## Langues",
    "Lesson": "Leçon",
    "Run": "Lancer",
}
FRENCH_TITLE, FRENCH_BODY = FRENCH[TITLE_CELL], FRENCH[BODY_CELL]


def markdown_cell(cell_id: str, text: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": text.splitlines(keepends=True)}


def code_cell(cell_id: str, code: str, output: str) -> dict:
    outputs = [{"name": "stdout", "output_type": "stream", "text": [output]}]
    return {
        "cell_type": "code",
        "execution_count": 1,
        "id": cell_id,
        "metadata": {},
        "outputs": outputs,
        "source": [code],
    }


TITLE, BODY = markdown_cell("title", TITLE_CELL), markdown_cell("body", BODY_CELL)
CODE = code_cell("code", "x = 1\n", "1\n")


def lesson(*cells: dict) -> list[dict]:
    """The fixture lesson's cells: its title cell, a code cell and a body cell, unless others are given."""
    return list(cells) or [TITLE, CODE, BODY]


def write_notebook(root: Path, cells: list[dict]) -> None:
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (root / "notebooks" / "00_demo.ipynb").write_text(json.dumps(notebook, indent=1), encoding="utf-8")


def make_course(root: Path) -> Path:
    """A repository at `root` with one notebook (two markdown cells, one code cell), a README and a figure."""
    for folder in ("notebooks", "images", "translations"):
        (root / folder).mkdir(parents=True)
    (root / "images" / "figure.png").write_bytes(b"png")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n[project.urls]\nRepository = "https://github.com/demo/demo"\n',
        encoding="utf-8",
    )
    (root / "README.md").write_text(README, encoding="utf-8")
    write_notebook(root, lesson())
    return root


@pytest.fixture
def course(tmp_path: Path) -> Path:
    return make_course(tmp_path)


def po_path(root: Path, name: str = "00_demo") -> Path:
    return root / "translations" / "fr" / "po" / f"{name}.po"


def translate(root: Path, translations: dict[str, str] = FRENCH) -> None:
    """Fill every PO entry whose English we know, as a translator would, and clear fuzzy flags."""
    for path in (po_path(root), po_path(root, "README")):
        po = polib.pofile(str(path))
        for entry in po:
            if entry.msgid in translations:
                entry.msgstr = translations[entry.msgid]
                entry.flags = [f for f in entry.flags if f != "fuzzy"]
        po.save()


def i18n_command(root: Path, action: str, *options: str) -> tuple[int, str]:
    """Run `python -m mmlesson i18n <action> --root <root> <options>`; its exit status and all it printed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["i18n", action, "--root", str(root), *options])
    return status, out.getvalue() + err.getvalue()


def run(root: Path, action: str) -> tuple[int, str]:
    return i18n_command(root, action, "--lang", "fr")


def make_translated(root: Path) -> Path:
    """The fixture course at `root`, extracted, translated into French and built."""
    make_course(root)
    assert run(root, "extract")[0] == 0
    translate(root)
    (root / "translations" / "fr" / "GLOSSARY.md").write_text("| English | français |\n", encoding="utf-8")
    status, output = run(root, "build")
    assert status == 0, output
    return root


@pytest.fixture
def translated(tmp_path: Path) -> Path:
    return make_translated(tmp_path)


def test_extract_writes_one_untranslated_entry_per_markdown_cell_keyed_by_cell_id(course):
    status, output = run(course, "extract")
    assert status == 0 and "created, 2 entries" in output
    po = polib.pofile(str(po_path(course)))
    assert [(e.msgctxt, e.msgid) for e in po] == [("title", TITLE_CELL), ("body", BODY_CELL)]
    assert all(e.msgstr == "" for e in po) and po.metadata["Language"] == "fr"
    readme = [e.msgid for e in polib.pofile(str(po_path(course, "README")))]
    assert "# Demo course" in readme and "Lesson" in readme
    assert not any("pip install" in text or "lessons:start" in text for text in readme)


def test_check_fails_until_translated_and_built_then_passes(course):
    run(course, "extract")
    status, output = run(course, "check")
    assert status == 1 and "2 entries not translated yet" in output and "0/7 (0%)" in output
    translate(course)
    status, output = run(course, "check")
    assert status == 1 and "has not been built" in output and "GLOSSARY.md is missing" in output
    (course / "translations" / "fr" / "GLOSSARY.md").write_text("terms\n", encoding="utf-8")
    assert run(course, "build")[0] == 0
    status, output = run(course, "check")
    assert status == 0, output
    assert "7/7 (100%)" in output and "2/2" in output


def test_built_notebook_has_translated_markdown_and_english_code_and_outputs(translated):
    english = json.loads((translated / "notebooks" / "00_demo.ipynb").read_text(encoding="utf-8"))
    built = json.loads(
        (translated / "translations" / "fr" / "notebooks" / "00_demo.ipynb").read_text(encoding="utf-8")
    )
    assert built["cells"][1] == english["cells"][1]
    assert "".join(built["cells"][2]["source"]) == FRENCH[BODY_CELL]
    title = "".join(built["cells"][0]["source"])
    assert "](../../../images/figure.png)" in title, (
        "the image link must be rewritten to resolve from its new folder"
    )
    assert (translated / "translations" / "fr" / "notebooks" / "../../../images/figure.png").exists()
    assert built["metadata"]["title"] == "Démo : une leçon"
    nbformat.validate(nbformat.from_dict(built))  # Jupyter, nbval and GitHub can open it


def test_built_readme_links_translated_notebooks_and_keeps_code(translated):
    text = (translated / "translations" / "fr" / "README.md").read_text(encoding="utf-8")
    assert "# Cours de démo" in text and "```bash\npip install demo\n```" in text
    assert "| # | Leçon | Lancer |" in text
    assert "[Démo : une leçon](notebooks/00_demo.ipynb)" in text
    assert "blob/main/translations/fr/notebooks/00_demo.ipynb" in text, (
        "the Colab badge opens the translation"
    )
    assert "[lien](notebooks/00_demo.ipynb)" in text, (
        "a link to a translated document points at the translation"
    )
    english = (translated / "README.md").read_text(encoding="utf-8")
    assert "[README.md](translations/fr/README.md)" in english, "the English README lists French"
    assert "[README.md](../../README.md)" in text, "the French README links back to the English one"


def test_changed_english_turns_fuzzy_new_cell_untranslated_and_build_refuses(translated):
    changed = BODY_CELL.replace("Run the cell below", "Run this cell")
    write_notebook(
        translated, lesson(TITLE, CODE, markdown_cell("body", changed), markdown_cell("new", "## Part 2"))
    )
    built = translated / "translations" / "fr" / "notebooks" / "00_demo.ipynb"
    before = built.read_text(encoding="utf-8")
    status, output = run(translated, "check")
    assert status == 1 and "stale, its English has changed" in output
    status, output = run(translated, "update")
    assert status == 0 and "1 kept, 1 changed (now fuzzy), 1 new" in output
    po = {e.msgctxt: e for e in polib.pofile(str(po_path(translated)))}
    assert (
        po["body"].fuzzy and po["body"].msgstr == FRENCH[BODY_CELL] and po["body"].previous_msgid == BODY_CELL
    )
    assert po["new"].msgstr == "" and po["title"].msgstr == FRENCH[TITLE_CELL]
    status, output = run(translated, "build")
    assert (
        status == 1 and "was not written" in output and "fuzzy" in output and "not translated yet" in output
    )
    assert built.read_text(encoding="utf-8") == before, "build never writes a half-translated notebook"
    translate(
        translated,
        {
            changed: "## Partie 1\n\nExécutez cette cellule :\n\n```python\nprint(1)\n```",
            "## Part 2": "## Partie 2",
        },
    )
    status, output = run(translated, "build")
    assert status == 0, output
    assert run(translated, "check")[0] == 0


def test_reordered_cells_keep_their_translations(translated):
    write_notebook(translated, lesson(BODY, CODE, TITLE))
    status, output = run(translated, "update")
    assert "2 kept, 0 changed (now fuzzy), 0 new, 0 obsolete" in output
    assert run(translated, "build")[0] == 0
    assert run(translated, "check")[0] == 0


def test_removed_cell_becomes_obsolete_and_a_similar_new_one_gets_a_fuzzy_suggestion(translated):
    rewritten = BODY_CELL.replace("below", "underneath")
    write_notebook(translated, lesson(TITLE, markdown_cell("renamed", rewritten)))
    run(translated, "update")
    po = polib.pofile(str(po_path(translated)))
    renamed = next(e for e in po if e.msgctxt == "renamed")
    assert renamed.fuzzy and renamed.msgstr == FRENCH[BODY_CELL], "similar English offers the old translation"
    write_notebook(translated, lesson(TITLE))
    run(translated, "update")
    obsolete = [e for e in polib.pofile(str(po_path(translated))) if e.obsolete]
    assert [e.msgstr for e in obsolete] == [FRENCH[BODY_CELL]], (
        "a translation nobody uses is kept, as obsolete"
    )


def test_new_english_outputs_make_the_built_notebook_out_of_date_until_rebuilt(translated):
    write_notebook(translated, lesson(TITLE, code_cell("code", "x = 1\n", "2\n"), BODY))
    status, output = run(translated, "check")
    assert status == 1 and "00_demo.ipynb is out of date: its code or outputs differ" in output
    assert run(translated, "build")[0] == 0
    built = json.loads(
        (translated / "translations" / "fr" / "notebooks" / "00_demo.ipynb").read_text(encoding="utf-8")
    )
    assert built["cells"][1]["outputs"][0]["text"] == ["2\n"]
    assert run(translated, "check")[0] == 0


def test_bold_that_does_not_close_next_to_full_width_punctuation_is_caught():
    english = "**Learning goals.** After this lesson"
    assert i18n.markdown_problems(english, "**学习目标。** 学完本课") == []
    assert "bold marker" in i18n.markdown_problems(english, "**学习目标。**学完本课")[0]


def test_markdown_problems_accepts_reordered_code_and_math():
    english = "Compare `a` with `b` where $x$ is small."
    assert i18n.markdown_problems(english, "Où $x$ est petit, compare `b` avec `a`.") == []


def test_extract_keeps_existing_work(translated):
    status, output = run(translated, "extract")
    assert status == 0 and "exists, kept" in output
    assert polib.pofile(str(po_path(translated))).percent_translated() == 100


def test_update_keeps_translator_comments_flags_and_the_file_comment(translated):
    po = polib.pofile(str(po_path(translated)))
    po.header = "French translation of the demo.\nAna <ana@example.org>, 2026."
    body = next(e for e in po if e.msgctxt == "body")
    body.tcomment, body.flags = "Keep the English word 'cell'.", ["python-format"]
    po.save()
    write_notebook(translated, lesson(TITLE, CODE, markdown_cell("body", BODY_CELL + "\n\nThen look.")))
    assert run(translated, "update")[0] == 0
    po = polib.pofile(str(po_path(translated)))
    body = next(e for e in po if e.msgctxt == "body")
    assert po.header == "French translation of the demo.\nAna <ana@example.org>, 2026."
    assert body.tcomment == "Keep the English word 'cell'." and body.flags == ["fuzzy", "python-format"]


def test_templates_are_written_with_the_po_files_and_check_wants_them_current(translated):
    pot = translated / "translations" / "templates" / "00_demo.pot"
    entries = polib.pofile(str(pot))
    assert [(e.msgctxt, e.msgid, e.msgstr) for e in entries] == [
        ("title", TITLE_CELL, ""),
        ("body", BODY_CELL, ""),
    ]
    assert "Language" not in entries.metadata and "nplurals=INTEGER" in entries.metadata["Plural-Forms"]
    assert polib.pofile(str(po_path(translated))).metadata["Plural-Forms"] == i18n.catalog.plural_forms("fr")
    write_notebook(translated, lesson(TITLE, CODE, markdown_cell("body", "## Part 1, again")))
    status, output = run(translated, "check")
    assert status == 1 and "translations/templates/00_demo.pot is missing or out of date" in output
    run(translated, "update")
    assert "templates" not in run(translated, "check")[1]
    assert polib.pofile(str(pot))[1].msgid == "## Part 1, again"


def test_lines_break_only_at_the_texts_newlines():
    """No width wrap: what Weblate writes with "Only wrap lines at newlines", so its commits round-trip."""
    long_line = "A sentence that runs on " * 10
    po = i18n.catalog.new_po("fr", "README.md")
    po.append(polib.POEntry(msgid=long_line, msgstr=long_line.upper()))
    po.append(polib.POEntry(msgid=long_line + "\nand a second line", msgstr=""))
    text = str(po)
    assert f'msgid "{long_line}"' in text and f'msgstr "{long_line.upper()}"' in text
    assert f'msgid ""\n"{long_line}\\n"\n"and a second line"' in text


# --- the course's own translations --------------------------------------------------------------------------


def test_the_course_is_translated_into_vietnamese_chinese_and_spanish():
    assert {"vi", "zh-CN", "es"} <= set(i18n.Project(ROOT).languages())


@pytest.mark.parametrize("lang", ["vi", "zh-CN", "es"])
def test_a_translated_readme_opens_its_own_lessons(lang):
    text = (ROOT / "translations" / lang / "README.md").read_text(encoding="utf-8")
    assert f"jupyter lab translations/{lang}/notebooks/" in text
    assert f"blob/main/translations/{lang}/notebooks/00_setup.ipynb" in text


def test_every_translation_is_complete_built_and_in_step_with_the_english():
    status, output = i18n_command(ROOT, "check")
    assert status == 0, output


@pytest.mark.parametrize("lang", ["vi", "zh-CN", "es"])
def test_every_po_file_states_its_plural_rule_and_is_as_update_writes_it(lang):
    one_form = "nplurals=1; plural=0;"  # Vietnamese and Chinese do not inflect for number
    assert (i18n.catalog.plural_forms(lang) == one_form) == (lang != "es")
    for path in sorted((ROOT / "translations" / lang / "po").glob("*.po")):
        po = i18n.read_po(path, path.name)
        assert po.metadata["Plural-Forms"] == i18n.catalog.plural_forms(lang), path.name
        assert str(po) + "\n" == path.read_text(encoding="utf-8"), f"{path.name}: run i18n update"


SVG = '<svg xmlns="http://www.w3.org/2000/svg"><text x="1" y="1">{}</text><text x="1" y="9">{}</text></svg>'


def test_a_figure_is_shown_in_the_language_of_the_lesson_and_check_wants_every_figure_translated(translated):
    """A figure's labels are text: each language draws its own copy (images/<lang>/NAME.svg) and the built
    lesson shows that copy; a missing copy, or one that lost a label, is a problem `check` names."""
    english_svg = SVG.format("text encoder", "image encoder").encode()
    (translated / "images" / "loop.svg").write_bytes(english_svg)
    figure_cell = markdown_cell("fig", "![the loop](attachment:loop.svg)")
    figure_cell["attachments"] = {"loop.svg": {"image/svg+xml": base64.b64encode(english_svg).decode()}}
    write_notebook(translated, lesson(TITLE, CODE, BODY, figure_cell))
    run(translated, "update")
    translate(translated, FRENCH | {"![the loop](attachment:loop.svg)": "![la boucle](attachment:loop.svg)"})
    status, output = run(translated, "check")
    assert status == 1 and "images/fr/loop.svg is missing" in output

    french = translated / "images" / "fr" / "loop.svg"
    french.parent.mkdir()
    french.write_text(SVG.format("encodeur de texte", "").replace('<text x="1" y="9"></text>', ""))
    status, output = run(translated, "check")
    assert status == 1 and "images/fr/loop.svg has a different number of <text> labels" in output

    french.write_text(SVG.format("encodeur de texte", "encodeur d'images"), encoding="utf-8")
    assert run(translated, "build")[0] == 0
    status, output = run(translated, "check")
    assert status == 0, output
    built = nbformat.read(translated / "translations" / "fr" / "notebooks" / "00_demo.ipynb", as_version=4)
    shown = built.cells[-1]["attachments"]["loop.svg"]["image/svg+xml"]
    assert base64.b64decode(shown) == french.read_bytes()
