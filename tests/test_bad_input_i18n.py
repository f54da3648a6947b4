"""Every bad input the translation tooling has been tried with, one row each: how it is made, what happens.

Each row spoils the French translation of the fixture course of tests/test_i18n.py (or the bare course), runs
one `python -m mmlesson i18n` step, and checks its exit status, that the message names the file, the entry
and the offending thing, and that a refused step wrote nothing (every file under the test's folder, the
repository and what lies beside it, is compared byte for byte). Rows with status 0 are the near misses that
must keep working. Add a row for each new way a translator, an editor or a checkout can break things.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polib
import pytest

from mmlesson.course.i18n import Project, TranslationError
from tests.test_i18n import (
    BODY,
    CODE,
    FRENCH_BODY,
    FRENCH_TITLE,
    TITLE,
    TITLE_CELL,
    i18n_command,
    lesson,
    make_course,
    make_translated,
    markdown_cell,
    po_path,
    write_notebook,
)

PO = "translations/fr/po/00_demo.po"
README_PO = "translations/fr/po/README.po"
BUILT = "translations/fr/notebooks/00_demo.ipynb"
ATTACHMENT = {"figure.png": {"image/png": "iVBORw0KGgo="}}

Action = Callable[[Path], tuple[int, str]]


@dataclass(frozen=True)
class Bad:
    """One row: `spoil` makes the bad input in the course at the root; `action` runs a step on the root."""

    spoil: Callable[[Path], object]
    action: Action
    says: tuple[str, ...]
    status: int = 1
    never_says: tuple[str, ...] = ()
    start: str = "translated"  # "translated": extracted, translated and built; "course": nothing extracted
    verify: Callable[[Path], object] | None = None  # what a step that succeeds must have written


# --- how rows run steps and spoil things --------------------------------------------------------------------


def step(action: str, *options: str) -> Action:
    """`i18n <action> --lang fr`, or with the options given instead."""
    return lambda root: i18n_command(root, action, *(options or ("--lang", "fr")))


def nothing(root: Path) -> None:
    """No spoiling: the row's action itself is the bad input."""


def entry(cell: str, text: str, flags: tuple[str, ...] = ()) -> Callable[[Path], None]:
    """Give entry `cell` of 00_demo.po the translation `text`, as a translator's editor would."""

    def spoil(root: Path) -> None:
        po = polib.pofile(str(po_path(root)))
        found = next(e for e in po if e.msgctxt == cell)
        found.msgstr, found.flags = text, list(flags)
        po.save()

    return spoil


def title(text: str) -> Callable[[Path], None]:
    """The title cell translated as `text` (English: a $-log p$ formula, an image, inline code)."""
    return entry("title", text)


