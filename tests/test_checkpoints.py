"""Checkpoints: a malicious checkpoint is refused before it runs anything; a real Lightning one loads.

Every payload in the corpus below would create a marker file if it ran (the test that the corpus is armed
proves it does, under plain unpickling); every refusal test asserts the marker never appears.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import pickletools
import shlex
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mmlesson import vqgan
from mmlesson.course import checkpoints
from mmlesson.course.checkpoints import CheckpointRefusedError
from mmlesson.errors import MMLessonError

LIGHTNING_MODULE = "pytorch_lightning.callbacks.model_checkpoint"

# -- writing checkpoints ---------------------------------------------------------------------------------


class Raw:
    """Pickle opcodes written as they are in the middle of a checkpoint: how a payload is planted."""

    def __init__(self, opcodes: bytes) -> None:
        self.opcodes = opcodes


class RawPickler(pickle._Pickler):
    """The pure-Python pickler (torch.save subclasses it for `persistent_id`), writing `Raw` verbatim."""

    def save(self, obj: object, save_persistent_id: bool = True) -> None:
        if isinstance(obj, Raw):
            self.write(obj.opcodes)
        else:
            super().save(obj, save_persistent_id)


RAW_PICKLE = SimpleNamespace(Pickler=RawPickler, dump=pickle.dump, __name__="raw_pickle")


def value(obj: object) -> bytes:
    """Opcodes that push `obj` (plain data only): no PROTO, no STOP, no memo, so they can go anywhere."""
    return pickletools.optimize(pickle.dumps(obj, protocol=2))[2:-1]


def named(module: str, name: str, protocol: int = 2) -> bytes:
    """Opcodes that push the global `module.name`, named by text as an attacker writes it: any name, a
    dotted one, one of a module of another platform. Protocol 4 (STACK_GLOBAL) resolves dotted names."""
    if protocol >= 4:
        strings = b"".join(b"\x8c" + bytes([len(part)]) + part.encode() for part in (module, name))
        return b"\x80\x04" + strings + b"\x93"
    return b"c" + f"{module}\n{name}\n".encode()


def call(callee: bytes, *args: object) -> bytes:
    """Opcodes that call what `callee` pushes with `args` (REDUCE)."""
    return callee + value(args) + b"R"


def save(content: object, path: Path, file_format: str) -> Path:
    """`content` as a zip checkpoint, an old-style torch.save file, or a plain pickle."""
    if file_format == "zip":
        torch.save(content, path, pickle_module=RAW_PICKLE)
    elif file_format == "legacy":
        torch.save(content, path, pickle_module=RAW_PICKLE, _use_new_zipfile_serialization=False)
    else:
        with open(path, "wb") as file:
            RawPickler(file, protocol=2).dump(content)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def lightning_modules() -> Iterator[type]:
    """A stand-in of Lightning's ModelCheckpoint under its real dotted name, in `sys.modules` only while a
    checkpoint is written: pickle saves a class by that name, as Lightning 1.x's own did."""
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", LIGHTNING_MODULE]
    saved = {name: sys.modules.get(name) for name in names}
    modules = {name: types.ModuleType(name) for name in names}
    model_checkpoint = type("ModelCheckpoint", (), {"__module__": LIGHTNING_MODULE})
    modules[LIGHTNING_MODULE].ModelCheckpoint = model_checkpoint
    sys.modules.update(modules)
    try:
        yield model_checkpoint
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def lightning_checkpoint(state: dict[str, torch.Tensor], path: Path) -> Path:
    """`state` saved the way taming's Lightning 1.x training did: beside optimizer and scheduler states,
    the step and epoch, and the ModelCheckpoint callback's state keyed by its class."""
    with lightning_modules() as model_checkpoint:
        content = {
            "epoch": 3,
            "global_step": 1200,
            "pytorch-lightning_version": "1.0.8",
            "callbacks": {
                model_checkpoint: {"monitor": "val/rec_loss", "best_model_score": torch.tensor(0.25)}
            },
            "optimizer_states": [
                {
                    "state": {0: {"step": 10, "exp_avg": torch.zeros(2), "exp_avg_sq": torch.zeros(2)}},
                    "param_groups": [{"lr": 4.5e-6, "betas": (0.5, 0.9), "amsgrad": False, "params": [0]}],
                }
            ],
            "lr_schedulers": [],
            "state_dict": state,
        }
        torch.save(content, path)
    return path


