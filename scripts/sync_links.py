"""Write the repository's address where learners click it: README badges and each notebook's install cell.

The address is set in one place, `[project.urls] Repository` in pyproject.toml. This script derives from it
the README's lesson table (one row per notebook in notebooks/, titled by the notebook's first heading, with
Colab and Binder badges) and the `%pip install` line of every notebook's first code cell, which installs the
course on Colab.

    python scripts/sync_links.py          # rewrite what is out of date
    python scripts/sync_links.py --check  # exit 1 if anything is out of date (run by the tests)
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from mmlesson.i18n import lesson_table, notebook_title, repository_url

ROOT = Path(__file__).resolve().parents[1]
TABLE_START, TABLE_END = "<!-- lessons:start", "<!-- lessons:end -->"
INSTALL_LINE = re.compile(r'%pip install -q "mmlesson @ git\+[^"]*"')


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


def synced_notebook(text: str, repo: str) -> str:
    """The notebook with its install line pointing at `repo` (formatting kept as Jupyter writes it)."""
    notebook = json.loads(text)
    install = f'%pip install -q "mmlesson @ git+{repo}"'
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["source"] = [INSTALL_LINE.sub(install, line) for line in cell["source"]]
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
