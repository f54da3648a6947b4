"""What every lesson notebook promises, checked on the committed files (nbval runs them separately)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmlesson.course.i18n.markdown import broken_links

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MACHINE_DETAIL = re.compile(r"(/(?:root|tmp|work|home|Users)/[\w.-]+|[A-Z]:\\\\Users|0x[0-9a-f]{8,})")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(notebook: dict) -> list[dict]:
    return [c for c in notebook["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def markdown(notebook: dict) -> str:
    return "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")


def test_there_are_lessons():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_executed_in_order_without_errors(path):
    cells = code_cells(load(path))
    counts = [c["execution_count"] for c in cells]
    assert all(counts), "every code cell must be executed (learners read the outputs on GitHub)"
    assert counts == sorted(counts), "run the notebook top to bottom before committing it"
    assert not [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_carry_no_machine_paths_or_addresses(path):
    for cell in code_cells(load(path)):
        for output in cell["outputs"]:
            text = "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
            found = MACHINE_DETAIL.search(text)
            assert not found, f"machine path or memory address in an output: {found and found[0]}"


PROGRESS_AT_ZERO = re.compile(r"^\s*[^|\n]*:\s+0%\|")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_opened_without_running_no_output_reads_as_unfinished_or_raw(path):
    """GitHub and a notebook opened without running show a widget's plain text: it must not be a bar stuck
    at 0% (mmlesson.course.progress saves the final state) nor `interactive(children=...`
    (viz.interactive)."""
    for index, cell in enumerate(code_cells(load(path))):
        for output in cell["outputs"]:
            text = "".join(output.get("data", {}).get("text/plain", ""))
            assert not PROGRESS_AT_ZERO.search(text), f"code cell {index}: progress bar saved at 0%: {text}"
            assert not text.startswith("interactive("), f"code cell {index}: a widget saved as {text[:40]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_installs_on_colab_and_runs_setup(path):
    first = "".join(code_cells(load(path))[0]["source"])
    assert '%pip install -q "mmlesson @ git+' in first
    assert "mmlesson.setup(" in first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_structure(path):
    notebook = load(path)
    text = markdown(notebook)
    assert "**Learning goals.**" in text and "## Summary" in text and "## Exercises" in text
    assert "Solutions are in the hidden cells below" in text, "say where the solutions are"
    solutions = [c for c in notebook["cells"] if "solution" in c.get("metadata", {}).get("tags", [])]
    assert solutions and all(c["metadata"].get("jupyter", {}).get("source_hidden") for c in solutions)
    assert all(c.get("id") for c in notebook["cells"]), "cells need ids (translations are keyed by them)"


MAIN_PATH_TIME = re.compile(r"\*\*Time:\*\* about (\d+) minutes for the main path")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_lesson_says_what_it_needs_and_how_long_it_takes(path):
    """A learner or a workshop plans on the prerequisites and the time estimate at the top; the main path
    fits one sitting (about 75 minutes)."""
    opening = markdown({"cells": load(path)["cells"][:3]})
    assert "**Prerequisites:**" in opening
    minutes = MAIN_PATH_TIME.search(opening)
    assert minutes, "say '**Time:** about N minutes for the main path' at the top"
    assert int(minutes[1]) <= 75, "longer than one sitting: move extras to optional sections"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_check_your_understanding_has_revealable_answers(path):
    cells = [c for c in load(path)["cells"] if c["cell_type"] == "markdown"]
    quiz = [c for c in cells if "".join(c["source"]).startswith("## Check your understanding")]
    assert len(quiz) == 1, "one '## Check your understanding' cell"
    text = "".join(quiz[0]["source"])
    answers = text.count("<details><summary>Answer</summary>")
    assert 3 <= answers <= 5 and answers == text.count("</details>"), "3-5 questions, each with its answer"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_relative_links_and_images_resolve(path):
    assert broken_links(markdown(load(path)), path.parent) == []


@pytest.mark.slow
def test_readme_and_install_cells_match_the_repository_url():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync_links.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, "run `python scripts/sync_links.py`:\n" + result.stdout


CHECKED = "nbval-check-output"  # nbval compares these cells' outputs with the committed ones
QUALITY = "quality-check"  # an assert that is the lesson's quality bar (scripts/rehearse_full_profile.py)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_checked_cells_are_tagged_and_learners_see_no_test_scaffolding(path):
    """nbval's checked cells carry a cell tag, which a learner does not see, never a `# NBVAL_...` comment;
    a check a learner reads is a printed sentence (nbval compares it), not a bare assert."""
    cells = code_cells(load(path))
    assert any(CHECKED in cell["metadata"].get("tags", []) for cell in cells), "no cell is checked by nbval"
    for index, cell in enumerate(cells):
        source = "".join(cell["source"])
        assert not re.search(r"^\s*#\s*NBVAL_", source, re.M), f"code cell {index}: use the {CHECKED} tag"
        if QUALITY not in cell["metadata"].get("tags", []):
            assert not re.search(r"^\s*assert\b", source, re.M), f"code cell {index}: print the check instead"


# A number a reader would check against an output: a decimal (0.98, 3.5) or a percentage (52%, 77.5%).
# Integers are left out: they are mostly settings the code shows (64 images, 400 steps).
PROSE_NUMBER = re.compile(r"(?<![\w.\-/])(\d+(?:,\d{3})*\.\d+|\d+(?:\.\d+)?(?=\s?%))")
NOT_PROSE = [r"```.*?```", r"`[^`]*`", r"\$\$.*?\$\$", r"\$[^$\n]*\$", r"\]\([^)]*\)", r"<[^>]+>", r"^#.*$"]
OUTPUT_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:e-?\d+)?")


def output_numbers(notebook: dict) -> list[float]:
    """Every number the lesson's committed outputs print (text, stream and markdown outputs)."""
    numbers = []
    for cell in code_cells(notebook):
        for output in cell["outputs"]:
            data = output.get("data", {})
            text = "".join(output.get("text", "")) + "".join(data.get("text/plain", ""))
            text += "".join(data.get("text/markdown", ""))
            numbers += [float(found.replace(",", "")) for found in OUTPUT_NUMBER.findall(text)]
    return numbers


