"""The image index's file format: one `.safetensors` file, never a pickle, so opening a shared index cannot
run code.

It holds two tensors, the embeddings [N, D] (float32 or float16) and the items' ids (UTF-8 JSON bytes), and a
header that names the format and its version, the model that made the embeddings (vectors of different
models are not comparable), the items the build skipped, and a sha256 checksum over all of it, so a damaged
file is refused instead of giving quietly wrong answers. Whatever is wrong with a file (truncated, edited,
not an index at all), `read_index` says so with one message, a `DamagedIndexError`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from mmlesson.course.assets import written_atomically
from mmlesson.errors import InputError, MissingFileError, MMLessonError

FORMAT = "mmlesson-image-index"
FORMAT_VERSION = 2  # 1: the checksum covered embeddings, ids and model; 2: all of the file's content
DTYPES = (torch.float32, torch.float16)  # what an index stores its embeddings in
ROWS_HASHED_AT_ONCE = 65536  # hashed in place, chunk by chunk: no copy of a large gallery


class DamagedIndexError(MMLessonError, ValueError):
    """A file `ImageIndex.load` cannot use: damaged, truncated, edited, or not an index saved by `save`."""


class _Malformed(Exception):
    """What is wrong with an index file; `read_index` raises a DamagedIndexError naming the file."""


class _ChecksumMismatch(_Malformed):
    """The file is an index by its header and layout, but its bytes are not the ones that were saved."""


@dataclass(frozen=True)
class SavedIndex:
    """What an index file holds, every part checked."""

    embeddings: torch.Tensor
    ids: list[str]
    model: str
    skipped: list[tuple[str, str]]


def write_index(
    path: Path, embeddings: torch.Tensor, ids: list[str], model: str, skipped: list[tuple[str, str]]
) -> Path:
    """Write an index file atomically: a failed write leaves no partial file."""
    ids_tensor = _ids_tensor(ids)
    metadata = {
        "format": FORMAT,
        "version": str(FORMAT_VERSION),
        "model": model,
        "skipped": json.dumps(skipped),
    }
    metadata["sha256"] = _checksum(embeddings, ids_tensor, metadata)
    with written_atomically(path) as temporary:
        save_file({"embeddings": embeddings, "ids": ids_tensor}, str(temporary), metadata)
    return path


def read_index(path: Path) -> SavedIndex:
    """The contents of an index file, or one clear error: a `DamagedIndexError` for anything `write_index`
    did not write, advice for a newer format or an unreadable file. Files of format version 1 (whose
    checksum did not yet cover the list of skipped items) still load."""
    tensors, metadata = _read_index_file(path)
    version = _format_version(path, metadata)
    try:
        return _decode_index(tensors, metadata, version)
    except _Malformed as error:
        raise DamagedIndexError(
            damaged_message(path, str(error), isinstance(error, _ChecksumMismatch))
        ) from None


def damaged_message(path: Path, detail: str, surely_an_index: bool = False) -> str:
    """The one message for every file `ImageIndex.load` cannot use: what was found, and what to do. Only a
    file whose header and layout are an index's, and whose checksum fails, is surely an index."""
    what = "damaged" if surely_an_index else "damaged or is not an image index saved by ImageIndex.save"
    return f"{path} is {what} ({detail}): rebuild the index"


def _ids_tensor(ids: list[str]) -> torch.Tensor:
    """The ids as UTF-8 JSON in a uint8 tensor: any number fits (a safetensors header holds 100 MB)."""
    return torch.frombuffer(bytearray(json.dumps(ids).encode("utf-8")), dtype=torch.uint8)


def _checksum(embeddings: torch.Tensor, ids: torch.Tensor, metadata: dict[str, str]) -> str:
    """sha256 of everything an index file holds: every metadata entry but the checksum itself, the tensors'
    dtypes and shapes, and their bytes. Any edited byte changes it, in the header too."""
    digest = hashlib.sha256()
    header = {key: value for key, value in metadata.items() if key != "sha256"}
    layout = {name: [str(t.dtype), list(t.shape)] for name, t in (("embeddings", embeddings), ("ids", ids))}
    digest.update(json.dumps([header, layout], sort_keys=True).encode("utf-8"))
    _hash_rows(digest, embeddings)
    digest.update(ids.numpy().data)
    return digest.hexdigest()


