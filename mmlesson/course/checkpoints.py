"""Reading a published PyTorch checkpoint so that it can never run code (course infrastructure).

Lessons never call this module: `mmlesson.vqgan` uses it once per machine, to turn the published taming
(PyTorch Lightning) `.ckpt` into a safetensors copy. A `.ckpt` is a pickle, and unpickling a pickle calls
whatever functions the file names, so a checkpoint is read here and only this way:

1. The file is read into memory once; the sha256 of those bytes is checked against the pinned one, and the
   weights are loaded from the same bytes. Whoever can write to a shared cache cannot swap the file
   between the check and the load, neither by renaming another file over it nor by writing into it.
2. Only the zip format `torch.save` writes since PyTorch 1.6 is read (the published checkpoints are zip
   files). An older, plain pickle is refused: the course does not open one it cannot check.
3. Loading is torch's own `weights_only=True` unpickler. It builds tensors, plain containers and numbers,
   and refuses every other global (`builtins.eval`, `os.system`, `torch.fx` helpers, numpy's ...) before
   calling it. We use it rather than an unpickler of our own because PyTorch maintains and hardens it for
   exactly this job, and a short allow-list on top of it is easy to audit: Lightning 1.x checkpoints name
   a callback class as a key of `callbacks`, so each such name gets an empty stand-in class of ours,
   matched by its full dotted name. Lightning itself is never imported and none of its code runs.

Every refusal is a `CheckpointRefusedError`: which file, what is wrong with it, what to do.
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import hashlib
import io
import pickle
import pickletools
import warnings
import zipfile
from pathlib import Path

import torch

from mmlesson.errors import MMLessonError

# The classes Lightning 1.x pickles by name into a checkpoint: `callbacks` is keyed by the callback's class.
LIGHTNING_CLASSES = (
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "pytorch_lightning.callbacks.early_stopping.EarlyStopping",
)
_ZIP_MAGIC = b"PK\x03\x04"  # how every file written by torch.save (zip format) starts
_PICKLES_TO_SCAN = 5  # an old-style torch.save file is a few pickles in a row; the object is the 4th
_WHAT_TO_DO = (
    "Delete the file (if it is in the course cache, the next load downloads it again). If a fresh download "
    "from the course's registry URL is refused too, please report it: the published file has changed."
)


class CheckpointRefusedError(MMLessonError):
    """A checkpoint the course will not load: wrong hash, old format, or something besides weights."""


class _StandIn:
    """Takes the place of a Lightning class named in a checkpoint: an empty class, so it does nothing."""


def _stand_in(full_name: str) -> tuple[type, str]:
    """A distinct empty class per name (two callbacks must stay two dict keys), paired with that name."""
    module, _, name = full_name.rpartition(".")
    return type(name, (_StandIn,), {"__module__": module, "__qualname__": name}), full_name


_STAND_INS = [_stand_in(name) for name in LIGHTNING_CLASSES]


def load_checkpoint(path: Path | str, sha256: str) -> dict[str, torch.Tensor]:
    """The weights in the checkpoint at `path` (a Lightning `state_dict`, or a plain dict of tensors), on
    the CPU, provided the file's sha256 is `sha256`. Anything else is refused with a `CheckpointRefusedError`.

    Memory: the whole file stays in memory while it loads (about 1 GB for the published VQGAN, about 2 GB at
    the peak, while its tensors are built). Hashing an open file and loading it after a seek would need half
    that, but it only protects against a file renamed over the checked one, not against one written into in
    place; since the course converts a checkpoint once per machine, the stronger guarantee wins.
    """
    path = Path(path)
    data = _verified_bytes(path, sha256)
    return _weights(path, _unpickled(path, data))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verified_bytes(path: Path, sha256: str) -> bytes:
    """The file's bytes, read once, if they hash to `sha256`; nothing is unpickled before this passes."""
    data = path.read_bytes()
    actual = _sha256(data)
    if actual != sha256.lower():
        raise CheckpointRefusedError(
            f"{path} is not the checkpoint the course expects: its sha256 is {actual}, not {sha256}. "
            "Nothing in it was loaded. It is incomplete, damaged, or was changed after it was checked. "
            f"{_WHAT_TO_DO}"
        )
    return data


