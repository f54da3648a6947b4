"""The translation tooling on a small course made up for the test, and the real translations' check."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import polib
import pytest

from mmlesson import i18n
from mmlesson.cli import main

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


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A repository with one notebook (two markdown cells, one code cell), a README and a figure."""
    for folder in ("notebooks", "images", "translations"):
        (tmp_path / folder).mkdir()
    (tmp_path / "images" / "figure.png").write_bytes(b"png")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n[project.urls]\nRepository = "https://github.com/demo/demo"\n',
        encoding="utf-8",
    )
    (tmp_path / "README.md").write_text(README, encoding="utf-8")
    write_notebook(tmp_path, lesson())
    return tmp_path


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


def run(root: Path, action: str, capsys) -> tuple[int, str]:
    status = main(["i18n", action, "--root", str(root), "--lang", "fr"])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


@pytest.fixture
def translated(course: Path, capsys) -> Path:
    """The fixture course extracted, translated into French and built."""
    assert run(course, "extract", capsys)[0] == 0
    translate(course)
    (course / "translations" / "fr" / "GLOSSARY.md").write_text("| English | français |\n", encoding="utf-8")
    status, output = run(course, "build", capsys)
    assert status == 0, output
    return course


def test_extract_writes_one_untranslated_entry_per_markdown_cell_keyed_by_cell_id(course, capsys):
    status, output = run(course, "extract", capsys)
    assert status == 0 and "created, 2 entries" in output
    po = polib.pofile(str(po_path(course)))
    assert [(e.msgctxt, e.msgid) for e in po] == [("title", TITLE_CELL), ("body", BODY_CELL)]
    assert all(e.msgstr == "" for e in po) and po.metadata["Language"] == "fr"
    readme = [e.msgid for e in polib.pofile(str(po_path(course, "README")))]
    assert "# Demo course" in readme and "Lesson" in readme
    assert not any("pip install" in text or "lessons:start" in text for text in readme)


def test_check_fails_until_translated_and_built_then_passes(course, capsys):
    run(course, "extract", capsys)
    status, output = run(course, "check", capsys)
    assert status == 1 and "2 entries not translated yet" in output and "0/7 (0%)" in output
    translate(course)
    status, output = run(course, "check", capsys)
    assert status == 1 and "has not been built" in output and "GLOSSARY.md is missing" in output
    (course / "translations" / "fr" / "GLOSSARY.md").write_text("terms\n", encoding="utf-8")
    assert run(course, "build", capsys)[0] == 0
    status, output = run(course, "check", capsys)
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


def test_changed_english_turns_fuzzy_new_cell_untranslated_and_build_refuses(translated, capsys):
    changed = BODY_CELL.replace("Run the cell below", "Run this cell")
    write_notebook(
        translated, lesson(TITLE, CODE, markdown_cell("body", changed), markdown_cell("new", "## Part 2"))
    )
    built = translated / "translations" / "fr" / "notebooks" / "00_demo.ipynb"
    before = built.read_text(encoding="utf-8")
    status, output = run(translated, "check", capsys)
    assert status == 1 and "stale, its English has changed" in output
    status, output = run(translated, "update", capsys)
    assert status == 0 and "1 kept, 1 changed (now fuzzy), 1 new" in output
    po = {e.msgctxt: e for e in polib.pofile(str(po_path(translated)))}
    assert (
        po["body"].fuzzy and po["body"].msgstr == FRENCH[BODY_CELL] and po["body"].previous_msgid == BODY_CELL
    )
    assert po["new"].msgstr == "" and po["title"].msgstr == FRENCH[TITLE_CELL]
    status, output = run(translated, "build", capsys)
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
    status, output = run(translated, "build", capsys)
    assert status == 0, output
    assert run(translated, "check", capsys)[0] == 0


def test_reordered_cells_keep_their_translations(translated, capsys):
    write_notebook(translated, lesson(BODY, CODE, TITLE))
    status, output = run(translated, "update", capsys)
    assert "2 kept, 0 changed (now fuzzy), 0 new, 0 obsolete" in output
    assert run(translated, "build", capsys)[0] == 0
    assert run(translated, "check", capsys)[0] == 0


