"""site/build.py on a small course made here: what it makes of lessons, links, widgets and attachments, and
how it refuses bad input (a notebook it cannot read, a translation missing a lesson, a broken link or image,
a page Sphinx cannot build): it names the file and the link, exits non-zero, and leaves _site/ as it was.

A course of two lessons in English and Vietnamese builds in seconds; the refusals that need no Sphinx build
take less than one.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "site" / "build.py"
SLUG = "mmlesson/mmlesson"
REPOSITORY = f"https://github.com/{SLUG}"
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><text x="2" y="15">hi</text></svg>'


def markdown(text: str, **extra) -> dict:
    return {
        "cell_type": "markdown",
        "id": f"m{abs(hash(text)) % 10**8}",
        "metadata": {},
        "source": text,
        **extra,
    }


def code(source: str, outputs: list[dict], **metadata) -> dict:
    return {
        "cell_type": "code",
        "id": f"c{abs(hash(source)) % 10**8}",
        "metadata": metadata,
        "execution_count": 1,
        "source": source,
        "outputs": outputs,
    }


def text_result(text: str) -> dict:
    return {
        "output_type": "execute_result",
        "execution_count": 1,
        "metadata": {},
        "data": {"text/plain": text},
    }


def notebook(title: str, link: str = "../GLOSSARY.md") -> dict:
    """A lesson as the course commits one: a title, a figure attached to a cell, math, a link, a widget cell
    whose output is the line a saved widget leaves, a printed progress bar, a solution cell."""
    figure = {"image/svg+xml": base64.b64encode(SVG.encode()).decode()}
    cells = [
        markdown(f"# {title}\n\nSee the [glossary]({link}) and $t = 1/\\tau$.\n\n$$\\log N$$\n"),
        markdown("![a figure](attachment:figure.svg)\n", attachments={"figure.svg": figure}),
        code(
            "print('hello')", [{"output_type": "stream", "name": "stdout", "text": "0%|  |\r100%|##| 4/4\n"}]
        ),
        code(
            "import ipywidgets as widgets\n\nviz.interactive(show, k=widgets.IntSlider())",
            [text_result("[An interactive figure with controls: k. Run the notebook to use it.]")],
        ),
        code("answer = 42", [], tags=["solution"], jupyter={"source_hidden": True}),
    ]
    return {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def write(path: Path, content: str | dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(content, indent=1) if isinstance(content, dict) else content
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """Two lessons, in English and in Vietnamese, with READMEs and glossaries."""
    root = tmp_path / "course"
    write(root / "pyproject.toml", f'[project]\nname = "x"\n[project.urls]\nRepository = "{REPOSITORY}"\n')
    write(
        root / "README.md",
        "# A small course\n\n[Read online](https://mmlesson.github.io/mmlesson/en/)\n\n"
        "| # | Lesson | Run |\n|---|---|---|\n"
        "| 0 | [First](notebooks/00_first.ipynb) | [![Open In Colab](https://colab.example/badge.svg)]"
        "(https://colab.research.google.com/github/mmlesson/mmlesson/blob/main/notebooks/00_first.ipynb)"
        " |\n\n"
        "The [API](API.md), the [lessons](notebooks), [Vietnamese](translations/vi/README.md), "
        "and `[code](not/a/link.md)`.\n",
    )
    write(root / "API.md", "# API\n")
    write(root / "GLOSSARY.md", "# Glossary\n\nWords.\n")
    write(root / "notebooks" / "00_first.ipynb", notebook("First lesson"))
    write(root / "notebooks" / "01_second.ipynb", notebook("Second lesson"))
    vi = root / "translations" / "vi"
    write(vi / "po" / "README.po", "")
    write(vi / "README.md", "# Một khóa học nhỏ\n\n[Bài đầu](notebooks/00_first.ipynb)\n")
    write(vi / "GLOSSARY.md", "# Thuật ngữ\n")
    write(vi / "notebooks" / "00_first.ipynb", notebook("Bài thứ nhất", link="../GLOSSARY.md"))
    write(vi / "notebooks" / "01_second.ipynb", notebook("Bài thứ hai", link="../../../GLOSSARY.md"))
    write(root / "_site" / "index.html", "the site as it was")
    return root


def build(root: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(BUILD), "--root", str(root), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def assert_refused(done: subprocess.CompletedProcess, root: Path, *said: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    for words in said:
        assert words in done.stderr, done.stderr
    assert (root / "_site" / "index.html").read_text() == "the site as it was", "the old site was replaced"
    assert not list(root.glob("_site.build-*")), "a temporary site was left behind"


def test_builds_every_language_with_working_links(course: Path):
    done = build(course)
    assert done.returncode == 0, done.stdout + done.stderr
    site = course / "_site"
    lesson = (site / "en" / "lessons" / "00_first.html").read_text(encoding="utf-8")
    home = (site / "en" / "index.html").read_text(encoding="utf-8")
    vi_lesson = (site / "vi" / "lessons" / "01_second.html").read_text(encoding="utf-8")

    # the widget's saved line becomes a note with the lesson's Colab link; the progress bar its last frame
    assert "An interactive figure" not in lesson and "mm-widget-note" in lesson
    colab = f"https://colab.research.google.com/github/{SLUG}/blob/main/notebooks/00_first.ipynb"
    assert lesson.count(f'href="{colab}"') == 2  # the bar above the lesson, and the note
    assert "100%|##| 4/4" in lesson and "0%|  |" not in lesson
    binder = (
        "https://mybinder.org/v2/gh/mmlesson/mmlesson/main?labpath=translations%2Fvi%2Fnotebooks%2F01_second"
    )
    assert binder in vi_lesson.replace("&amp;", "&")
    assert (site / "vi" / "lessons" / "01_second.ipynb").read_bytes() == (
        course / "translations" / "vi" / "notebooks" / "01_second.ipynb"
    ).read_bytes(), "'Download notebook' gives the committed notebook"
    # the attached figure is a file beside the page, math is MathML, the solution is folded away
    assert re.search(r'<img alt="a figure" src="../_images/00_first-1-figure.svg"', lesson)
    assert "<math" in lesson and "Show the solution" in lesson
    # links: lessons and glossaries are pages of the site, other files GitHub, the published site this copy
    assert 'href="../glossary.html"' in lesson and 'href="../glossary.html"' in vi_lesson
    assert 'href="lessons/00_first.html"' in home and 'href="../vi/index.html"' in home
    assert (
        f'href="{REPOSITORY}/blob/main/API.md"' in home and f'href="{REPOSITORY}/tree/main/notebooks"' in home
    )
    assert 'href="index.html">Read online' in home
    assert "colab.example" not in home, "a badge image from another host is shown as its words"
    # the language switcher: the same lesson in the other language
    assert 'href="../../vi/lessons/00_first.html"' in lesson
    assert (site / "index.html").is_file() and (site / ".nojekyll").is_file()


def test_a_translation_missing_a_lesson_is_refused(course: Path):
    (course / "translations" / "vi" / "notebooks" / "01_second.ipynb").unlink()
    done = build(course)
    assert_refused(done, course, "translations/vi/notebooks/01_second.ipynb: missing")


def test_a_broken_link_is_refused_with_the_file_and_the_link(course: Path):
    path = course / "translations" / "vi" / "notebooks" / "00_first.ipynb"
    write(path, notebook("Bài thứ nhất", link="../notebooks/07_missing.ipynb"))
    done = build(course)
    assert_refused(
        done, course, "translations/vi/notebooks/00_first.ipynb (cell", "'../notebooks/07_missing.ipynb'"
    )


def test_a_broken_image_is_refused(course: Path):
    readme = course / "README.md"
    readme.write_text(readme.read_text() + "\n![the logo](images/logo.png)\n", encoding="utf-8")
    done = build(course)
    assert_refused(done, course, "README.md: broken link 'images/logo.png'", "no images/logo.png")


def test_a_notebook_that_cannot_be_read_is_refused(course: Path):
    (course / "notebooks" / "01_second.ipynb").write_text('{"cells": [', encoding="utf-8")
    done = build(course)
    assert_refused(done, course, "notebooks/01_second.ipynb: cannot be read as a notebook")


def test_what_sphinx_refuses_is_named_by_the_repository_file(course: Path):
    glossary = course / "translations" / "vi" / "GLOSSARY.md"
    glossary.write_text("# Thuật ngữ\n\n```{no-such-directive}\n```\n", encoding="utf-8")
    done = build(course, "--lang", "vi")
    assert_refused(done, course, "Sphinx failed for vi", "translations/vi/GLOSSARY.md")
