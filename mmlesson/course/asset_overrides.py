"""A test hook: point registry assets at other files, e.g. stand-ins served from 127.0.0.1.

The full profile's weights (hundreds of MB, from Hugging Face and Heidelberg) cannot be downloaded in CI or
on an offline machine, yet every full-profile cell of every lesson must run before a workshop. A rehearsal
(`scripts/rehearse_full_profile.py`) therefore builds random-weight files in the published formats, serves
them from a local HTTP server, and sets

    MMLESSON_ASSET_OVERRIDES=/path/to/overrides.json

where the JSON maps asset names of `mmlesson.course.assets.REGISTRY` to where the stand-in lives and what
it must hash to:

    {"clip-vit-b-32-laion2b": {"url": "http://127.0.0.1:8765/clip.safetensors",
                               "sha256": "<64 hex digits>", "size": 605143316}}

The pinned hashes of the real files stay in the registry's source: the override applies only in a process
whose environment names the file, it says so loudly on stderr (a learner must never use stand-in weights
without knowing), and a malformed file is refused with the reason rather than half applied. The download
itself stays the course's careful one (sha256 checked, atomic write, lock), now against the stand-in's hash.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from mmlesson.errors import MMLessonError

ENV_VAR = "MMLESSON_ASSET_OVERRIDES"
FIELDS = ("url", "sha256", "size")

AssetT = TypeVar("AssetT")  # mmlesson.course.assets.Asset; not imported, as assets.py calls this module


class OverrideError(MMLessonError):
    """The overrides file is missing or malformed; nothing was overridden."""


def apply_overrides(
    registry: Mapping[str, AssetT],
    environ: Mapping[str, str],
    announce: Callable[[str], None] | None = None,
) -> dict[str, AssetT]:
    """A copy of `registry` with the entries named in `environ[MMLESSON_ASSET_OVERRIDES]` replaced.

    Without the variable (or with it empty) the copy equals the registry and nothing is printed. With it,
    every listed asset gets the file's url, sha256 and size (its name, filename, license and purpose stay),
    and `announce` (default: print to stderr) receives one loud line naming what was replaced.
    """
    location = environ.get(ENV_VAR, "").strip()
    if not location:
        return dict(registry)
    path = Path(location).expanduser()
    overrides = read_overrides(path, known=list(registry))
    result = dict(registry)
    for name, fields in overrides.items():
        result[name] = replace(
            registry[name], urls=(fields["url"],), sha256=fields["sha256"], size=fields["size"]
        )
    (announce or _to_stderr)(_announcement(path, overrides))
    return result


def read_overrides(path: Path, known: list[str]) -> dict[str, dict[str, Any]]:
    """The overrides in `path`, checked completely: {asset name: {"url", "sha256", "size"}}."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise _refused(path, f"cannot read it ({error.strerror or error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _refused(path, f"it is not valid JSON ({error})") from None
    if not isinstance(content, dict) or not content:
        raise _refused(path, 'it must be a JSON object {"asset name": {"url", "sha256", "size"}, ...}')
    return {name: _checked_entry(path, name, fields, known) for name, fields in content.items()}


def _checked_entry(path: Path, name: str, fields: object, known: list[str]) -> dict[str, Any]:
    """One entry, or the reason it is refused (unknown asset, missing or extra field, bad value)."""
    if name not in known:
        raise _refused(path, f"there is no asset called {name!r}; the registry has: {', '.join(known)}")
    if not isinstance(fields, dict) or set(fields) != set(FIELDS):
        got = sorted(fields) if isinstance(fields, dict) else type(fields).__name__
        raise _refused(path, f"{name!r} must have exactly the fields {', '.join(FIELDS)}; got {got}")
    url, sha256, size = (fields[key] for key in FIELDS)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):  # what fetch downloads
        raise _refused(path, f"{name!r}: url must be an http:// or https:// address, got {url!r}")
    if not isinstance(sha256, str) or len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise _refused(path, f"{name!r}: sha256 must be 64 lowercase hex digits, got {sha256!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise _refused(path, f"{name!r}: size must be a positive number of bytes, got {size!r}")
    return {"url": url, "sha256": sha256, "size": size}


def _refused(path: Path, reason: str) -> OverrideError:
    return OverrideError(
        f"{ENV_VAR}={path} is refused: {reason}. This variable is a test hook for rehearsals; "
        f"unset it to use the published weights."
    )


def _announcement(path: Path, overrides: Mapping[str, Mapping[str, Any]]) -> str:
    replaced = "; ".join(f"{name} <- {fields['url']}" for name, fields in overrides.items())
    return (
        f"!!! {ENV_VAR}={path} is set: {len(overrides)} asset(s) come from TEST STAND-INS, not the "
        f"published files ({replaced}). Results mean nothing; unset {ENV_VAR} to use the real weights. !!!"
    )


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
