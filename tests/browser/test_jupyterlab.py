"""The lessons' widgets in JupyterLab, in headless Chromium, as a learner uses them.

JupyterLab (the README's open command installs it) starts on 127.0.0.1 with a copy of the lessons in a
temporary folder. For each of lessons 1-3 the test opens the lesson, runs the cells above its widget and
the widget cell, then works the widget with the keyboard as a learner would (lesson 1: the temperature
slider; lesson 2: types labels into the label box and presses Enter; lesson 3: types a query into the search
box and presses Enter) and checks that what the widget shows changes, with no error anywhere. Every wait is
bounded; the server is stopped by its PID.

As in tests/test_widgets.py, whose LESSONS and `prepared` this reuses, the cells before a widget run with
smaller workloads (lesson 1 trains its tiny CLIP for 10 steps instead of 400...); test_widgets.py fails if
those cells change. The three lessons run at once, in three tabs: one to two minutes on two cores.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90
RUN_TIMEOUT_MS = 240_000  # the cells above a widget, on two busy cores
CHANGE_TIMEOUT_MS = 60_000  # one change of a widget, and what it draws
NO_NEWS = {"fetchNews": "false", "checkForUpdates": False}


@dataclass
class Lab:
    url: str
    token: str
    folder: Path

    def api(self, path: str, method: str = "GET") -> object:
        request = urllib.request.Request(f"{self.url}{path}", method=method)
        request.add_header("Authorization", f"token {self.token}")
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
        return json.loads(body) if body else None


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def trimmed_lesson(number: str) -> dict:
    """Lesson `number`'s code cells up to its widget cell, with test_widgets' smaller workloads."""
    import nbformat

    from tests.test_widgets import LESSONS, prepared

    lesson = LESSONS[number]
    notebook = nbformat.read(ROOT / "notebooks" / lesson.notebook, as_version=4)
    widget = next(k for k, cell in enumerate(notebook.cells) if "interactive(" in cell.source)
    notebook.cells = prepared(lesson, [c for c in notebook.cells[: widget + 1] if c.cell_type == "code"])
    for cell in notebook.cells:
        cell.outputs, cell.execution_count = [], None
    notebook.metadata.pop("widgets", None)
    return notebook


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    """JupyterLab on 127.0.0.1 with copies of lessons 1-3; stopped by its PID afterwards."""
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (pip install -e '.[lab]')")
    import nbformat

    from tests.test_widgets import LESSONS

    folder = tmp_path_factory.mktemp("lab")
    lessons, settings = folder / "lessons", folder / "settings"
    lessons.mkdir()
    for number in ("01", "02", "03"):
        nbformat.write(trimmed_lesson(number), lessons / LESSONS[number].notebook)
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps(NO_NEWS))

    token, port = secrets.token_hex(16), free_port()
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}  # inline, as for a learner
    env |= {"HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "MMLESSON_PROFILE": "tiny"}
    env |= {"JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(folder / "workspaces")}
    env |= {"JUPYTER_RUNTIME_DIR": str(folder / "runtime"), "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip", "127.0.0.1"]
    command += [f"--port={port}", f"--ServerApp.token={token}", f"--ServerApp.root_dir={lessons}"]
    command += ["--ServerApp.port_retries=0", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url="]
    command += ["--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = (folder / "jupyter.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=lessons)
    lab = Lab(f"http://127.0.0.1:{port}", token, lessons)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert server.poll() is None, (
                "JupyterLab exited:\n" + (folder / "jupyter.log").read_text()[-3000:]
            )
            try:
                lab.api("/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, f"JupyterLab did not answer within {START_TIMEOUT_S} s"
                time.sleep(0.5)
        yield lab
    finally:
        for session in _sessions(lab):
            try:
                lab.api(f"/api/sessions/{session['id']}", method="DELETE")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def _sessions(lab: Lab) -> list[dict]:
    try:
        return list(lab.api("/api/sessions"))
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return []


ERRORS = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'
OPENED = """(path) => {
  const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = widget && widget.context && widget.context.path === path && widget.sessionContext
    && widget.sessionContext.session && widget.sessionContext.session.kernel;
  return kernel && kernel.status === "idle" && document.querySelector(".jp-Notebook .jp-Cell") !== null;
}"""


def open_lesson(page, lab: Lab, notebook: str) -> None:
    # a workspace of its own, reset: JupyterLab would otherwise reopen the tabs it showed before
    workspace = f"{lab.url}/lab/workspaces/{Path(notebook).stem}/tree/{notebook}"
    page.goto(f"{workspace}?reset&token={lab.token}", wait_until="commit")


def start_lesson(page, notebook: str) -> None:
    """Once `notebook` is open and its kernel ready, start running its cells: those above its widget, then
    the widget cell."""
    page.wait_for_function(OPENED, arg=notebook, timeout=RUN_TIMEOUT_MS)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def widget_cell(page, lab: Lab, notebook: str, control: str):
    """The notebook's last cell (its widget cell), once its widget shows `control`."""
    cell = page.locator(".jp-Notebook .jp-Cell").last
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while not cell.locator(control).count():
        errors = page.locator(ERRORS).all_inner_texts()
        assert not errors, f"{notebook}: a cell failed:\n" + "\n".join(errors)[-3000:]
        if time.monotonic() > deadline:
            shot = lab.folder.parent / f"{notebook}.png"
            page.screenshot(path=str(shot), full_page=True)
            raise AssertionError(
                f"{notebook}: no widget after {RUN_TIMEOUT_MS // 1000} s (screenshot: {shot}); the last cell "
                f"shows:\n{cell.inner_text()[-2000:]}"
            )
        page.wait_for_timeout(500)
    return cell


