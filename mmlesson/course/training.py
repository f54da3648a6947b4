"""The trainers' command line: how the shipped tiny models were made, and how to make them again.

    python -m mmlesson train clip  --steps 3000             # each writes its model into mmlesson/weights/
    python -m mmlesson train vqgan --steps 2500 --threads 2
    python -m mmlesson train dalle --threads 1              # needs the shipped tiny VQGAN and CLIP
    python -m mmlesson train clip --steps 200 --out /tmp/try   # a quick run elsewhere

Every field of a trainer's settings (`ClipTraining`, `VqganTraining`, `DalleTraining`) is an option, and the
manifest written beside the weights records the command, the settings as they were, the evaluation's
settings, the metrics, the time taken and the library versions. The training itself is lesson code, in
`mmlesson.train_clip`, `mmlesson.train_vqgan` and `mmlesson.train_dalle`.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import open_clip
import torch

from mmlesson import data
from mmlesson.clip import TINY_CLIP_NAME, bundle_from_model, load_tiny_clip, tiny_clip_config
from mmlesson.course.assets import WEIGHTS_DIR, save_shipped, shipped_weights
from mmlesson.course.timing import best_seconds
from mmlesson.dalle import TINY_DALLE_NAME, Dalle
from mmlesson.data import HELD_OUT
from mmlesson.train_clip import ClipEvaluation, ClipTraining, evaluate_clip, new_tiny_clip, train_clip
from mmlesson.train_dalle import (
    DalleTraining,
    encode_world,
    evaluate_dalle,
    evaluation_attributes,
    new_tiny_dalle,
    train_dalle,
)
from mmlesson.train_vqgan import VqganEvaluation, VqganTraining, evaluate_vqgan, train_vqgan
from mmlesson.vqgan import TINY_VQGAN_NAME, VQGAN, load_tiny_vqgan, tiny_vqgan_config

COMMAND = "python -m mmlesson train"
AS_SHIPPED = "float16, as shipped"  # what the evaluation measures (see as_shipped)


def settings_parser(model: str, settings: type) -> argparse.ArgumentParser:
    """Options for every field of a settings dataclass (`--batch-size 64`, `--betas 0.9 0.98`), defaults
    from the dataclass, plus where the run writes and how many threads it may use."""
    parser = argparse.ArgumentParser(
        prog=f"{COMMAND} {model}", description=f"Train the course's tiny {model}."
    )
    for field in dataclasses.fields(settings):
        option = "--" + field.name.replace("_", "-")
        if isinstance(field.default, tuple):
            parser.add_argument(option, type=float, nargs=len(field.default), default=field.default)
        else:
            parser.add_argument(option, type=type(field.default), default=field.default)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where the weights and manifest go")
    return parser


def parse_settings(model: str, settings: type, argv: list[str]) -> tuple[Any, argparse.Namespace]:
    """The settings a command line asks for, and its other options (threads, out)."""
    options = settings_parser(model, settings).parse_args(argv)
    names = [field.name for field in dataclasses.fields(settings)]
    values = {name: tuple(v) if isinstance(v := getattr(options, name), list) else v for name in names}
    return settings(**values), options


def start(model: str, settings: type, argv: list[str]) -> tuple[Any, argparse.Namespace]:
    """`parse_settings`, and the thread count applied."""
    chosen, options = parse_settings(model, settings, argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    return chosen, options


def run_record(argv: list[str], settings: Any, started: float, losses: list[float]) -> dict:
    """What every manifest says of its run: the command, the settings as they were, time and final loss."""
    return {
        "command": f"{COMMAND} {' '.join(argv)}",
        "settings": dataclasses.asdict(settings),
        "wall_time_s": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads(),
        "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),
        "versions": {"torch": torch.__version__, "open_clip": open_clip.__version__},
    }


def as_shipped(module: torch.nn.Module) -> None:
    """Round the weights to float16 and back, so the evaluation measures the weights that ship."""
    module.load_state_dict({k: v.half().float() for k, v in module.state_dict().items()})


def finish(name: str, state: dict, out: Path, record: dict, extra_files: dict[str, str] | None = None) -> int:
    path = save_shipped(name, state, out, record, extra_files or {})
    print(json.dumps(record["metrics"], indent=2))
    print(f"wrote {path.name} and its weights in {out}")
    return 0


def train_clip_command(argv: list[str]) -> int:
    settings, options = start("clip", ClipTraining, argv)
    model, tokenizer = new_tiny_clip(seed=settings.seed)
    world = data.ShapesWorld(seed=settings.seed, exclude=HELD_OUT)
    started = time.perf_counter()
    losses = train_clip(model, tokenizer, world, settings)
    training = run_record(["clip", *argv], settings, started, losses)
    evaluation = ClipEvaluation()
    metrics = evaluate_clip(
        bundle_from_model(model, tokenizer, TINY_CLIP_NAME, torch.device("cpu")), evaluation
    )
    pairs = settings.steps * settings.batch_size
    record = {
        "tokenizer": {"context_length": tokenizer.context_length, "bpe_ids": tokenizer.bpe_ids},
        "training": training
        | {
            "pairs_seen": pairs,
            "data": f"ShapesWorld(seed={settings.seed}, exclude=HELD_OUT), items 0 to {pairs - 1}, one pass",
            "held_out_combos": [list(pair) for pair in HELD_OUT],
        },
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
        "evaluation": {"function": "mmlesson.train_clip.evaluate_clip", **dataclasses.asdict(evaluation)},
    }
    config = json.dumps(tiny_clip_config(tokenizer.vocab_size), indent=2) + "\n"
    return finish(TINY_CLIP_NAME, model.state_dict(), options.out, record, {f"{TINY_CLIP_NAME}.json": config})


def train_vqgan_command(argv: list[str]) -> int:
    settings, options = start("vqgan", VqganTraining, argv)
    torch.manual_seed(settings.seed)
    config = tiny_vqgan_config()
    model = VQGAN(config, TINY_VQGAN_NAME)
    started = time.perf_counter()
    losses = train_vqgan(model, data.ShapesWorld(seed=settings.seed), settings)
    training = run_record(["vqgan", *argv], settings, started, losses)
    as_shipped(model)
    evaluation = VqganEvaluation()
    images = settings.steps * settings.batch_size
    record = {
        "config": config,
        "training": training
        | {
            "data": f"ShapesWorld(seed={settings.seed}), items 0 to {images - 1}, one pass",
            "losses": "L1 + MSE reconstruction + codebook/commitment (beta 0.25); unused entries restarted",
        },
        "metrics": {k: round(v, 4) for k, v in evaluate_vqgan(model, evaluation).items()},
        "evaluation": {
            "function": "mmlesson.train_vqgan.evaluate_vqgan",
            **dataclasses.asdict(evaluation),
            "weights": AS_SHIPPED,
        },
    }
    return finish(TINY_VQGAN_NAME, model.state_dict(), options.out, record)


def seconds_per_image(dalle: Dalle, n: int = 1, repeats: int = 3, use_cache: bool = True) -> float:
    """Seconds to sample and decode one image, from the fastest of `repeats` calls for n images at once."""
    caption = "a large red circle on the left"
    return (
        best_seconds(lambda: dalle.decode(dalle.sample_codes(caption, n, use_cache=use_cache)), repeats) / n
    )


def train_dalle_command(argv: list[str]) -> int:
    settings, options = start("dalle", DalleTraining, argv)
    dalle = new_tiny_dalle(load_tiny_vqgan().eval(), seed=settings.seed)
    world = data.ShapesWorld(seed=settings.seed, exclude=HELD_OUT)
    started = time.perf_counter()
    sequences = encode_world(dalle, world, settings.images, partial_share=settings.partial_share)
    encoding_time = time.perf_counter() - started
    losses = train_dalle(dalle, sequences, settings)
    training = run_record(["dalle", *argv], settings, started, losses)
    as_shipped(dalle.gpt)
    metrics = evaluate_dalle(dalle, load_tiny_clip(torch.device("cpu")), evaluation_attributes())
    metrics["seconds_per_image"] = seconds_per_image(dalle)
    metrics["seconds_per_image_in_batches_of_8"] = seconds_per_image(dalle, n=8)
    vqgan_manifest, _ = shipped_weights(TINY_VQGAN_NAME)
    record = {
        "config": dataclasses.asdict(dalle.gpt.config),
        "tokenizer": {"context_length": dalle.tokenizer.context_length, "words": dalle.tokenizer.words[1:]},
        "vqgan_sha256": vqgan_manifest["files"][vqgan_manifest["weights"]]["sha256"],
        "parameters": dalle.gpt.n_params(),
        "training": training
        | {
            "data": f"ShapesWorld(seed={settings.seed}, exclude=HELD_OUT), items 0 to {settings.images - 1}, "
            f"encoded once by {TINY_VQGAN_NAME}; {settings.partial_share:.0%} of the captions partial",
            "held_out_combos": [list(pair) for pair in HELD_OUT],
            "encoding_time_s": round(encoding_time, 1),
        },
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
        "evaluation": {
            "function": "mmlesson.train_dalle.evaluate_dalle",
            "attributes": "evaluation_attributes(): every color x shape pair x size x position, caption "
            "template 0",
            **defaults_of(evaluate_dalle),
            "weights": AS_SHIPPED,
        },
    }
    return finish(TINY_DALLE_NAME, dalle.gpt.state_dict(), options.out, record)


def defaults_of(function: Callable) -> dict[str, Any]:
    """A function's default arguments, read from its signature: a manifest that records them cannot drift
    from the code."""
    parameters = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


TRAINERS: dict[str, Callable[[list[str]], int]] = {
    "clip": train_clip_command,
    "vqgan": train_vqgan_command,
    "dalle": train_dalle_command,
}
