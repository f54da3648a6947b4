"""Write what the notebooks and README derive from one source each: install cells, lesson table, figures.

- The repository's address is set in one place, `[project.urls] Repository` in pyproject.toml. From it this
  script writes the README's lesson table (one row per notebook in notebooks/, titled by the notebook's first
  heading, with Colab and Binder badges) and the install block at the top of every notebook's first code cell
  (INSTALL_BLOCK below), which installs the course on Colab and does nothing where it is installed already.
- Figures live in images/. A markdown cell shows one as `![text](attachment:NAME)`, and this script embeds
  images/NAME in the cell's attachments, so the figure renders where a relative `../images/` link does not
  exist: on Colab, in a downloaded notebook, in the translated lessons (which copy the cell's attachments).

    python scripts/sync_links.py          # rewrite what is out of date
    python scripts/sync_links.py --check  # exit 1 if anything is out of date (run by the tests)
"""

from __future__ import annotations

import argparse
import base64
import json
import re
from pathlib import Path

from mmlesson.course.i18n import lesson_table, notebook_title, repository_url
from mmlesson.course.i18n.project import GENERATED

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "images"
TABLE_START, TABLE_END = next((start, end) for kind, start, end in GENERATED if kind == "lessons")

# pip without --upgrade keeps every installed package that satisfies the requirements, so on Colab this adds
# only what Colab lacks (tests/test_colab.py resolves it against Colab's package list), and nothing it adds
# was imported before this cell: no restart. The `except` suite is the only place the install happens.
INSTALL_BLOCK = """\
# On Colab (or anywhere the course package is missing) install it first; elsewhere this does nothing.
try:
    import mmlesson
except ImportError:
    %pip install -q "mmlesson @ git+{repo}"
    import mmlesson

    print(f"Installed mmlesson {{mmlesson.__version__}} and only the packages it lacked: no restart needed.")
"""
# The block as it stands in a notebook (any version of it): comment lines, the try/except, and the indented or
# blank lines of the except suite.
OLD_BLOCK = re.compile(
    r"\A(?:#[^\n]*\n)*try:\n    import mmlesson\nexcept ImportError:\n(?:(?:[ \t][^\n]*)?\n)*"
)

ATTACHMENT = re.compile(r"attachment:([\w.\-]+)")
MIME_TYPES = {".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def lesson_rows(repo: str) -> list[str]:
    """One README table row per notebook: number, linked title, Colab and Binder badges."""
    lessons = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        title = notebook_title(json.loads(path.read_text(encoding="utf-8")))
        lessons.append((title, f"notebooks/{path.name}"))
    return lesson_table(repo, lessons)


def synced_readme(text: str, repo: str) -> str:
    start, end = text.index(TABLE_START), text.index(TABLE_END)
    header_end = text.index("\n", start) + 1
    return text[:header_end] + "\n".join(lesson_rows(repo)) + "\n" + text[end:]


def install_cell(source: str, repo: str) -> str:
    """`source` of a first code cell with its install block replaced by (or, if it has none, led by) ours."""
    rest = OLD_BLOCK.sub("", source, count=1)
    return INSTALL_BLOCK.format(repo=repo) + "\n" + rest.lstrip("\n")


def attachment(name: str) -> dict[str, str]:
    """images/NAME as a cell attachment: a MIME bundle holding the file in base64, as Jupyter stores it."""
    path = IMAGES / name
    if not path.is_file() or path.suffix.lower() not in MIME_TYPES:
        raise SystemExit(f"attachment:{name} is used in a notebook, but there is no image images/{name}")
    return {MIME_TYPES[path.suffix.lower()]: base64.b64encode(path.read_bytes()).decode("ascii")}


def attachments(source: str) -> dict[str, dict[str, str]]:
    """Every image a markdown cell shows as `attachment:NAME`, from images/."""
    return {name: attachment(name) for name in sorted(set(ATTACHMENT.findall(source)))}


def synced_notebook(text: str, repo: str) -> str:
    """The notebook with its install block and its attachments up to date (formatting kept as Jupyter's)."""
    notebook = json.loads(text)
    cells = notebook["cells"]
    code = [cell for cell in cells if cell["cell_type"] == "code"]
    if code:
        code[0]["source"] = install_cell("".join(code[0]["source"]), repo).splitlines(keepends=True)
    for k, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        wanted = attachments("".join(cell["source"]))
        if wanted != cell.get("attachments", {}):
            cell = {key: value for key, value in cell.items() if key != "attachments"}
            if wanted:
                cell["attachments"] = wanted
            cells[k] = dict(sorted(cell.items()))  # Jupyter writes keys sorted
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report what is out of date")
    args = parser.parse_args()
    repo = repository_url(ROOT)
    targets = {ROOT / "README.md": synced_readme}
    targets.update({path: synced_notebook for path in sorted((ROOT / "notebooks").glob("*.ipynb"))})
    stale = []
    for path, sync in targets.items():
        text = path.read_text(encoding="utf-8")
        wanted = sync(text, repo)
        if wanted != text:
            stale.append(path.relative_to(ROOT).as_posix())
            if not args.check:
                path.write_text(wanted, encoding="utf-8")
    verb = "out of date" if args.check else "updated"
    for name in stale:
        print(f"{verb}: {name}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