def taming_state() -> dict[str, torch.Tensor]:
    """A few weights named as taming's VQModel names them, training-only `loss.` entries included."""
    return {
        "encoder.conv_in.weight": torch.randn(4, 3, 3, 3),
        "quantize.embedding.weight": torch.randn(8, 4),
        "decoder.conv_out.bias": torch.randn(3),
        "loss.discriminator.main.0.weight": torch.randn(2, 3, 4, 4),
        "loss.perceptual_loss.net.slice1.0.weight": torch.randn(2, 3, 3, 3),
    }


# -- the corpus ----------------------------------------------------------------------------------------


def payloads(marker: Path) -> dict[str, bytes]:
    """{the global the payload abuses: opcodes that create `marker` if they ever run}."""
    code = f"open({str(marker)!r}, 'w').close()"
    argv = [sys.executable, "-c", code]
    shell = shlex.join(argv)
    # getattr(importlib.import_module("os"), "system"): the module fetched by a trusted-looking function
    os_system = named("builtins", "getattr") + call(named("importlib", "import_module"), "os")
    os_system += value("system") + b"\x86R"  # TUPLE2, REDUCE
    return {
        "os.system": call(named("os", "system"), shell),
        "posix.system": call(named("posix", "system"), shell),
        "nt.system": call(named("nt", "system"), shell),
        "builtins.eval": call(named("builtins", "eval"), code),
        "builtins.exec": call(named("builtins", "exec"), code),
        "subprocess.call": call(named("subprocess", "call"), argv),
        "subprocess.Popen": call(named("subprocess", "Popen"), argv),
        "torch.fx.graph_module._forward_from_src": call(
            named("torch.fx.graph_module", "_forward_from_src"), f"{code}\ndef forward(self):\n    pass\n", {}
        ),
        "numpy.testing._private.utils.runstring": call(
            named("numpy.testing._private.utils", "runstring"), code, {}
        ),
        "importlib.import_module": call(os_system, shell),
        # a pickle inside the pickle: the outer one names only pickle.loads
        "pickle.loads": call(
            named("pickle", "loads"), b"\x80\x02" + call(named("os", "system"), shell) + b"."
        ),
        # a dotted name under a harmless-looking module, reaching eval: collections.namedtuple.__builtins__
        "collections.namedtuple.__builtins__.get": call(
            call(named("collections", "namedtuple.__builtins__.get", protocol=4), "eval"), code
        ),
    }


PAYLOAD_NAMES = list(payloads(Path("marker")))
FORMATS = ["zip", "legacy", "plain-pickle"]


def planted(name: str, marker: Path, path: Path, file_format: str) -> Path:
    """A checkpoint that looks right (a state_dict of tensors) with a payload beside its weights."""
    content = {
        "state_dict": {"quantize.embedding.weight": torch.ones(2, 2)},
        "extra": Raw(payloads(marker)[name]),
    }
    return save(content, path, file_format)


@pytest.mark.skipif(os.name == "nt", reason="the armed check runs the posix payloads")
@pytest.mark.parametrize("name", [n for n in PAYLOAD_NAMES if n != "nt.system"])
def test_the_corpus_is_armed_each_payload_runs_under_plain_unpickling(name, tmp_path):
    marker = tmp_path / "MARKER"
    path = planted(name, marker, tmp_path / "evil.ckpt", "plain-pickle")
    content = pickle.loads(path.read_bytes())
    if isinstance(content["extra"], subprocess.Popen):
        content["extra"].wait()
    assert marker.exists()


@pytest.mark.parametrize("file_format", FORMATS)
@pytest.mark.parametrize("name", PAYLOAD_NAMES)
def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(name, file_format, tmp_path):
    marker = tmp_path / "MARKER"
    path = planted(name, marker, tmp_path / "evil.ckpt", file_format)
    with pytest.raises(CheckpointRefusedError) as refusal:
        checkpoints.load_checkpoint(path, sha256(path))
    message = str(refusal.value)
    assert isinstance(refusal.value, MMLessonError)
    assert str(path) in message and "Delete the file" in message and "report it" in message
    assert name in message
    if file_format == "zip":
        assert "contains something other than weights" in message
    else:
        assert "old-style pickle" in message and "zip format" in message
    assert not marker.exists()


def test_torchs_advice_to_load_unsafely_never_reaches_the_learner(tmp_path):
    path = planted("builtins.eval", tmp_path / "MARKER", tmp_path / "evil.ckpt", "zip")
    with pytest.raises(CheckpointRefusedError) as refusal:
        checkpoints.load_checkpoint(path, sha256(path))
    assert "weights_only" not in str(refusal.value)
    assert refusal.value.__cause__ is None and refusal.value.__suppress_context__


