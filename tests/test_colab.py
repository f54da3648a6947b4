"""The lessons' install cell works on Colab without changing a package Colab has preinstalled.

Colab's runtime is fixed and public (tests/colab/README.md): its package list is committed here. Upgrading a
package Colab preinstalls breaks it (ipywidgets 8 on Colab: widgets no longer display; a newer ipython,
ipykernel or tornado can crash the runtime). So the test resolves the install cell's requirement the way pip
on Colab would, offline from Colab itself:

- a wheel of this checkout stands in for the `git+` URL of the install cell;
- `pip install --dry-run --report` for Python 3.13 on manylinux x86_64 (`--only-binary=:all:`, as Colab gets
  wheels) with `--ignore-installed` (nothing of this machine counts) decides what would be installed;
- every package of Colab's list is a constraint at its version (`name==version`; `name @ URL` lines give the
  version in the file name; a `git+` line names no version, so it is left out and said so) and is also offered
  as a stub wheel with that name and version and no dependencies: pip takes what Colab has over the index
  (the stub's platform tag ranks first) and so never fetches the wheel or metadata of a preinstalled
  package, torch and its CUDA libraries included (GBs where the index lacks PEP 658 metadata). That mimics
  pip on Colab, which keeps an installed package that fits and does not revisit its dependencies (Colab's
  set is consistent).
  One limit: a stub declares no extras, so when a new package asks for `pkg[extra]` of a preinstalled `pkg`
  pip warns that the extra is missing and does not check the extra's own dependencies.

It fails, naming the package, when pip cannot resolve (a requirement conflicts with a preinstalled version)
or would install another version of a preinstalled package, or a Jupyter front-end or kernel package. Both
Colab runtimes are checked: the CPU one and the GPU one (where the lessons use the `full` profile).
It needs the package index; where pip cannot reach it the test is skipped and says so.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import ROOT, pip, require_index

COLAB = ROOT / "tests" / "colab"
FREEZES = {"cpu": COLAB / "pip-freeze.txt", "gpu": COLAB / "pip-freeze.gpu.txt"}
COLAB_PYTHON = "3.13"
# Colab runs Ubuntu 22.04 (glibc 2.35) on x86_64: manylinux wheels for glibc 2.17 to 2.35 install there.
# pip does not widen a manylinux_2_35 --platform to older glibc versions, so every one is listed.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(35, 16, -1)]
PLATFORMS += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
STUB_TAG = f"cp{COLAB_PYTHON.replace('.', '')}-cp{COLAB_PYTHON.replace('.', '')}-{PLATFORMS[0]}"
# What Colab brings its own of and must never get from us, even where Colab lacks it (JupyterLab).
JUPYTER_STACK = {
    "ipykernel",
    "ipython",
    "ipywidgets",
    "jupyter-client",
    "jupyter-server",
    "jupyterlab",
    "jupyterlab-widgets",
    "nbclassic",
    "notebook",
    "tornado",
    "traitlets",
    "widgetsnbextension",
}
NETWORK_TROUBLE = (
    "NewConnectionError",
    "Max retries exceeded",
    "ConnectTimeout",
    "ReadTimeout",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "ProxyError",
    "SSLError",
    "Could not fetch URL",
)
INSTALL = re.compile(
    r'%pip install (?P<options>[^"\n]*)"(?P<name>mmlesson(?:\[[^\]]*\])?) @ git\+[^"]+"(?P<rest>.*)'
)


def canonical(name: str) -> str:
    """A package name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def base_version(version: str) -> str:
    return version.split("+")[0]


# --- Colab's package list ---------------------------------------------------------------------------------


@dataclass
class Freeze:
    pins: dict[str, str]  # canonical name -> version, as installed on Colab
    left_out: dict[str, str] = field(default_factory=dict)  # line -> why it is not a pin


def read_freeze(path: Path) -> Freeze:
    """Colab's `pip freeze` as pins; `name @ URL` lines give their version in the file name."""
    freeze = Freeze(pins={})
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "==" in line:
            name, version = (part.strip() for part in line.split("==", 1))
            freeze.pins[canonical(name)] = version
            continue
        name, _, url = (part.strip() for part in line.partition(" @ "))
        if url.startswith("git+"):
            freeze.left_out[line] = "a git checkout names no version that pip could pin"
            continue
        filename = urllib.parse.unquote(url.split("#")[0].rsplit("/", 1)[-1])
        if filename.endswith(".whl"):
            version = filename.split("-")[1]
        else:  # an sdist: name-version.tar.gz
            version = re.sub(r"\.(tar\.gz|zip)$", "", filename).rsplit("-", 1)[-1]
        freeze.pins[canonical(name)] = version
    return freeze


