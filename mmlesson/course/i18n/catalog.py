"""PO files: reading, writing and merging them, and how far each one is translated."""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import polib

from mmlesson.course.assets import written_atomically
from mmlesson.course.i18n.markdown import markdown_problems
from mmlesson.course.i18n.project import TranslationError, Unit
from mmlesson.course.i18n.safety import safety_problems

SIMILAR_ENOUGH = 0.6  # difflib ratio above which an old translation is offered (fuzzy) for new English text
# PO lines break only where the text has a newline, never at a width: that is what Weblate writes when its
# "Long lines wrapping" is "Only wrap lines at newlines", so a file it commits comes back from `update` as it
# went in (at Weblate's default, 77 columns, every long line would be rewrapped one way, then back).
WRAP_WIDTH = 0
# What a template says where a PO file has the plural rule of its language (the gettext convention).
TEMPLATE_PLURAL_FORMS = "nplurals=INTEGER; plural=EXPRESSION;"


def read_po(path: Path, label: str) -> polib.POFile:
    """The PO file, or an error that names it and what is wrong: a syntax error's line, or its encoding.

    Only UTF-8 is read. polib would decode the bytes by whatever charset the header declares, so a file saved
    as UTF-8 under an ISO-8859-1 header would be read (and built, and rewritten by `update`) as mojibake
    without a word; refusing every other charset, and bytes that are not UTF-8, makes that impossible.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TranslationError(f"{label} cannot be read: {error.strerror}") from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TranslationError(_not_utf8(label, data, error)) from None
    try:
        # UTF-8, not the charset the header declares
        po = polib.pofile(str(path), encoding="utf-8", wrapwidth=WRAP_WIDTH)
    except (OSError, ValueError) as error:
        detail = str(error).replace(str(path), label)
        raise TranslationError(
            f"{label} cannot be read: {detail}. Fix it with a PO editor (Poedit)."
        ) from None
    _require_utf8_header(po, label)
    return po


UTF8_HEADER = '"Content-Type: text/plain; charset=UTF-8\\n"'
HOW_TO_SAVE_AS_UTF8 = (
    "in Poedit, set Catalog > Properties > Charset to UTF-8 and save; in a text editor, save the file as "
    f"UTF-8 and make its header line read {UTF8_HEADER}"
)


def _not_utf8(label: str, data: bytes, error: UnicodeDecodeError) -> str:
    line = data[: error.start].count(b"\n") + 1
    declared = re.search(rb"charset=([-\w.:]+)", data)
    says = f" (its header says charset={declared[1].decode('ascii')})" if declared else ""
    return (
        f"{label} cannot be read: it is not UTF-8 (byte 0x{data[error.start]:02x} on line {line}){says}. "
        f"It was saved in another encoding: {HOW_TO_SAVE_AS_UTF8}."
    )


def _require_utf8_header(po: polib.POFile, label: str) -> None:
    """A header that declares UTF-8: whatever else it declares, the bytes (UTF-8) would be misread."""
    if not po.metadata:
        raise TranslationError(
            f'{label} cannot be read: it has no header (msgid "" with a Content-Type line), so it was '
            f"emptied or cut short; restore it from git (`git checkout -- {label}`)"
        )
    declared = re.search(r"charset=([-\w.:]+)", po.metadata.get("Content-Type", ""))
    if not declared or declared[1].lower() not in ("utf-8", "utf8"):
        says = f"declares charset={declared[1]}" if declared else "declares no charset"
        raise TranslationError(
            f"{label} cannot be read: its header {says}, but its bytes are UTF-8 and only UTF-8 is read "
            f"(the translations would come out garbled). Declare UTF-8: {HOW_TO_SAVE_AS_UTF8}."
        )


def new_po(lang: str | None, source: str) -> polib.POFile:
    """An empty PO file for `lang`, or the template (POT) every language starts from when `lang` is None."""
    po = polib.POFile(wrapwidth=WRAP_WIDTH)
    po.metadata = {
        "Project-Id-Version": "mmlesson",
        **({"Language": lang} if lang else {}),
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
        "Plural-Forms": plural_forms(lang) if lang else TEMPLATE_PLURAL_FORMS,
        "X-Source": source,
    }
    return po


def plural_forms(lang: str) -> str:
    """The language's plural rule as a PO header states it (CLDR's, through babel): editors need it."""
    from babel.messages.plurals import get_plural

    rule = get_plural(lang.replace("-", "_"))
    return f"nplurals={rule.num_plurals}; plural={rule.plural_expr};"


def template(units: list[Unit], source: str) -> polib.POFile:
    """The POT file of one document: every entry, none translated (Weblate adds a language from it)."""
    po = new_po(None, source)
    for unit in units:
        po.append(polib.POEntry(msgctxt=unit.key, msgid=unit.text, occurrences=[unit.where]))
    return po


def entry_name(entry: polib.POEntry) -> str:
    """How messages name an entry: its key (a cell id) or the start of its English, and its line."""
    key = entry.msgctxt or entry.msgid.splitlines()[0][:50]
    return f"{key!r} (line {entry.linenum})"


def write_text(path: Path, text: str) -> None:
    """Write a translation file atomically (see `assets.written_atomically`), with Unix line ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_atomically(path) as temporary:
        temporary.write_text(text, encoding="utf-8", newline="\n")