def test_removed_cell_becomes_obsolete_and_a_similar_new_one_gets_a_fuzzy_suggestion(translated, capsys):
    rewritten = BODY_CELL.replace("below", "underneath")
    write_notebook(translated, lesson(TITLE, markdown_cell("renamed", rewritten)))
    run(translated, "update", capsys)
    po = polib.pofile(str(po_path(translated)))
    renamed = next(e for e in po if e.msgctxt == "renamed")
    assert renamed.fuzzy and renamed.msgstr == FRENCH[BODY_CELL], "similar English offers the old translation"
    write_notebook(translated, lesson(TITLE))
    run(translated, "update", capsys)
    obsolete = [e for e in polib.pofile(str(po_path(translated))) if e.obsolete]
    assert [e.msgstr for e in obsolete] == [FRENCH[BODY_CELL]], (
        "a translation nobody uses is kept, as obsolete"
    )


def test_new_english_outputs_make_the_built_notebook_out_of_date_until_rebuilt(translated, capsys):
    write_notebook(translated, lesson(TITLE, code_cell("code", "x = 1\n", "2\n"), BODY))
    status, output = run(translated, "check", capsys)
    assert status == 1 and "00_demo.ipynb is out of date: its code or outputs differ" in output
    assert run(translated, "build", capsys)[0] == 0
    built = json.loads(
        (translated / "translations" / "fr" / "notebooks" / "00_demo.ipynb").read_text(encoding="utf-8")
    )
    assert built["cells"][1]["outputs"][0]["text"] == ["2\n"]
    assert run(translated, "check", capsys)[0] == 0


def test_hand_edited_code_in_a_built_notebook_is_caught(translated, capsys):
    built = translated / "translations" / "fr" / "notebooks" / "00_demo.ipynb"
    notebook = json.loads(built.read_text(encoding="utf-8"))
    notebook["cells"][1]["source"] = ["x = 2\n"]
    built.write_text(json.dumps(notebook), encoding="utf-8")
    status, output = run(translated, "check", capsys)
    assert status == 1 and "its code or outputs differ from the English notebook's" in output


def test_a_stray_translated_notebook_and_a_broken_link_are_reported(translated, capsys):
    folder = translated / "translations" / "fr" / "notebooks"
    (folder / "09_gone.ipynb").write_text("{}", encoding="utf-8")
    (translated / "images" / "figure.png").unlink()
    status, output = run(translated, "check", capsys)
    assert "09_gone.ipynb has no English source" in output
    assert "broken link ../../../images/figure.png" in output and status == 1


FRENCH_BODY, FRENCH_TITLE = FRENCH[BODY_CELL], FRENCH[TITLE_CELL]


@pytest.mark.parametrize(
    ("cell", "broken", "message"),
    [
        ("body", FRENCH_BODY.replace("```\n", "", 1).removesuffix("```"), "code fence"),
        ("body", FRENCH_BODY.replace("print(1)", "imprimer(1)"), "code block lost or changed"),
        ("title", FRENCH_TITLE.replace("$-\\log p$", "-\\log p"), "math"),
        ("title", FRENCH_TITLE.replace("`f(x)`", "f(x)"), "inline code lost or changed: '`f(x)`'"),
        ("title", FRENCH_TITLE.replace("../images/figure.png", "../images/figure-fr.png"), "link target"),
        ("title", FRENCH_TITLE.replace("# Démo", "## Démo"), "renders with 0 level-1 headings"),
        ("title", FRENCH_TITLE.replace("# Démo", "# **Démo"), "bold marker (**) shows as text"),
        ("body", FRENCH_BODY.replace("## Partie 1\n\n", "## Partie 1\n\n- "), "renders with 1 list items"),
    ],
)
def test_a_translation_that_breaks_markdown_is_named_and_not_built(translated, capsys, cell, broken, message):
    po = polib.pofile(str(po_path(translated)))
    next(e for e in po if e.msgctxt == cell).msgstr = broken
    po.save()
    built = translated / "translations" / "fr" / "notebooks" / "00_demo.ipynb"
    before = built.read_text(encoding="utf-8")
    status, output = run(translated, "build", capsys)
    assert status == 1 and message in output
    assert f"translations/fr/po/00_demo.po, entry {cell!r}" in output
    assert built.read_text(encoding="utf-8") == before