def write_stubs(pins: dict[str, str], folder: Path) -> None:
    """One empty wheel per pin: the name and version Colab has, no dependencies, the best-ranked tag."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, version in pins.items():
        dist = f"{name.replace('-', '_')}-{version}"
        with zipfile.ZipFile(folder / f"{dist}-{STUB_TAG}.whl", "w") as wheel:
            wheel.writestr(
                f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            )
            wheel.writestr(
                f"{dist}.dist-info/WHEEL",
                f"Wheel-Version: 1.0\nGenerator: stub\nRoot-Is-Purelib: false\nTag: {STUB_TAG}\n",
            )
            wheel.writestr(f"{dist}.dist-info/RECORD", "")


# --- pip ----------------------------------------------------------------------------------------------------


def conflicting_packages(said: str) -> set[str]:
    """The packages pip names in a ResolutionImpossible or 'No matching distribution' error."""
    name = r"([A-Za-z0-9][A-Za-z0-9._-]*)"
    patterns = [
        rf"depends on {name}",
        rf"The user requested \(constraint\) {name}",
        rf"The user requested {name}",
        rf"No matching distribution found for {name}",
        rf"satisfies the requirement {name}",
    ]
    found = {canonical(m) for pattern in patterns for m in re.findall(pattern, said)}
    return found - {"mmlesson"}


@dataclass
class Resolution:
    new: dict[str, str]  # what pip would add to Colab
    kept: dict[str, str]  # preinstalled packages the course uses as they are
    changed: dict[str, tuple[str, str]]  # preinstalled name -> (Colab's version, the one pip would install)
    seconds: float
    extras_not_checked: list[str] = field(default_factory=list)  # `pkg[extra]` of preinstalled packages


def read_report(report: dict, pins: dict[str, str]) -> tuple[dict, dict, dict]:
    """Sort pip's --report install list into (new, kept, changed) against Colab's pins."""
    new, kept, changed = {}, {}, {}
    for item in report["install"]:
        name, version = canonical(item["metadata"]["name"]), item["metadata"]["version"]
        if name not in pins:
            new[name] = version
        elif base_version(version) == base_version(pins[name]):
            kept[name] = version
        else:
            changed[name] = (pins[name], version)
    return new, kept, changed


def install_requirement() -> tuple[str, list[str]]:
    """The install cell's requirement name (with extras) and pip options, the same in every lesson."""
    found = set()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        first = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
        match = INSTALL.search(first)
        assert match, f'{path.name}: no `%pip install "mmlesson @ git+..."` line in the first code cell'
        found.add((match["name"], (match["options"] + " " + match["rest"]).strip()))
    assert len(found) == 1, f"the lessons install the course in different ways: {found}"
    name, options = found.pop()
    return name, options.split()