def shown(cell) -> dict:
    """What the widget's output area shows: its text and the images it draws (their data)."""
    output = cell.locator(".widget-output").first
    return {
        "text": output.inner_text(),
        "images": output.locator("img").evaluate_all("i => i.map(x => x.src)"),
    }


def wait_for(page, cell, what: str, done: Callable[[dict], bool]) -> dict:
    """What the widget's output area shows once `done` holds for it (a callback prints and draws in steps,
    so any change alone may be a half-drawn state)."""
    deadline = time.monotonic() + CHANGE_TIMEOUT_MS / 1000
    while True:
        now = shown(cell)
        if now["images"] and done(now):
            return now
        errors = page.locator(ERRORS).all_inner_texts()
        assert not errors, f"{what}: the callback failed:\n" + "\n".join(errors)[-3000:]
        assert time.monotonic() < deadline, f"{what}: not shown in {CHANGE_TIMEOUT_MS // 1000} s: {now}"
        page.wait_for_timeout(300)


def first_figure(page, cell, what: str) -> dict:
    return wait_for(page, cell, what, lambda now: True)


@pytest.fixture(scope="module")
def tabs(browser, lab: Lab) -> Iterator[dict[str, object]]:
    """Lessons 1-3 open in three tabs, all running at once (their kernels share the cores: together they
    end sooner than one after the other); uncaught errors in any tab fail the last test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(CHANGE_TIMEOUT_MS)
    problems: list[str] = []
    opened = {}
    for notebook in LESSON_FILES:
        page = context.new_page()
        page.on("pageerror", lambda error, name=notebook: problems.append(f"{name}: {error}"))
        open_lesson(page, lab, notebook)
        opened[notebook] = page
    for notebook, page in opened.items():
        start_lesson(page, notebook)
    yield opened
    context.close()
    assert not problems, "uncaught errors in JupyterLab:\n" + "\n".join(problems)


LESSON_FILES = ("01_contrastive_loss.ipynb", "02_zero_shot.ipynb", "03_image_search.ipynb")


def slider(cell, label: str):
    return cell.locator(".widget-slider").filter(has=cell.page.locator(".widget-label", has_text=label))


def text_box(cell, label: str):
    return cell.locator(".widget-text").filter(has=cell.page.locator(".widget-label", has_text=label))


def test_lesson_1_temperature_slider(lab: Lab, tabs):
    page = tabs["01_contrastive_loss.ipynb"]
    cell = widget_cell(page, lab, "01_contrastive_loss.ipynb", ".widget-slider")
    before = wait_for(page, cell, "lesson 1's widget", lambda now: "at scale 10.0: " in now["text"])
    handle = slider(cell, "scale").locator(".noUi-handle")
    handle.focus()
    for _ in range(4):  # four steps of the slider to the right: scale 10 -> 15.8
        handle.press("ArrowRight")
    after = wait_for(page, cell, "lesson 1's scale slider", lambda now: "at scale 15.8: " in now["text"])
    assert after["images"] != before["images"]


def typing_changes_the_figure(lab: Lab, tabs, lesson: str, box_label: str, text: str) -> None:
    """Type `text` into the widget's text box `box_label`, press Enter: the figure below must change."""
    page = tabs[lesson]
    cell = widget_cell(page, lab, lesson, ".widget-text")
    before = first_figure(page, cell, f"{lesson}'s widget")
    box = text_box(cell, box_label).locator("input")
    box.fill(text)
    box.press("Enter")
    wait_for(page, cell, f"{lesson}'s {box_label} box", lambda now: now["images"] != before["images"])


def test_lesson_2_label_box(lab: Lab, tabs):
    typing_changes_the_figure(
        lab, tabs, "02_zero_shot.ipynb", "labels", "pink circle, brown circle, red circle"
    )


def test_lesson_3_search_box(lab: Lab, tabs):
    typing_changes_the_figure(lab, tabs, "03_image_search.ipynb", "search", "a large red circle on the left")
