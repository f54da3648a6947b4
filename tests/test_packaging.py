"""pyproject.toml and environment.yml describe one environment; these tests keep them from drifting apart."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def requirement_key(requirement: str) -> tuple[str, str]:
    """('open-clip-torch', '>=2.24') from 'open_clip_torch>=2.24'; names normalised as pip does (PEP 503)."""
    requirement = requirement.split(";")[0].strip()
    name, specifier = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", requirement).groups()
    return re.sub(r"[-_.]+", "-", name).lower(), specifier.replace(" ", "")


def pyproject_requirements() -> set[tuple[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"].values()
    listed = project["dependencies"] + [requirement for extra in extras for requirement in extra]
    return {requirement_key(r) for r in listed if "python_version <" not in r}


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
    minimum = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(
        map(int, minimum.lstrip(">=").split("."))
    )


def test_runtime_dependencies_cover_what_the_doctor_checks():
    from mmlesson.cli import REQUIRED_MODULES

    names = {name for name, _ in pyproject_requirements()}
    assert {requirement_key(package)[0] for _, package in REQUIRED_MODULES} <= names