def _checksum_v1(embeddings: torch.Tensor, ids: torch.Tensor, model: str) -> str:
    """The checksum of format version 1: the embeddings' bytes, the ids and the model name."""
    digest = hashlib.sha256()
    _hash_rows(digest, embeddings)
    digest.update(ids.numpy().data)
    digest.update(b"\0" + model.encode("utf-8"))
    return digest.hexdigest()


def _hash_rows(digest: Any, embeddings: torch.Tensor) -> None:
    for start in range(0, len(embeddings), ROWS_HASHED_AT_ONCE):  # hashed in place, chunk by chunk: no copy
        digest.update(embeddings[start : start + ROWS_HASHED_AT_ONCE].numpy().data)


def _read_index_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The two tensors and the header metadata of an index file; a file that does not parse is refused."""
    try:
        return _read_tensors(path)
    except PermissionError:
        raise InputError(
            f"{path} cannot be read: permission denied. Give yourself read access (chmod u+r), or copy it"
        ) from None
    except FileNotFoundError:
        raise
    except (SafetensorError, _Malformed) as error:
        raise DamagedIndexError(damaged_message(path, str(error))) from None
    except OSError as error:  # a directory, a device, a read error
        raise DamagedIndexError(damaged_message(path, error.strerror or str(error))) from None


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.exists():
        raise MissingFileError(f"no index file at {path}: check the path")
    path.open("rb").close()  # safetensors calls a file it may not read "missing": let the system say why
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata() or {}
        names = sorted(file.keys())
        if names != ["embeddings", "ids"]:
            raise _Malformed(f"it holds the tensors {names[:5]}, not 'embeddings' and 'ids'")
        return {name: file.get_tensor(name) for name in names}, metadata


def _format_version(path: Path, metadata: dict[str, str]) -> int:
    """The file's format version; a file of a newer version is refused with advice, not as damaged."""
    if metadata.get("format") != FORMAT:
        raise DamagedIndexError(damaged_message(path, "its header does not name the image index format"))
    version = metadata.get("version", "")
    if not re.fullmatch(r"[1-9][0-9]{0,5}", version):
        raise DamagedIndexError(damaged_message(path, f"its format version {version[:20]!r} is not a number"))
    if int(version) > FORMAT_VERSION:
        raise InputError(
            f"{path} was saved by a newer mmlesson (index format {version}): pip install -U mmlesson"
        )
    return int(version)


def _decode_index(tensors: dict[str, torch.Tensor], metadata: dict[str, str], version: int) -> SavedIndex:
    """The contents of a file, every part checked: a crafted file can carry a valid
    checksum and still hold ids that are no JSON, a skipped list of numbers or a missing model name."""
    embeddings, ids = tensors["embeddings"], tensors["ids"]
    if embeddings.dtype not in DTYPES or embeddings.ndim != 2:
        raise _Malformed(f"its embeddings are {embeddings.dtype} {list(embeddings.shape)}, not [N, D] floats")
    if ids.dtype != torch.uint8 or ids.ndim != 1:
        raise _Malformed(f"its ids are {ids.dtype} {list(ids.shape)}, not the bytes of a JSON list")
    model = metadata.get("model", "")
    expected = _checksum(embeddings, ids, metadata) if version >= 2 else _checksum_v1(embeddings, ids, model)
    if metadata.get("sha256") != expected:
        raise _ChecksumMismatch("its checksum does not match its contents")
    if not model:
        raise _Malformed("it names no model")
    id_list = _json_list(bytes(ids.numpy()), "ids")
    if len(id_list) != len(embeddings) or not all(isinstance(item, str) for item in id_list):
        raise _Malformed(f"it holds {len(embeddings)} embeddings but not as many ids (strings)")
    skipped = _json_list(metadata.get("skipped"), "skipped list")
    if not all(_is_pair_of_strings(entry) for entry in skipped):
        raise _Malformed("its skipped list is not a list of [item, reason] strings")
    return SavedIndex(embeddings, id_list, model, [tuple(entry) for entry in skipped])


def _json_list(text: str | bytes | None, what: str) -> list:
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):  # missing, not UTF-8, not JSON, nested too deep
        raise _Malformed(f"its {what} is missing or not valid JSON") from None
    if not isinstance(value, list):
        raise _Malformed(f"its {what} is not a JSON list")
    return value


def _is_pair_of_strings(entry: Any) -> bool:
    return isinstance(entry, list) and len(entry) == 2 and all(isinstance(part, str) for part in entry)
