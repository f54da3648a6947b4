"""A volunteer who fixes a translation needs no PyTorch: the i18n commands run in an environment that holds
only the package, installed without its dependencies, and the translation extra (issue 17).

The environment is made with the commands `translations/README.md` gives a translator: a new virtual
environment, then its `pip install` lines, run as they are written there.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, names, project, require_index


def translator_installs() -> list[list[str]]:
    """The arguments of each `pip install` the translators' README gives."""
    text = (ROOT / "translations" / "README.md").read_text(encoding="utf-8")
    section = text.split("## What a translator installs", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    commands = [part.strip() for line in block.splitlines() for part in line.split("&&")]
    return [shlex.split(command)[2:] for command in commands if command.startswith("pip install")]


def test_the_translators_install_is_the_package_without_dependencies_and_the_i18n_extra():
    package, extra = translator_installs()
    assert package == ["--no-deps", "-e", "."]
    assert extra == project()["optional-dependencies"]["i18n"]
    assert not names(extra) & {"torch", "torchvision", "open-clip-torch"}


@pytest.mark.slow
@pytest.mark.network
def test_i18n_commands_run_without_pytorch(tmp_path: Path):
    require_index()
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, timeout=120)
    python = str(tmp_path / "venv" / "bin" / "python")
    for install in translator_installs():
        result = subprocess.run(
            [python, "-m", "pip", "--disable-pip-version-check", "install", "--quiet", *install],
            capture_output=True, text=True, cwd=ROOT, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([python, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)

    assert run("-c", "import torch").returncode != 0, "the environment should not have PyTorch"
    checked = run("-m", "mmlesson", "i18n", "check")
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "Every translation is complete and built." in checked.stdout

    course = tmp_path / "course"  # the commands that write, on a copy of the course
    for folder in ("notebooks", "translations", "images"):
        shutil.copytree(ROOT / folder, course / folder)
    for file in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / file, course / file)
    for action in (["update"], ["build"], ["extract", "--lang", "pt-BR"]):
        done = run("-m", "mmlesson", "i18n", *action, "--root", str(course))
        assert done.returncode == 0, f"i18n {action[0]}: " + done.stdout[-3000:] + done.stderr[-3000:]
    assert (course / "translations" / "pt-BR" / "po" / "00_setup.po").exists()
