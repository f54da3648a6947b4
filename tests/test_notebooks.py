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
