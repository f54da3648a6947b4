"""The lessons keep to the public API: every name a notebook takes from mmlesson is listed in the `__all__` of
a lesson module (API.md lists them all), never a private name or course infrastructure (issue 17).

Read from the notebooks' code: `from mmlesson.M import name`, `from mmlesson import M` then `M.name`, and
`mmlesson.name` or `mmlesson.M.name`.
"""

from __future__ import annotations

import ast
import importlib
import json
import re

import pytest

import mmlesson
from tests.helpers import ROOT

# The modules a lesson may use. Everything in mmlesson.course is infrastructure, and so are checks and
# errors (a notebook catches MMLessonError, which the package itself exports): a notebook never imports them.
LESSON_MODULES = (
    "clip", "dalle", "dalle2", "data", "diffusion", "guided", "images", "judge", "losses", "runtime",
    "schedule", "search", "train_clip", "train_dalle", "train_dalle2", "train_vqgan", "viz", "vqgan",
    "zeroshot",
)  # fmt: skip
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def code_of(notebook) -> ast.Module:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    lines = [
        line
        for cell in cells
        if cell["cell_type"] == "code"
        for line in "".join(cell["source"]).splitlines()
        if not line.lstrip().startswith(("%", "!"))
    ]
    return ast.parse("\n".join(lines))


def names_used(tree: ast.Module) -> set[tuple[str, str]]:
    """(module, name) for every name the code takes from mmlesson; module "" is the package itself."""
    used, aliases = set(), {"mmlesson": ""}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "mmlesson":
            for alias in node.names:
                aliases[alias.asname or alias.name] = alias.name
                used.add(("", alias.name))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmlesson."):
            used |= {(node.module.removeprefix("mmlesson."), alias.name) for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            used.add((aliases[node.value.id], node.attr))
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "mmlesson"
        ):
            used.add((node.value.attr, node.attr))
    return used


def is_public(module: str, name: str) -> bool:
    if module == "":
        return name in mmlesson.__all__ or name in LESSON_MODULES
    return module in LESSON_MODULES and name in importlib.import_module(f"mmlesson.{module}").__all__


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.name)
def test_lessons_use_only_public_names(notebook):
    private = sorted(
        f"mmlesson.{module}.{name}".replace("..", ".") for module, name in names_used(code_of(notebook))
        if not is_public(module, name)
    )  # fmt: skip
    assert not private, f"not in the public API (an __all__ listed in API.md): {private}"


@pytest.mark.parametrize("module", LESSON_MODULES)
def test_every_public_name_exists_and_api_md_lists_it(module):
    imported = importlib.import_module(f"mmlesson.{module}")
    assert all(hasattr(imported, name) for name in imported.__all__)
    api = (ROOT / "API.md").read_text(encoding="utf-8")
    section = re.search(rf"^## `mmlesson\.{module}`\n(.*?)(?=^## |\Z)", api, flags=re.M | re.S)
    assert section, f"API.md has no section for mmlesson.{module}"
    listed = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", section.group(1)))
    assert set(imported.__all__) == listed, f"API.md and mmlesson.{module}.__all__ differ"


def test_the_check_finds_a_private_name():
    tree = ast.parse(
        "from mmlesson import data\nfrom mmlesson.course.training import start\nfrom mmlesson.train_clip "
        "import course_bpe_ids\ndata.check_int"
    )
    found = {pair for pair in names_used(tree) if not is_public(*pair)}
    assert found == {("course.training", "start"), ("train_clip", "course_bpe_ids"), ("data", "check_int")}
