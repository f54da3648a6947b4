"""What the package declares: pyproject.toml and environment.yml agree, the runtime list is what the package
imports and leaves Colab's Jupyter stack alone, the extras are where the README uses them, and every figure
in the lessons renders wherever a lesson is opened."""

from __future__ import annotations

import ast
import base64
import functools
import importlib.metadata
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, names, project, requirement_key

# The extras a learner's environment holds; `site` and `browser` build and test the website (CI, maintainers).
ENVIRONMENT_EXTRAS = ("lab", "i18n", "test")


def pyproject_requirements() -> set[tuple[str, str]]:
    """The dependencies and the extras of ENVIRONMENT_EXTRAS, without the test extra's self-reference."""
    extras = [project()["optional-dependencies"][name] for name in ENVIRONMENT_EXTRAS]
    listed = project()["dependencies"] + [requirement for extra in extras for requirement in extra]
    keys = {requirement_key(r) for r in listed if "python_version <" not in r}
    return {(name, specifier) for name, specifier in keys if name != "mmlesson"}


def environment_requirements() -> set[tuple[str, str]]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    return {requirement_key(r) for r in pip_section if not r.startswith("-")}


def test_environment_yml_matches_pyproject():
    in_pyproject, in_environment = pyproject_requirements(), environment_requirements()
    assert in_pyproject - in_environment == set(), "in pyproject.toml but not in environment.yml"
    assert in_environment - in_pyproject == set(), "in environment.yml but not in pyproject.toml"


def test_environment_installs_the_package_and_python_matches():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip_section = next(item["pip"] for item in environment["dependencies"] if isinstance(item, dict))
    assert "-e ." in pip_section
    python = next(d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python="))
    minimum = project()["requires-python"]
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(
        map(int, minimum.lstrip(">=").split("."))
    )


def test_runtime_dependencies_cover_what_the_doctor_checks():
    from mmlesson.course.cli import REQUIRED_MODULES

    names = {name for name, _ in pyproject_requirements()}
    assert {requirement_key(package)[0] for _, package in REQUIRED_MODULES} <= names


# Colab preinstalls its own Jupyter stack (tests/test_colab.py): the package must not ask for any of it.
JUPYTER_STACK = {
    "ipykernel",
    "ipython",
    "jupyter-client",
    "jupyter-server",
    "jupyterlab",
    "notebook",
    "tornado",
}
I18N_TOOLS = {"polib", "babel", "mistune", "nbformat", "tomli"}


def test_runtime_dependencies_leave_jupyter_and_translation_tools_to_extras():
    runtime, extras = names(project()["dependencies"]), project()["optional-dependencies"]
    assert not runtime & (JUPYTER_STACK | {"traitlets"}), "Colab brings its own Jupyter; use an extra"
    assert not runtime & I18N_TOOLS, "the translation tools belong in the i18n extra"
    assert names(extras["lab"]) == {"jupyterlab"}
    assert names(extras["i18n"]) == I18N_TOOLS
    assert "mmlesson[i18n,lab]" in extras["test"], "the tests run the i18n tools and need JupyterLab's kernel"
    assert {"ipykernel", "nbval", "nbclient", "pytest"} <= names(extras["test"])


def readme_command(marker: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(re.escape(marker) + r"\n```bash\n(.*?)\n```", readme, re.S)[1]


def test_readme_commands_install_the_extras_they_need():
    assert 'pip install -e ".[lab]"' in readme_command("<!-- open-command -->")
    assert 'pip install -e ".[test]"' in readme_command("<!-- test-command -->")
    assert 'pip install -e ".[site]"' in readme_command("<!-- site-command -->")


def test_the_environment_covers_every_extra_but_the_website_tools():
    assert set(project()["optional-dependencies"]) == {*ENVIRONMENT_EXTRAS, "site", "browser"}


@functools.cache
def distributions_of_modules() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def imported_distributions(path: Path) -> set[str]:
    """The distributions whose modules a file imports (not the standard library, not mmlesson itself)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    modules -= set(sys.stdlib_module_names) | {"mmlesson", "__future__"}
    installed = distributions_of_modules()
    return {requirement_key(dist)[0] for module in modules for dist in installed.get(module, [module])}


def ipywidgets_requirements() -> set[str]:
    """What ipywidgets itself requires at run time (its extras left out)."""
    required = importlib.metadata.requires("ipywidgets") or []
    return {requirement_key(r)[0] for r in required if "extra ==" not in r}


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "mmlesson").rglob("*.py")),
    ids=lambda p: p.relative_to(ROOT / "mmlesson").as_posix(),
)
def test_every_import_of_the_package_is_declared(path):
    # IPython is Colab's to pin (see JUPYTER_STACK): it comes with ipywidgets, which the package declares.
    declared = names(project()["dependencies"]) | (ipywidgets_requirements() & {"ipython"})
    if "i18n" in path.relative_to(ROOT / "mmlesson").parts:
        declared |= names(project()["optional-dependencies"]["i18n"])
    assert imported_distributions(path) <= declared, "add it to pyproject.toml (and environment.yml)"


@pytest.mark.parametrize("missing", ["polib", "babel", "mistune", "nbformat"])
def test_i18n_without_its_extra_says_what_to_install(missing, monkeypatch, capsys):
    from mmlesson.course.cli import main

    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` fail, as when not installed
    assert main(["i18n", "check", "--root", str(ROOT)]) == 1
    error = capsys.readouterr().err
    assert missing in error and 'pip install "mmlesson[i18n]"' in error and "Traceback" not in error


IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)|<img\s[^>]*?src=[\"']([^\"']+)", re.I)


def markdown_images() -> list[tuple[str, dict, str]]:
    found = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "markdown":
                for match in IMAGE.finditer("".join(cell["source"])):
                    found.append((f"{path.name} cell {cell.get('id')}", cell, match[1] or match[2]))
    return found


def test_the_lessons_show_figures():
    assert any(target.startswith("attachment:") for _, _, target in markdown_images())


@pytest.mark.parametrize(
    "where, cell, target", markdown_images(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_markdown_images_render_on_colab_and_in_translations(where, cell, target):
    """A relative image link breaks on Colab and in a translated lesson; a cell attachment travels with it.

    Figures come from images/: `python scripts/sync_links.py` embeds images/NAME as attachment NAME.
    """
    if target.startswith(("https://", "http://")):
        return
    assert target.startswith("attachment:"), f"{where}: {target} is neither a web address nor attachment:NAME"
    name = target.removeprefix("attachment:")
    bundle = cell.get("attachments", {}).get(name)
    assert bundle, f"{where}: no attachment {name} in the cell; run python scripts/sync_links.py"
    ((mime, data),) = bundle.items()
    source = ROOT / "images" / name
    assert source.is_file(), f"{where}: attachment {name} has no source images/{name}"
    assert mime == {".svg": "image/svg+xml", ".png": "image/png"}.get(source.suffix, mime)
    assert base64.b64decode(data) == source.read_bytes(), f"{where}: {name} differs from images/{name}; sync"