def resolve_on_colab(wheel: Path, pins: dict[str, str], work: Path) -> Resolution:
    """What `pip install` of the install cell would do on a Colab with `pins` installed."""
    name, options = install_requirement()
    stubs, constraints, report = work / "colab-stubs", work / "colab-constraints.txt", work / "report.json"
    write_stubs(pins, stubs)
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()), encoding="utf-8")
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    abi = "cp" + COLAB_PYTHON.replace(".", "")
    started = time.perf_counter()
    result = pip(
        "install",
        *[option for option in options if option not in ("-q", "--quiet")],
        "--dry-run",
        "--ignore-installed",
        # pip before 23.3 takes --python-version and --platform only with --target; nothing is written there
        "--target",
        str(work / "target"),
        "--report",
        str(report),
        "--python-version",
        COLAB_PYTHON,
        "--implementation",
        "cp",
        "--abi",
        abi,
        *platforms,
        "--only-binary=:all:",
        "--find-links",
        str(stubs),
        "--constraint",
        str(constraints),
        f"{name} @ {wheel.as_uri()}",
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        said = result.stdout + result.stderr  # pip explains a conflict on stdout, and fails on stderr
        if any(marker in said for marker in NETWORK_TROUBLE):  # then pip's answer says nothing about Colab
            pytest.skip(f"pip lost the package index: {result.stderr.strip().splitlines()[-1]}")
        names = ", ".join(sorted(conflicting_packages(said))) or "(pip named none)"
        pytest.fail(
            f"pip cannot install the course on Colab without changing a preinstalled package: {names}\n"
            + "\n".join(line for line in said.splitlines() if "Location '" not in line)[-3000:],
            pytrace=False,
        )
    new, kept, changed = read_report(json.loads(report.read_text(encoding="utf-8")), pins)
    extras = re.findall(
        r"WARNING: (\S+) \S+ does not provide the extra '([^']+)'", result.stdout + result.stderr
    )
    return Resolution(new, kept, changed, seconds, sorted({f"{name}[{extra}]" for name, extra in extras}))


@pytest.fixture(scope="session")
def course_wheel(tmp_path_factory) -> Path:
    """A wheel of this checkout, built from a copy (the build leaves build/ and egg-info behind)."""
    require_index()
    work = tmp_path_factory.mktemp("course-wheel")
    source = work / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "mmlesson", source / "mmlesson", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    result = pip("wheel", "--no-deps", "--wheel-dir", str(work / "dist"), str(source))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (wheel,) = (work / "dist").glob("mmlesson-*.whl")
    return wheel


def describe(packages: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in sorted(packages.items())) or "nothing"


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("runtime", sorted(FREEZES))
def test_install_cell_changes_nothing_colab_has(runtime, course_wheel, tmp_path):
    freeze = read_freeze(FREEZES[runtime])
    resolution = resolve_on_colab(course_wheel, freeze.pins, tmp_path)
    print(f"\nColab {runtime} runtime, resolved in {resolution.seconds:.1f} s")
    print(f"  would install (new): {describe(resolution.new)}")
    print(f"  uses as preinstalled: {describe(resolution.kept)}")
    for line, why in freeze.left_out.items():
        print(f"  not a constraint: {line} ({why})")
    if resolution.extras_not_checked:
        print(f"  extras of preinstalled packages, not checked: {', '.join(resolution.extras_not_checked)}")
    assert "mmlesson" in resolution.new
    assert not resolution.changed, "would change preinstalled packages: " + ", ".join(
        f"{name} {was} -> {now}" for name, (was, now) in sorted(resolution.changed.items())
    )
    jupyter = sorted(set(resolution.new) & JUPYTER_STACK)
    assert not jupyter, f"would install Jupyter packages on Colab, which brings its own: {jupyter}"


@pytest.mark.slow
@pytest.mark.network
def test_a_conflict_with_colab_fails_and_names_the_package(course_wheel, tmp_path):
    """The test of the test: a Colab whose ipywidgets is older than the course allows."""
    pins = dict(read_freeze(FREEZES["cpu"]).pins, ipywidgets="7.6.0")
    with pytest.raises(pytest.fail.Exception, match=r"without changing a preinstalled package: ipywidgets\n"):
        resolve_on_colab(course_wheel, pins, tmp_path)


# --- offline: the parts that read pip's answers -------------------------------------------------------------


@pytest.mark.parametrize("runtime", sorted(FREEZES))
def test_freeze_is_read_whole(runtime):
    freeze = read_freeze(FREEZES[runtime])
    assert freeze.pins["torch"].startswith("2.11.0")  # from `torch @ https://...torch-2.11.0%2Bcpu-...whl`
    assert freeze.pins["ipywidgets"] == "7.7.1" and freeze.pins["google-colab"] == "1.0.0"
    gateway = "jupyter_kernel_gateway @ git+https://github.com/googlecolab/kernel_gateway@"
    assert [line[: len(gateway)] for line in freeze.left_out] == [gateway]
    for line in FREEZES[runtime].read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            assert line in freeze.left_out or canonical(re.split(r"==| @ ", line)[0]) in freeze.pins, line


def test_report_sorting_names_a_changed_package():
    report = {
        "install": [
            {"metadata": {"name": "ipywidgets", "version": "8.1.9"}},
            {"metadata": {"name": "torch", "version": "2.11.0"}},
            {"metadata": {"name": "open_clip_torch", "version": "3.3.0"}},
        ]
    }
    new, kept, changed = read_report(report, {"ipywidgets": "7.7.1", "torch": "2.11.0+cpu"})
    assert new == {"open-clip-torch": "3.3.0"} and kept == {"torch": "2.11.0"}
    assert changed == {"ipywidgets": ("7.7.1", "8.1.9")}


def test_conflict_parsing():
    stderr = """ERROR: Cannot install mmlesson==0.1.0 because these package versions have conflicting [...]

The conflict is caused by:
    mmlesson 0.1.0 depends on ipywidgets>=8
    The user requested (constraint) ipywidgets==7.7.1
"""
    assert conflicting_packages(stderr) == {"ipywidgets"}
    missing = "ERROR: No matching distribution found for taming-transformers-rom1504>=0.0.6\n"
    assert conflicting_packages(missing) == {"taming-transformers-rom1504"}
