"""Saving a CLIP training run as it goes, and resuming it (course infrastructure, lesson 8).

A checkpoint is one safetensors file, `checkpoints/step-000008.safetensors` in the run's folder: the model's
weights (float32), the optimizer's moments, and as metadata the step reached, the settings, the caption
sampler's random state and the optimizer's hyperparameters. It is written under a temporary name and renamed
into place, so a process killed while writing leaves the previous checkpoint as it was, and `latest` never
sees a half-written file.

A run resumes only with the settings it was started with: the learning-rate schedule and the data order
depend on them, and a run that changed them half-way would match neither. The number of workers may differ
(the global batch is the same, so the training is too).
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mmlesson.course.assets import written_atomically
from mmlesson.errors import InputError
from mmlesson.train_clip import ClipRunState, ClipTraining, new_run_state

FOLDER = "checkpoints"
PATTERN = "step-*.safetensors"


def checkpoint_path(out: Path, step: int) -> Path:
    return out / FOLDER / f"step-{step:06d}.safetensors"


def save_run(out: Path, model: torch.nn.Module, state: ClipRunState, settings: ClipTraining) -> Path:
    """Write the run's checkpoint at its current step, atomically (see the module's docstring)."""
    tensors = {
        f"model.{name}": value.detach().float().contiguous() for name, value in model.state_dict().items()
    }
    optimizer = state.optimizer.state_dict()
    for index, moments in optimizer["state"].items():
        tensors |= {f"optimizer.{index}.{name}": value.contiguous() for name, value in moments.items()}
    version, internal, gauss = state.captions.getstate()
    about = {
        "step": state.step,
        "settings": dataclasses.asdict(settings),
        "captions_random_state": [version, list(internal), gauss],
        "optimizer_param_groups": optimizer["param_groups"],
    }
    path = checkpoint_path(out, state.step)
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_atomically(path) as temporary:
        save_file(tensors, str(temporary), metadata={"mmlesson": json.dumps(about)})
    return path


def latest_checkpoint(out: Path) -> Path:
    """The checkpoint of the furthest step in the run folder `out`."""
    found = sorted((out / FOLDER).glob(PATTERN))
    if not found:
        raise InputError(
            f"there is no checkpoint to resume from in {out / FOLDER}: start the run without --resume, or "
            "point --out at the folder of the run you want to continue"
        )
    return found[-1]


def resume_run(out: Path, model: torch.nn.Module, settings: ClipTraining) -> ClipRunState:
    """Load the latest checkpoint of `out` into `model`; the state to continue training from."""
    path = latest_checkpoint(out)
    with safe_open(str(path), framework="pt") as stored:
        about = json.loads(stored.metadata()["mmlesson"])
        tensors = {key: stored.get_tensor(key) for key in stored.keys()}
    refuse_other_settings(path, about["settings"], dataclasses.asdict(settings))
    model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    state = new_run_state(model, settings)
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            moments.setdefault(int(index), {})[name] = value
    state.optimizer.load_state_dict({"state": moments, "param_groups": about["optimizer_param_groups"]})
    version, internal, gauss = about["captions_random_state"]
    state.captions = random.Random()
    state.captions.setstate((version, tuple(internal), gauss))
    state.step = about["step"]
    return state


def refuse_other_settings(path: Path, stored: dict, wanted: dict) -> None:
    """A clear refusal naming each setting that differs between the checkpoint and this command."""
    stored = json.loads(json.dumps(stored))  # tuples as lists, as JSON holds them
    wanted = json.loads(json.dumps(wanted))
    differ = [f"{name}: {stored.get(name)!r} there, {value!r} now" for name, value in wanted.items()
              if stored.get(name) != value]  # fmt: skip
    if differ:
        raise InputError(
            f"{path} belongs to a run with other settings ({'; '.join(differ)}): resume with the settings it "
            "was started with, or train into a new --out folder"
        )
