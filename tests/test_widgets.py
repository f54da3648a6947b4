"""The widgets of lessons 1-3 work on Colab's ipywidgets 7.7.1 and on the ipywidgets 8 of JupyterLab.

For each lesson and each of two kernels, nbclient runs the lesson's code cells up to and including its widget
cell (`interactive(callback, control=...)`), then added cells drive the widget as a learner does: each sets
one control's value (which calls the callback through ipywidgets' own observer, as a slider moved in the
browser does). nbclient plays the browser: like JupyterLab it routes what the callback prints and displays
into the widget's Output area, and the test reads that area after the widget cell and after every change. It
checks that the callback was called once per change with the controls' values, that the area shows the
figure or the message it should and no traceback (an `interactive` catches a callback's exception and only
shows it there), and that lesson 1's printed loss is the one `clip_loss` computes.

The two kernels:
- `colab`: Colab's kernel-side Jupyter stack at the versions of tests/colab/pip-freeze.txt (ipywidgets 7.7.1,
  ipython 7.34.0, ipykernel 6.17.1, jupyter_client 7.4.9, traitlets 5.7.1, tornado 6.5.7, pyzmq 26.2.1 and
  what they need beyond this environment), installed with `pip install --target --no-deps` into a temporary
  folder that comes first on the kernel's PYTHONPATH; everything else (torch, mmlesson) is this environment's.
  Installing it needs the package index; without one this half is skipped, with the reason.
- `here`: this environment as it is, with ipywidgets 8 (the README's install).

To keep both kernels together within a few minutes on two cores, the costly cells before a widget run on
less data than in the lesson, and one cell that checks what the full run achieves is left out (LESSONS says
which; the test fails if those cells change): lesson 1 trains its tiny CLIP for 10 steps instead of 400 (the
widget then shows a less trained model, through the same code), lesson 2 measures on 150 test shapes instead
of 600, 60 held-out ones instead of 300 and one few-shot draw of up to 2 examples instead of three of up to
16, and lesson 3 indexes 300 shapes instead of 3000. nbval runs the whole lessons unchanged. Still, these
tests take minutes, so they are marked slow.
"""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mmlesson.course.kernels import wait_in_slices
from tests.helpers import pip, require_index
from tests.test_colab import FREEZES, canonical, read_freeze

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
# Colab's kernel side of Jupyter: the packages a kernel imports that differ from, or are missing in, a current
# environment (matplotlib-inline, debugpy, ... are the same or compatible and come from here).
COLAB_KERNEL_STACK = [
    "ipywidgets",
    "ipython",
    "ipykernel",
    "jupyter-client",
    "traitlets",
    "tornado",
    "ipython-genutils",
    "backcall",
    "pickleshare",
    "entrypoints",
    "nest-asyncio",
    "decorator",
    "pyzmq",
]
KERNEL_REPORTS = ("ipywidgets", "ipython", "ipykernel", "pyzmq")  # the versions the kernel says it runs
REPORT = "WIDGET-CHECK "

# After the widget cell: the widget (the cell's result), its controls by keyword, and a record of every call.
SETUP_CELL = """\
import json as _json

import IPython as _IPython
import ipykernel as _ipykernel
import ipywidgets as _ipywidgets
import zmq as _zmq

_widget = _  # the widget cell's result
assert isinstance(_widget, _ipywidgets.interactive), f"the widget cell returned {type(_widget)}"
_controls = {control._kwarg: control for control in _widget.kwargs_widgets}
_calls, _callback = [], _widget.f


def _recorded(**kwargs):
    _calls.append({name: repr(value) for name, value in kwargs.items()})
    return _callback(**kwargs)


_widget.f = _recorded
_versions = {"ipywidgets": _ipywidgets.__version__, "ipython": _IPython.__version__}
_versions |= {"ipykernel": _ipykernel.__version__, "pyzmq": _zmq.__version__}
print(REPORT + _json.dumps({"output_area": _widget.out.model_id, "versions": _versions}))
"""
STEP_CELL = """\
_calls.clear()
_controls[{name!r}].value = {value!r}
print(REPORT + _json.dumps({{"calls": _calls}}))
"""
FINAL_CELL = """\
print(REPORT + _json.dumps({{"expected": {expected}}}))
"""


@dataclass
class Lesson:
    notebook: str
    changes: list[dict]  # what the learner does, one change after another
    expected: str  # a Python expression evaluated in the kernel after the changes: what to check against
    smaller: dict[str, tuple[str, str]] = field(default_factory=dict)  # cell id -> (text, replacement)
    left_out: dict[str, str] = field(default_factory=dict)  # cell id -> why the widget does not need it