def test_a_lightning_stand_in_runs_nothing_even_when_called(tmp_path):
    content = {
        "state_dict": {"a": torch.ones(1)},
        "x": Raw(call(named(LIGHTNING_MODULE, "ModelCheckpoint"), "rm")),
    }
    path = save(content, tmp_path / "odd.ckpt", "zip")
    with pytest.raises(CheckpointRefusedError, match="not a checkpoint the course can read"):
        checkpoints.load_checkpoint(path, sha256(path))


# -- hashing ---------------------------------------------------------------------------------------------


def test_a_wrong_sha256_is_refused_before_anything_is_unpickled(tmp_path, monkeypatch):
    marker = tmp_path / "MARKER"
    path = planted("os.system", marker, tmp_path / "evil.ckpt", "legacy")

    def no_unpickling(*args, **kwargs):
        raise AssertionError("unpickled before the hash was checked")

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    with pytest.raises(CheckpointRefusedError, match="sha256") as refusal:
        checkpoints.load_checkpoint(path, "0" * 64)
    assert "Nothing in it was loaded" in str(refusal.value)
    assert not marker.exists()


@pytest.mark.parametrize("swap", ["renamed over it", "written into it"])
def test_a_file_swapped_after_its_hash_was_checked_is_never_loaded(swap, tmp_path, monkeypatch):
    """Someone who can write to a shared cache replaces the file right after the hash check: the weights
    that load are still the ones whose hash was checked, and the payload never runs."""
    marker = tmp_path / "MARKER"
    weights = taming_state()
    path = lightning_checkpoint(weights, tmp_path / "last.ckpt")
    pinned = sha256(path)
    evil = planted("builtins.exec", marker, tmp_path / "evil.ckpt", "zip")
    real_sha256 = checkpoints._sha256

    def hash_then_swap(data: bytes) -> str:
        digest = real_sha256(data)
        if swap == "renamed over it":
            os.replace(evil, path)
        else:
            path.write_bytes(evil.read_bytes())
        return digest

    monkeypatch.setattr(checkpoints, "_sha256", hash_then_swap)
    state = checkpoints.load_checkpoint(path, pinned)
    assert sha256(path) != pinned  # the swap did happen
    assert state.keys() == weights.keys()
    assert all(torch.equal(state[key], value) for key, value in weights.items())
    assert not marker.exists()


# -- what loads ------------------------------------------------------------------------------------------


def test_a_lightning_checkpoint_loads_without_lightning_and_vqgan_drops_its_training_parts(
    tmp_path, monkeypatch
):
    weights = taming_state()
    path = lightning_checkpoint(weights, tmp_path / "last.ckpt")
    monkeypatch.setitem(sys.modules, "pytorch_lightning", None)  # any import of Lightning would now fail
    state = checkpoints.load_checkpoint(path, sha256(path))
    assert state.keys() == weights.keys()
    assert all(torch.equal(state[key], value) for key, value in weights.items())
    model_weights = vqgan.model_state_dict(path, sha256(path))
    assert model_weights.keys() == {key for key in weights if not key.startswith("loss.")}


def test_plain_torch_weights_refuse_the_lightning_callback_class_that_the_stand_in_replaces(tmp_path):
    path = lightning_checkpoint(taming_state(), tmp_path / "last.ckpt")
    with pytest.raises(pickle.UnpicklingError, match="ModelCheckpoint"):
        torch.load(path, weights_only=True)


def test_a_plain_dict_of_tensors_loads_as_it_is(tmp_path):
    weights = taming_state()
    path = tmp_path / "weights.pt"
    torch.save(weights, path)
    assert checkpoints.load_checkpoint(path, sha256(path)).keys() == weights.keys()


@pytest.mark.parametrize(
    "content",
    [{"state_dict": {"a": torch.ones(1), "b": "text"}}, {"state_dict": {}}, [torch.ones(1)]],
    ids=["a value that is not a tensor", "no weights", "not a dict"],
)
def test_a_checkpoint_holding_more_or_less_than_named_tensors_is_refused(content, tmp_path):
    path = tmp_path / "odd.ckpt"
    torch.save(content, path)
    with pytest.raises(CheckpointRefusedError, match="weights"):
        checkpoints.load_checkpoint(path, sha256(path))