def test_bold_that_does_not_close_next_to_full_width_punctuation_is_caught():
    english = "**Learning goals.** After this lesson"
    assert i18n.markdown_problems(english, "**学习目标。** 学完本课") == []
    assert "bold marker" in i18n.markdown_problems(english, "**学习目标。**学完本课")[0]


def test_markdown_problems_accepts_reordered_code_and_math():
    english = "Compare `a` with `b` where $x$ is small."
    assert i18n.markdown_problems(english, "Où $x$ est petit, compare `b` avec `a`.") == []


def test_a_po_file_with_a_syntax_error_is_named_with_its_line(translated, capsys):
    path = po_path(translated)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('msgctxt "body"', 'msgctxt "body"\nnot PO syntax'), encoding="utf-8")
    status, output = run(translated, "check", capsys)
    assert status == 1 and "translations/fr/po/00_demo.po cannot be read" in output and "line" in output
    assert "Traceback" not in output


def test_a_po_file_in_the_wrong_language_folder_is_named(translated, capsys):
    path = po_path(translated)
    path.write_text(
        path.read_text(encoding="utf-8").replace("Language: fr", "Language: es"), encoding="utf-8"
    )
    status, output = run(translated, "check", capsys)
    assert status == 1 and "says it is in language 'es', but it sits in the fr folder" in output


def test_a_cell_without_an_id_is_named(course, capsys):
    cell = markdown_cell("x", "## No id")
    del cell["id"]
    write_notebook(course, lesson(TITLE, cell))
    status, output = run(course, "extract", capsys)
    assert (
        status == 1
        and "notebooks/00_demo.ipynb: markdown cell 2 has no id" in output
        and "JupyterLab" in output
    )


@pytest.mark.parametrize("code", ["xx", "zh_CN", "vn"])
def test_a_language_code_that_does_not_exist_is_refused(course, capsys, code):
    status = main(["i18n", "extract", "--root", str(course), "--lang", code])
    output = capsys.readouterr().err
    assert status == 1 and f"{code!r} is not a language code" in output and "zh-CN" in output
    assert not (course / "translations" / code).exists()


def test_a_language_not_started_yet_says_how_to_start_it(course, capsys):
    status = main(["i18n", "check", "--root", str(course), "--lang", "de"])
    assert status == 1 and "extract --lang de" in capsys.readouterr().err


def test_outside_a_course_repository_says_where_to_run(tmp_path, capsys):
    status = main(["i18n", "check", "--root", str(tmp_path)])
    assert status == 1 and "no notebooks/ folder" in capsys.readouterr().err


def test_extract_keeps_existing_work(translated, capsys):
    status, output = run(translated, "extract", capsys)
    assert status == 0 and "exists, kept" in output
    assert polib.pofile(str(po_path(translated))).percent_translated() == 100


# --- the course's own translations --------------------------------------------------------------------------


def test_the_course_is_translated_into_vietnamese_chinese_and_spanish():
    assert {"vi", "zh-CN", "es"} <= set(i18n.Project(ROOT).languages())


@pytest.mark.parametrize("lang", ["vi", "zh-CN", "es"])
def test_a_translated_readme_opens_its_own_lessons(lang):
    text = (ROOT / "translations" / lang / "README.md").read_text(encoding="utf-8")
    assert f"jupyter lab translations/{lang}/notebooks/" in text
    assert f"blob/main/translations/{lang}/notebooks/00_setup.ipynb" in text


def test_every_translation_is_complete_built_and_in_step_with_the_english(capsys):
    status = main(["i18n", "check", "--root", str(ROOT)])
    output = capsys.readouterr().out
    assert status == 0, output