def po_bytes(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def spoil(root: Path) -> None:
        path = po_path(root)
        path.write_bytes(change(path.read_bytes()))

    return spoil


def latin1_bytes(data: bytes) -> bytes:
    return data.decode("utf-8").encode("latin-1")


def declare(charset: str) -> Callable[[bytes], bytes]:
    return lambda data: data.replace(b"charset=UTF-8", charset.encode())


def cut_after_header(data: bytes) -> bytes:
    return data.split(b"\n\n", 1)[0] + b"\n"


def syntax_error(data: bytes) -> bytes:
    return data.replace(b'msgctxt "body"', b'msgctxt "body"\nnot PO syntax')


def language_header(data: bytes) -> bytes:
    return data.replace(b"Language: fr", b"Language: es")


def english(*cells: dict) -> Callable[[Path], None]:
    return lambda root: write_notebook(root, lesson(*cells))


def without_id(root: Path) -> None:
    cell = markdown_cell("x", "## No id")
    del cell["id"]
    write_notebook(root, lesson(TITLE, cell))


def moved_out(folder: str) -> Callable[[Path], None]:
    """Replace `folder` of the repository by a symbolic link to a copy beside the repository."""

    def spoil(root: Path) -> None:
        inside = root / folder
        outside = root.parent / "elsewhere" / inside.name
        outside.parent.mkdir(exist_ok=True)
        shutil.move(inside, outside)
        inside.symlink_to(outside, target_is_directory=outside.is_dir())
        entry("body", FRENCH_BODY.replace("Partie", "Section"))(root)  # so that build has something to write

    return spoil


def new_language_linked_out(root: Path) -> None:
    (root.parent / "elsewhere" / "de").mkdir(parents=True)
    (root / "translations" / "de").symlink_to(root.parent / "elsewhere" / "de")


def write_outside(root: Path) -> tuple[int, str]:
    try:
        Project(root).require_safe([root / "translations" / ".." / ".." / "elsewhere.md"])
    except TranslationError as error:
        return 1, str(error)
    return 0, ""


def with_attachment(translated_target: str) -> Callable[[Path], None]:
    """The English title cell shows a cell attachment; the translation links `translated_target`."""

    def spoil(root: Path) -> None:
        cell = markdown_cell("title", TITLE_CELL.replace("../images/figure.png", "attachment:figure.png"))
        cell["attachments"] = ATTACHMENT
        write_notebook(root, lesson(cell, CODE, BODY))
        po = polib.pofile(str(po_path(root)))
        found = next(e for e in po if e.msgctxt == "title")
        found.msgid = "".join(cell["source"])
        found.msgstr = FRENCH_TITLE.replace("../images/figure.png", translated_target)
        po.save()

    return spoil


def carries_the_attachment(root: Path) -> None:
    cell = json.loads((root / BUILT).read_text(encoding="utf-8"))["cells"][0]
    assert cell["attachments"] == ATTACHMENT and "](attachment:figure.png)" in "".join(cell["source"])


def in_title(old: str, new: str) -> Callable[[Path], None]:
    return title(FRENCH_TITLE.replace(old, new))


def in_body(old: str, new: str) -> Callable[[Path], None]:
    return entry("body", FRENCH_BODY.replace(old, new))


def added(text: str) -> Callable[[Path], None]:
    """The title's translation with `text` added at the end of its paragraph."""
    return title(FRENCH_TITLE + " " + text)


HIDDEN_FIGURE = " <!-- ![](../images/figure.png) -->"


def figure_as(replacement: str, definition: str = "") -> Callable[[Path], None]:
    """The title's figure replaced by `replacement` (a reference `definition` after it), the figure's own
    target kept in a comment where the exact link-target check of today still finds it."""
    text = FRENCH_TITLE.replace("![la figure](../images/figure.png)", replacement + HIDDEN_FIGURE)
    return title(text + (f"\n\n{definition}" if definition else ""))


def intro_link_as(replacement: str) -> Callable[[Path], None]:
    """The README intro's one link replaced by `replacement`, its target kept in a comment (see figure_as)."""

    def spoil(root: Path) -> None:
        po = polib.pofile(str(po_path(root, "README")))
        intro = next(e for e in po if e.msgid.startswith("An intro"))
        intro.msgstr = f"Une intro, un {replacement}. <!-- [](notebooks/00_demo.ipynb) -->"
        po.save()

    return spoil


def title_says(*fragments: str) -> tuple[str, ...]:
    return (f"{PO}, entry 'title'", *fragments)


# --- the table ----------------------------------------------------------------------------------------------

CHECK, BUILD, UPDATE, EXTRACT = step("check"), step("build"), step("update"), step("extract")
CHARSET_FIX = "Catalog > Properties > Charset to UTF-8"

ROWS = [
    # PO files that cannot be read faithfully: refused by every step, nothing written, no advice to delete
    pytest.param(
        Bad(po_bytes(syntax_error), CHECK, (f"{PO} cannot be read", "(line ")), id="po-syntax-error"
    ),
    pytest.param(
        Bad(po_bytes(declare("charset=ISO-8859-1")), CHECK, ("declares charset=ISO-8859-1", CHARSET_FIX, PO)),
        id="utf8-bytes-latin1-header-check",
    ),
    pytest.param(
        Bad(po_bytes(declare("charset=ISO-8859-1")), BUILD, ("declares charset=ISO-8859-1", PO)),
        id="utf8-bytes-latin1-header-build",
    ),
    pytest.param(
        Bad(po_bytes(declare("charset=ISO-8859-1")), UPDATE, ("declares charset=ISO-8859-1", PO)),
        id="utf8-bytes-latin1-header-update",
    ),
    pytest.param(
        Bad(po_bytes(latin1_bytes), CHECK, (f"{PO} cannot be read: it is not UTF-8", "0xe9", CHARSET_FIX)),
        id="latin1-bytes-utf8-header-check",
    ),
    pytest.param(
        Bad(po_bytes(latin1_bytes), BUILD, ("is not UTF-8", PO)), id="latin1-bytes-utf8-header-build"
    ),
    pytest.param(
        Bad(po_bytes(latin1_bytes), UPDATE, ("is not UTF-8", PO)), id="latin1-bytes-utf8-header-update"
    ),
    pytest.param(
        Bad(po_bytes(lambda d: latin1_bytes(declare("charset=ISO-8859-1")(d))), BUILD, ("is not UTF-8", PO)),
        id="latin1-bytes-latin1-header-build",
    ),
    pytest.param(Bad(po_bytes(declare("")), CHECK, ("declares no charset", PO)), id="no-charset-declared"),
    pytest.param(
        Bad(
            po_bytes(lambda d: b""),
            CHECK,
            (f"{PO} cannot be read: it has no header",),
            never_says=("delete",),
        ),
        id="po-emptied",
    ),
    pytest.param(
        Bad(po_bytes(lambda d: b"\xff\xfe\x00garbage"), UPDATE, ("is not UTF-8",)), id="po-binary-update"
    ),
    pytest.param(
        Bad(po_bytes(cut_after_header), CHECK, ("2 English entries are missing",), never_says=("delete it",)),
        id="po-cut-short-keeps-built-notebook",
    ),
    pytest.param(
        Bad(entry("body", FRENCH_BODY, ("fuzzy",)), CHECK, ("fuzzy",), never_says=("delete it",)),
        id="fuzzy-entry-keeps-built-notebook",
    ),
    pytest.param(
        Bad(po_bytes(language_header), CHECK, ("says it is in language 'es', but it sits in the fr folder",)),
        id="po-wrong-language-header",
    ),
    # the English side
    pytest.param(
        Bad(
            without_id,
            EXTRACT,
            ("notebooks/00_demo.ipynb: markdown cell 2 has no id", "JupyterLab"),
            start="course",
        ),
        id="cell-without-id",
    ),
    pytest.param(
        Bad(
            english(TITLE, CODE, markdown_cell("title", "## Twice")),
            EXTRACT,
            ("two cells share the id 'title'",),
            start="course",
        ),
        id="two-cells-one-id",
    ),
    pytest.param(
        Bad(
            english(TITLE, CODE, markdown_cell("body", "## Changed")),
            CHECK,
            ("stale, its English has changed",),
        ),
        id="english-changed-not-updated",
    ),
    # languages and where the command runs
    *[
        pytest.param(
            Bad(
                nothing,
                step("extract", "--lang", code),
                (f"{code!r} is not a language code", "zh-CN"),
                start="course",
            ),
            id=f"language-code-{code}",
        )
        for code in ("xx", "zh_CN", "vn")
    ],
    pytest.param(
        Bad(nothing, step("check", "--lang", "de"), ("extract --lang de",), start="course"),
        id="language-not-started",
    ),
    pytest.param(
        Bad(
            nothing,
            lambda root: i18n_command(root / "images", "check"),
            ("no notebooks/ folder",),
            start="course",
        ),
        id="outside-a-course-repository",
    ),
    # symbolic links and paths out of the repository: nothing is written through them
    pytest.param(
        Bad(
            moved_out("translations/fr"), BUILD, ("nothing was written: translations/fr is a symbolic link",)
        ),
        id="language-folder-symlink-build",
    ),
    pytest.param(
        Bad(
            moved_out("translations/fr"),
            CHECK,
            (f"{BUILT} cannot be built: translations/fr is a symbolic link",),
        ),
        id="language-folder-symlink-check",
    ),
    pytest.param(
        Bad(moved_out("translations/fr/po"), UPDATE, ("translations/fr/po is a symbolic link",)),
        id="po-folder-symlink-update",
    ),
    pytest.param(
        Bad(moved_out("translations/fr/notebooks"), BUILD, ("translations/fr/notebooks is a symbolic link",)),
        id="built-folder-symlink-build",
    ),
    pytest.param(
        Bad(moved_out(BUILT), BUILD, (f"{BUILT} is a symbolic link",)), id="built-file-symlink-build"
    ),
    pytest.param(
        Bad(moved_out("translations"), BUILD, ("translations is a symbolic link",)),
        id="translations-folder-symlink-build",
    ),
    pytest.param(
        Bad(
            new_language_linked_out,
            step("extract", "--lang", "de"),
            ("translations/de is a symbolic link",),
            start="course",
        ),
        id="new-language-folder-symlink-extract",
    ),
    pytest.param(Bad(nothing, write_outside, ("is outside the repository",)), id="path-outside-repository"),
    # translations that break the markdown: named, not built
    pytest.param(
        Bad(entry("body", FRENCH_BODY.removesuffix("```")), BUILD, ("entry 'body'", "code fence")),
        id="code-fence-not-closed",
    ),
    pytest.param(
        Bad(in_body("print(1)", "imprimer(1)"), BUILD, ("entry 'body'", "code block lost or changed")),
        id="code-block-translated",
    ),
    pytest.param(Bad(in_title("$-\\log p$", "-\\log p"), BUILD, title_says("math")), id="math-lost"),
    pytest.param(
        Bad(in_title("`f(x)`", "f(x)"), BUILD, title_says("inline code lost or changed: '`f(x)`'")),
        id="inline-code-lost",
    ),
    pytest.param(
        Bad(in_title("../images/figure.png", "../images/figure-fr.png"), BUILD, title_says("link target")),
        id="link-target-changed",
    ),
    pytest.param(
        Bad(in_title("# Démo", "## Démo"), BUILD, title_says("renders with 0 level-1 headings")),
        id="heading-level-changed",
    ),
    pytest.param(
        Bad(in_title("# Démo", "# **Démo"), BUILD, title_says("bold marker (**) shows as text")),
        id="bold-not-closed",
    ),
    pytest.param(
        Bad(
            in_body("## Partie 1\n\n", "## Partie 1\n\n- "),
            BUILD,
            ("entry 'body'", "renders with 1 list items"),
        ),
        id="list-item-added",
    ),
    # what a notebook must never carry: HTML the English lacks, links to other schemes or hosts, hidden links.
    # Most rows swap the figure for something else and keep its target in a comment, so that the counts of
    # links, images and link targets stay the English's: only the new rules see the swap.
    pytest.param(Bad(added("<script>alert(1)</script>"), CHECK, title_says("'<script>'")), id="html-script"),
    pytest.param(
        Bad(added("<script>alert(1)</script>"), BUILD, title_says("'<script>'")), id="html-script-build"
    ),
    pytest.param(
        Bad(added('\n\n<iframe src="https://evil.example/"></iframe>'), CHECK, title_says("<iframe")),
        id="html-iframe-block",
    ),
    pytest.param(Bad(added("<b>gras</b>"), CHECK, title_says("'<b>'")), id="html-tag-the-english-lacks"),
    pytest.param(
        Bad(added('<img src="https://evil.example/pixel.gif">'), CHECK, title_says("evil.example/pixel")),
        id="html-img-other-host",
    ),
    pytest.param(
        Bad(added('<img src="../images/figure.png" onerror="x()">'), CHECK, title_says("onerror")),
        id="html-img-with-event-handler",
    ),
    pytest.param(
        Bad(figure_as("![la figure](javascript:alert(1))"), CHECK, title_says("'javascript:alert(1)'")),
        id="link-javascript-inline",  # the exact link-target check already refused this form
    ),
    *[
        pytest.param(
            Bad(figure_as("![la figure][f]", f"[f]: {target}"), CHECK, title_says(message)),
            id=f"link-{name}",
        )
        for name, target, message in [
            ("javascript", "javascript:alert(1)", "javascript: link"),
            ("javascript-entity-obfuscated", "JaVa&#x53;cript:alert(1)", "javascript: link"),
            ("data", "data:image/svg+xml;base64,PHN2Zz4=", "data: link"),
            ("vbscript", "vbscript:msgbox", "vbscript: link"),
            ("file", "file:///etc/passwd", "file: link"),
            ("mailto-english-lacks", "mailto:someone@evil.example", "mailto: link the English entry"),
            ("attachment-english-lacks", "attachment:other.png", "attachment: link the English entry"),
            ("other-host", "https://evil.example/x.png", "'evil.example', a host the English entry"),
            (
                "scheme-relative-other-host",
                "//evil.example/x.png",
                "'evil.example', a host the English entry",
            ),
        ]
    ],
    pytest.param(
        Bad(intro_link_as("<https://evil.example/x>"), CHECK, (f"{README_PO}, entry", "'evil.example'")),
        id="autolink-other-host",
    ),
    pytest.param(Bad(added("https://evil.example/x"), CHECK, title_says("'evil.example'")), id="bare-url"),
    pytest.param(Bad(added("www.evil.example"), CHECK, title_says("'www.evil.example'")), id="bare-www"),
    pytest.param(
        Bad(added("<!-- [x](http://evil.example) -->"), CHECK, title_says("link hidden in an HTML comment")),
        id="link-in-inline-comment",
    ),
    pytest.param(
        Bad(
            added("\n\n<!-- voir ../images/figure.png ou https://evil.example -->"),
            CHECK,
            title_says("link hidden in an HTML comment"),
        ),
        id="link-in-block-comment",
    ),
    pytest.param(
        Bad(added("\n\n[x]: http://evil.example"), CHECK, title_says("no link uses", "'evil.example'")),
        id="reference-definition-unused",
    ),
    pytest.param(
        Bad(with_attachment("attachment:other.png"), CHECK, title_says("'attachment:other.png'")),
        id="attachment-changed",  # the exact link-target check already refused this form
    ),
    # near misses that must keep working
    pytest.param(
        Bad(
            with_attachment("attachment:figure.png"),
            BUILD,
            ("files written",),
            status=0,
            verify=carries_the_attachment,
        ),
        id="ok-attachment-as-in-english-built-with-it",
    ),
    pytest.param(
        Bad(added("<!-- note du traducteur -->"), BUILD, ("1 files written",), status=0),
        id="ok-comment-without-link",
    ),
]


@pytest.mark.parametrize("bad", ROWS)
def test_bad_input(bad: Bad, tmp_path: Path):
    root = tmp_path / "repo"
    make_translated(root) if bad.start == "translated" else make_course(root)
    bad.spoil(root)
    before = snapshot(tmp_path)
    status, output = bad.action(root)
    assert status == bad.status, output
    for fragment in bad.says:
        assert fragment in output, f"{fragment!r} not in:\n{output}"
    for fragment in bad.never_says:
        assert fragment not in output, output
    assert "Traceback" not in output
    if bad.status:
        assert snapshot(tmp_path) == before, "a refused step must write nothing"
    if bad.verify:
        bad.verify(root)


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every file and symbolic link under `folder`: a file's bytes, a link's target."""
    found: dict[str, bytes | str] = {}
    for parent, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(parent) / name
            if path.is_symlink():
                found[str(path)] = os.readlink(path)
            elif path.is_file():
                found[str(path)] = path.read_bytes()
    return found