LESSONS = {
    "01": Lesson(
        "01_contrastive_loss.ipynb",
        [{"scale": 100.0}, {"row": 3}, {"scale": 1.0}],
        "{str(s): f'{clip_loss(image_emb_after, text_emb_after, s):.3f}' for s in (100.0, 1.0)}",
        smaller={"09c2dbb0": ("steps, batch_size = 400, 64", "steps, batch_size = 10, 64")},
        left_out={
            "6abceeba": "compares the accuracy before and after the 400 training steps",
            "a7f3c2e1": "checks the accuracy that 400 training steps reach",
        },
    ),
    "02": Lesson(
        "02_zero_shot.ipynb",
        [
            {"image_name": "hand-drawn pink circle"},
            {"labels_text": "pink circle, brown circle, red circle"},
            {"labels_text": " , "},
        ],
        "list(gallery)",
        smaller={
            "9dc1c286": ("ShapesWorld(seed=2024).sample(600)", "ShapesWorld(seed=2024).sample(150)"),
            "b1fd961a": ("sample(300)", "sample(60)"),
            "6721b7fe": ("KS, REPEATS, MAX_K = (1, 2, 4, 8, 16), 3, 16", "KS, REPEATS, MAX_K = (1, 2), 1, 2"),
        },
    ),
    "03": Lesson(
        "03_image_search.ipynb",
        [{"k": 3}, {"query": "a large red circle on the left"}, {"query": "   "}],
        "len(index)",
        smaller={"ff0b34e6": ("ShapesWorld(seed=3).sample(3000)", "ShapesWorld(seed=3).sample(300)")},
    ),
}


def shows_figure(step: dict) -> bool:
    return any("image/png" in mimetypes for mimetypes in step["displayed"])


def check_lesson_01(result: dict) -> None:
    one, two, three = result["steps"]
    assert [step["calls"] for step in result["steps"]] == [
        [{"scale": "100.0", "row": "0"}],
        [{"scale": "100.0", "row": "3"}],
        [{"scale": "1.0", "row": "3"}],
    ]
    losses = result["expected"]
    assert f"loss of the batch at scale 100.0: {losses['100.0']}" in one["stdout"]
    # the loss of the whole batch, whichever row is shown
    assert f"loss of the batch at scale 100.0: {losses['100.0']}" in two["stdout"]
    assert f"loss of the batch at scale 1.0: {losses['1.0']}" in three["stdout"]
    assert losses["100.0"] != losses["1.0"]
    assert all(shows_figure(step) for step in result["steps"])


def check_lesson_02(result: dict) -> None:
    one, two, three = result["steps"]
    assert "hand-drawn pink circle" in result["expected"]
    pink = repr("hand-drawn pink circle")
    labels = [
        repr("red circle, blue circle, red square"),
        repr("pink circle, brown circle, red circle"),
        "' , '",
    ]
    assert [step["calls"] for step in result["steps"]] == [
        [{"labels_text": text, "image_name": pink}] for text in labels
    ]
    assert shows_figure(one) and shows_figure(two)
    assert not shows_figure(three) and three["stdout"].strip(), "no labels: a message, not a figure"


def check_lesson_03(result: dict) -> None:
    one, two, three = result["steps"]
    assert one["calls"] == [{"query": repr("a small pink heart"), "k": "3"}]
    assert two["calls"] == [{"query": repr("a large red circle on the left"), "k": "3"}]
    assert three["calls"] == [{"query": repr("   "), "k": "3"}]
    assert shows_figure(one) and shows_figure(two)
    assert not shows_figure(three) and "Type a description" in three["stdout"]


CHECKS = {"01": check_lesson_01, "02": check_lesson_02, "03": check_lesson_03}


@pytest.fixture(scope="session")
def colab_kernel_stack(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A folder with Colab's kernel-side Jupyter packages, at Colab's versions, and those versions."""
    require_index()
    pins = read_freeze(FREEZES["cpu"]).pins
    versions = {name: pins[canonical(name)] for name in COLAB_KERNEL_STACK}
    folder = tmp_path_factory.mktemp("colab-kernel-stack")
    wanted = [f"{name}=={version}" for name, version in versions.items()]
    result = pip("install", "--no-deps", "--only-binary=:all:", "--target", str(folder), *wanted)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, versions


def report(cell) -> dict:
    printed = "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")
    (line,) = [line for line in printed.splitlines() if line.startswith(REPORT)]
    return json.loads(line[len(REPORT) :])


def output_area(outputs: list[dict]) -> dict:
    """What the widget's Output area shows: printed text, the MIME types displayed, tracebacks."""
    return {
        "stdout": "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream"),
        "displayed": [
            sorted(o["data"]) for o in outputs if o["output_type"] in ("display_data", "execute_result")
        ],
        "errors": ["\n".join(o["traceback"]) for o in outputs if o["output_type"] == "error"],
    }


def bound_names(source: str) -> set[str]:
    """The names a cell assigns, defines or imports at its top level."""
    names = set()
    for node in ast.parse(source).body:
        for target in ast.walk(node):
            if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store):
                names.add(target.id)
            elif isinstance(target, (ast.FunctionDef, ast.ClassDef)):
                names.add(target.name)
            elif isinstance(target, ast.alias):
                names.add((target.asname or target.name).split(".")[0])
    return names