def _unpickled(path: Path, data: bytes) -> object:
    """The checkpoint's content, unpickled by torch's weights-only unpickler with our stand-ins allowed."""
    if not data.startswith(_ZIP_MAGIC):
        raise CheckpointRefusedError(_old_format_message(path, data))
    try:
        with torch.serialization.safe_globals(_STAND_INS), warnings.catch_warnings():
            # torch warns about pickle protocols other than 2 before it refuses them: noise before our error
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError:
        # `from None`: torch's own message advises weights_only=False, the one thing never to do here.
        raise CheckpointRefusedError(_foreign_message(path, _foreign_globals(_zipped_pickle(data)))) from None
    except (RuntimeError, ValueError, TypeError, AttributeError, KeyError, EOFError) as error:
        raise CheckpointRefusedError(
            f"{path} is not a checkpoint the course can read ({_first_line(error)}). Nothing in it was "
            f"loaded. {_WHAT_TO_DO}"
        ) from None


def _weights(path: Path, content: object) -> dict[str, torch.Tensor]:
    """The `state_dict` of a Lightning checkpoint, or the checkpoint itself when it is a dict of tensors."""
    state = content.get("state_dict", content) if isinstance(content, dict) else content
    if not isinstance(state, dict) or not state:
        raise CheckpointRefusedError(
            f"{path} holds no weights: expected a dict of tensors or a Lightning checkpoint with a "
            f"'state_dict', found {type(state).__name__}. {_WHAT_TO_DO}"
        )
    strays = [key for key, value in state.items() if not (isinstance(key, str) and torch.is_tensor(value))]
    if strays:
        raise CheckpointRefusedError(
            f"{path} holds entries besides named tensors in its weights "
            f"({', '.join(map(repr, strays[:3]))}). {_WHAT_TO_DO}"
        )
    return dict(state)


def _foreign_message(path: Path, names: list[str]) -> str:
    found = f"it names {', '.join(names)}" if names else "it holds pickle instructions no weights need"
    return (
        f"{path} contains something other than weights: {found}. Unpickling that could run code on this "
        f"computer, so nothing in the file was loaded. {_WHAT_TO_DO}"
    )


def _old_format_message(path: Path, data: bytes) -> str:
    names = _foreign_globals(data)
    found = f", and it names {', '.join(names)}, which are not weights" if names else ""
    return (
        f"{path} is an old-style pickle, not the zip format torch.save writes since PyTorch 1.6{found}. "
        "The course reads only zip-format checkpoints: an old-style pickle cannot be checked without "
        f"running it, so nothing in the file was loaded. {_WHAT_TO_DO} If it is a checkpoint you made "
        "yourself, save it again with a current PyTorch, which writes the zip format."
    )


def _first_line(error: Exception) -> str:
    """`RuntimeError: first line of its message`: torch's later lines advise weights_only=False."""
    lines = str(error).strip().splitlines() or [""]
    return f"{type(error).__name__}: {lines[0][:200]}"


def _zipped_pickle(data: bytes) -> bytes:
    """The `data.pkl` record of a torch.save zip (empty if there is none), for the refusal message."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            name = next((n for n in archive.namelist() if n.rpartition("/")[2] == "data.pkl"), None)
            return archive.read(name) if name else b""
    except (zipfile.BadZipFile, OSError):
        return b""


def _foreign_globals(pickles: bytes) -> list[str]:
    """The globals the pickles at the start of `pickles` name that torch's weights-only unpickler would not
    accept, read with `pickletools` (which parses and runs nothing). Only for messages: the refusing itself
    is torch's. The list of names torch accepts is read from a private function of torch; if torch renames
    it, messages list every name the file uses instead of only the foreign ones."""
    allowed_by_torch = getattr(torch._weights_only_unpickler, "_get_allowed_globals", dict)()
    allowed = set(allowed_by_torch) | set(LIGHTNING_CLASSES)
    return [name for name in _named_globals(pickles) if name not in allowed]


def _named_globals(pickles: bytes) -> list[str]:
    """Every global named by GLOBAL, INST or STACK_GLOBAL in the first few pickles of `pickles`."""
    stream, names, strings = io.BytesIO(pickles), [], []
    # The bytes are untrusted and may stop being a pickle anywhere: whatever genops fails on ends the scan.
    with contextlib.suppress(Exception):
        for _ in range(_PICKLES_TO_SCAN):
            for opcode, arg, _position in pickletools.genops(stream):
                if opcode.name in ("GLOBAL", "INST"):
                    names.append(_python3_name(*arg.split(" ", 1)))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(_python3_name(*strings[-2:]))
                elif isinstance(arg, str):
                    strings.append(arg)
    return list(dict.fromkeys(names))


def _python3_name(module: str, name: str) -> str:
    """`__builtin__ eval` (how protocol 2 spells Python 3 names) -> `builtins.eval`, as unpicklers map it."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"