def save_po(po: polib.POFile, path: Path) -> None:
    write_text(path, str(po) + "\n")


@dataclass
class MergeReport:
    """What `merge` did to one PO file, counted for the command's output."""

    kept: int = 0
    fuzzy: int = 0
    new: int = 0
    obsolete: int = 0

    def __str__(self) -> str:
        return f"{self.kept} kept, {self.fuzzy} changed (now fuzzy), {self.new} new, {self.obsolete} obsolete"


def merge(old: polib.POFile, units: list[Unit], lang: str, source: str) -> tuple[polib.POFile, MergeReport]:
    """The PO file for `units`, reusing every translation `old` holds; nothing translated is ever dropped.

    An entry whose key still exists keeps its translation; if its English changed it becomes fuzzy, with the
    old English kept as `#| msgid` for the translator to compare. English seen before under another key
    reuses that translation; English close to an unused old entry gets it as a fuzzy suggestion. Old
    translated entries nobody uses any more stay at the end as obsolete (`#~`), as msgmerge does.
    """
    po, report = new_po(lang, source), MergeReport()
    po.metadata.update({k: v for k, v in old.metadata.items() if k not in po.metadata})
    po.header = old.header  # the file's comment: credits, notes for the next translator
    by_key = {e.msgctxt: e for e in old if e.msgctxt is not None and not e.obsolete}
    by_text = {e.msgid: e for e in old if e.msgstr}
    used: set[int] = set()
    for unit in units:
        entry = polib.POEntry(msgctxt=unit.key, msgid=unit.text, occurrences=[unit.where])
        before = by_key.get(unit.key) if unit.key is not None else None
        before = before or by_text.get(unit.text)
        if before is None:
            before = _closest(unit.text, [e for e in old if e.msgstr and id(e) not in used])
        if before is None:
            report.new += 1
        else:
            used.add(id(before))
            entry.msgstr, entry.flags, entry.tcomment = before.msgstr, list(before.flags), before.tcomment
            if before.msgid == unit.text:
                entry.previous_msgid = before.previous_msgid
                report.kept += 1
            else:
                entry.previous_msgid = before.msgid
                entry.flags = sorted(set(entry.flags) | {"fuzzy"})
                report.fuzzy += 1
        po.append(entry)
    for leftover in old:
        if leftover.msgstr and id(leftover) not in used:
            kept = copy.copy(leftover)
            kept.obsolete = True
            po.append(kept)
            report.obsolete += 1
    return po, report


def _closest(text: str, candidates: list[polib.POEntry]) -> polib.POEntry | None:
    scored = [(difflib.SequenceMatcher(None, text, c.msgid).ratio(), i) for i, c in enumerate(candidates)]
    best = max(scored, default=(0.0, -1))
    return candidates[best[1]] if best[0] >= SIMILAR_ENOUGH else None


# --- how far a PO file is ---------------------------------------------------------------------------------


@dataclass
class Status:
    """How far one PO file is: counts for the coverage table, and every problem with its entry named."""

    total: int = 0
    translated: int = 0
    fuzzy: int = 0
    untranslated: int = 0
    stale: int = 0
    problems: list[str] = field(default_factory=list)
    texts: dict[tuple[str | None, str], str] = field(default_factory=dict)


def po_status(po: polib.POFile, units: list[Unit], label: str) -> Status:
    """Compare a PO file with the English it should translate; collect the usable translations."""
    status = Status(total=len(units))
    wanted = {(u.key, u.text) for u in units}
    keys = {u.key for u in units if u.key is not None}
    present, untranslated = set(), []
    for entry in (e for e in po if not e.obsolete):
        where, key = f"{label}, entry {entry_name(entry)}", (entry.msgctxt, entry.msgid)
        present.add(key)
        if key not in wanted:
            status.stale += 1
            why = "its English has changed" if entry.msgctxt in keys else "its English is gone"
            status.problems.append(f"{where}: stale, {why}; run `python -m mmlesson i18n update`")
        elif not entry.msgstr.strip():
            untranslated.append(entry_name(entry))
        elif entry.fuzzy:
            status.fuzzy += 1
            status.problems.append(f"{where}: fuzzy (the English changed); review it and clear the flag")
        else:
            broken = markdown_problems(entry.msgid, entry.msgstr) + safety_problems(entry.msgid, entry.msgstr)
            status.problems += [f"{where}: {problem}" for problem in broken]
            if not broken:
                status.translated += 1
                status.texts[key] = entry.msgstr
    if untranslated:
        status.untranslated += len(untranslated)
        status.problems.append(
            f"{label}: {len(untranslated)} entries not translated yet: {', '.join(untranslated)}"
        )
    missing = len(wanted - present)
    if missing:
        status.untranslated += missing
        status.problems.append(
            f"{label}: {missing} English entries are missing; run `python -m mmlesson i18n update`"
        )
    return status