def prepared(lesson: Lesson, cells: list) -> list:
    """The cells to run: the lesson's, with LESSONS' smaller workloads, without the cells it leaves out."""
    ids = [cell.get("id") for cell in cells]
    assert set(lesson.smaller) | set(lesson.left_out) <= set(ids), (
        f"{lesson.notebook}: cells changed; see LESSONS"
    )
    kept = []
    for k, cell in enumerate(cells):
        if cell.get("id") in lesson.left_out:
            later = "\n".join(c.source for c in cells[k + 1 :] if c.get("id") not in lesson.left_out)
            used = {name for name in bound_names(cell.source) if re.search(rf"\b{name}\b", later)}
            assert not used, (
                f"{lesson.notebook}: cell {cell.get('id')} is left out, but later cells use {used}"
            )
            continue
        if cell.get("id") in lesson.smaller:
            text, smaller = lesson.smaller[cell.get("id")]
            assert cell.source.count(text) == 1, (
                f"{lesson.notebook}: cell {cell.get('id')} no longer has {text!r}"
            )
            cell = copy.deepcopy(cell)
            cell.source = cell.source.replace(text, smaller)
        kept.append(cell)
    return kept


def run_widget(lesson: Lesson, pythonpath: Path | None) -> dict:
    """Run the lesson up to its widget cell, then drive the widget; what each step did and showed."""
    notebook = nbformat.read(NOTEBOOKS / lesson.notebook, as_version=4)
    widget_cells = [
        k
        for k, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and "interactive(" in cell.source
    ]
    assert len(widget_cells) == 1, f"{lesson.notebook}: expected one widget cell, found {len(widget_cells)}"
    cells = prepared(
        lesson, [cell for cell in notebook.cells[: widget_cells[0] + 1] if cell.cell_type == "code"]
    )
    setup = nbformat.v4.new_code_cell(SETUP_CELL.replace("REPORT", repr(REPORT)))
    steps = [
        nbformat.v4.new_code_cell(STEP_CELL.format(name=name, value=value).replace("REPORT", repr(REPORT)))
        for change in lesson.changes
        for name, value in change.items()
    ]
    final = nbformat.v4.new_code_cell(
        FINAL_CELL.format(expected=lesson.expected).replace("REPORT", repr(REPORT))
    )
    notebook.cells = [*cells, setup, *steps, final]

    env = dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1")  # ipykernel 6's debugger warns otherwise
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    shown = []
    with client.setup_kernel(env=env):
        wait_in_slices(client)
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
            if cell is setup or cell in steps:
                area = report(setup)["output_area"]
                shown.append(output_area(copy.deepcopy(client.widget_state.get(area, {}).get("outputs", []))))
    return {
        "versions": report(setup)["versions"],
        "first": shown[0],  # what the widget showed when the widget cell ran
        "steps": [dict(report(step), **area) for step, area in zip(steps, shown[1:])],
        "expected": report(final)["expected"],
    }


def run_widget_in_a_fresh_process(lesson: str, pythonpath: Path | None) -> dict:
    """`run_widget` from a new Python process, so that each drive starts from a clean interpreter and event
    loop, not from the state hundreds of earlier tests left in the test process."""
    code = (
        "import json, sys; from pathlib import Path; from tests.test_widgets import LESSONS, run_widget; "
        "path = Path(sys.argv[2]) if sys.argv[2] else None; "
        "print(json.dumps(run_widget(LESSONS[sys.argv[1]], path)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, lesson, str(pythonpath or "")],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(lesson: str, result: dict) -> None:
    for where, area in [("the widget cell", result["first"]), *enumerate(result["steps"])]:
        assert not area["errors"], f"step {where}: the callback raised:\n" + "\n".join(area["errors"])
    assert shows_figure(result["first"]), "the widget cell showed no figure"
    CHECKS[lesson](result)


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("lesson", sorted(LESSONS))
def test_widget_on_colab_ipywidgets_7(lesson, colab_kernel_stack):
    folder, versions = colab_kernel_stack
    result = run_widget_in_a_fresh_process(lesson, folder)
    assert result["versions"] == {name: versions[name] for name in KERNEL_REPORTS}
    check(lesson, result)


@pytest.mark.slow
@pytest.mark.parametrize("lesson", sorted(LESSONS))
def test_widget_on_ipywidgets_8(lesson):
    import ipywidgets

    if int(ipywidgets.__version__.split(".")[0]) < 8:
        pytest.skip(f"this environment has ipywidgets {ipywidgets.__version__}; the README's install gets 8")
    result = run_widget_in_a_fresh_process(lesson, None)
    assert result["versions"]["ipywidgets"] == ipywidgets.__version__
    check(lesson, result)