def unbacked_numbers(notebook: dict) -> list[str]:
    """Decimals and percentages in the prose that no output of the lesson shows (to the digits written),
    outside sentences that quote a source (they link to it or name the paper)."""
    shown = output_numbers(notebook)
    found = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z(])|\n\n", "".join(cell["source"])):
            if "http" in sentence or "paper" in sentence.lower():
                continue
            prose = sentence
            for pattern in NOT_PROSE:
                prose = re.sub(pattern, " ", prose, flags=re.S | re.M)
            for written in PROSE_NUMBER.findall(prose):
                value, digits = float(written.replace(",", "")), len(written.partition(".")[2])
                if not any(round(v, digits) == value or round(100 * v, digits) == value for v in shown):
                    found.append(f"markdown cell {index}: {written} in {' '.join(sentence.split())[:120]!r}")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_numbers_in_the_prose_are_shown_by_an_output_or_quoted(path):
    """A number the text states must be one the lesson computes and prints, or one it quotes from a source
    (the sentence links to it or names the paper): never a number typed in that the outputs disagree with."""
    assert unbacked_numbers(load(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_saved_widget_state_that_looks_live(path):
    """Restored from saved state, a widget moves but computes nothing (its kernel is gone), so the committed
    lesson keeps each widget's plain-text line ("Run the notebook to use it") and no widget state."""
    notebook = load(path)
    assert "widgets" not in notebook["metadata"], "save the notebook without its widget state"
    for index, cell in enumerate(code_cells(notebook)):
        for output in cell["outputs"]:
            widget = "application/vnd.jupyter.widget-view+json" in output.get("data", {})
            assert not widget, f"code cell {index}: a widget view saved"
