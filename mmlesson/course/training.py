"""The trainers' command line: how the shipped tiny models were made, and how to make them again.

    python -m mmlesson train clip  --steps 3000             # each writes its model into mmlesson/weights/
    python -m mmlesson train vqgan --steps 2500 --threads 2
    python -m mmlesson train dalle --threads 1              # needs the shipped tiny VQGAN and CLIP
    python -m mmlesson train dalle2 --threads 2             # the same as python -m mmlesson.train_dalle2
    python -m mmlesson train clip --steps 200 --out /tmp/try   # a quick run elsewhere

Every field of a trainer's settings (`ClipTraining`, `VqganTraining`, `DalleTraining`, `Dalle2Training`) is
an option, and the
manifest written beside the weights records the command, the settings as they were, the evaluation's
settings, the metrics, the time taken and the library versions. The training itself is lesson code, in
`mmlesson.train_clip`, `mmlesson.train_vqgan`, `mmlesson.train_dalle` and `mmlesson.train_dalle2`.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.distributed as dist

from mmlesson import data
from mmlesson.clip import TINY_CLIP_NAME, bundle_from_model, load_tiny_clip, tiny_clip_config
from mmlesson.course.assets import WEIGHTS_DIR, save_shipped, shipped_weights
from mmlesson.course.resume import resume_run, save_run
from mmlesson.course.timing import best_seconds
from mmlesson.dalle import TINY_DALLE_NAME, Dalle
from mmlesson.dalle2 import DEFAULT_PRIOR, PRIORS, TINY_DALLE2_NAME, Dalle2
from mmlesson.data import HELD_OUT
from mmlesson.errors import InputError
from mmlesson.judge import evaluation_attributes
from mmlesson.train_clip import (
    BatchSweep,
    ClipEvaluation,
    ClipRunState,
    ClipTraining,
    batch_size_sweep,
    evaluate_clip,
    new_tiny_clip,
    train_clip,
    workers,
)
from mmlesson.train_dalle import (
    DalleTraining,
    encode_world,
    evaluate_dalle,
    new_tiny_dalle,
    train_dalle,
)
from mmlesson.train_dalle2 import (
    Dalle2Training,
    embed_world,
    evaluate_dalle2,
    snapping_agreement,
    train_dalle2,
    variations_keep,
)
from mmlesson.train_vqgan import VqganEvaluation, VqganTraining, evaluate_vqgan, train_vqgan
from mmlesson.vqgan import TINY_VQGAN_NAME, VQGAN, load_tiny_vqgan, tiny_vqgan_config

COMMAND = "python -m mmlesson train"
AS_SHIPPED = "float16, as shipped"  # what the evaluation measures (see as_shipped)
BATCH_SWEEP_FILE = "clip-batch-sweep.json"  # lesson 8 reads it


def settings_parser(model: str, settings: type) -> argparse.ArgumentParser:
    """Options for every field of a settings dataclass (`--batch-size 64`, `--betas 0.9 0.98`, `--no-gather`),
    defaults from the dataclass, plus where the run writes and how many threads it may use."""
    parser = argparse.ArgumentParser(
        prog=f"{COMMAND} {model}", description=f"Train the course's tiny {model}."
    )
    for field in dataclasses.fields(settings):
        option, default = "--" + field.name.replace("_", "-"), field.default
        if isinstance(default, bool):
            parser.add_argument(option, action=argparse.BooleanOptionalAction, default=default)
        elif isinstance(default, tuple):  # tuple[float, float] takes exactly two, tuple[int, ...] any number
            count = "+" if "..." in str(field.type) else len(default)
            parser.add_argument(option, type=type(default[0]), nargs=count, default=default)
        else:
            parser.add_argument(option, type=type(default), default=default)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="where the weights and manifest go")
    if settings is ClipTraining:
        add_run_options(parser)
    return parser


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """How a CLIP run logs, saves and resumes (lesson 8)."""
    parser.add_argument("--log", type=Path, help="write one JSON line per step (step, loss) to this file")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="save the run every N steps")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    parser.add_argument(
        "--evaluate", action=argparse.BooleanOptionalAction, default=True, help="measure the quality bars"
    )


def parse_settings(model: str, settings: type, argv: list[str]) -> tuple[Any, argparse.Namespace]:
    """The settings a command line asks for, and its other options (threads, out, ...)."""
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
    if "metrics" in record:
        print(json.dumps(record["metrics"], indent=2))
    print(f"wrote {path.name} and its weights in {out}")
    return 0


def train_clip_command(argv: list[str]) -> int:
    """`python -m mmlesson train clip`, or on several processes `torchrun ... -m mmlesson.train_clip`."""
    settings, options = start("clip", ClipTraining, argv)
    rank, world_size, device = start_workers()
    try:
        model, tokenizer = new_tiny_clip(seed=settings.seed)
        model.to(device)
        state = resume_run(options.out, model, settings) if options.resume else None
        started = time.perf_counter()
        log = StepLog(options.log if rank == 0 else None, append=options.resume)
        save = every_n_steps(options, model, settings, rank)
        world = data.ShapesWorld(seed=settings.seed, exclude=HELD_OUT)
        losses = train_clip(
            model, tokenizer, world, settings, on_step=log.write, state=state, after_step=save
        )
        if rank == 0:
            record = clip_record(argv, settings, started, losses, tokenizer, world_size)
            if options.evaluate:
                record |= clip_evaluation(bundle_from_model(model, tokenizer, TINY_CLIP_NAME, device))
            config = json.dumps(tiny_clip_config(tokenizer.vocab_size), indent=2) + "\n"
            finish(
                TINY_CLIP_NAME, model.state_dict(), options.out, record, {f"{TINY_CLIP_NAME}.json": config}
            )
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        if world_size > 1:
            dist.destroy_process_group()
    return 0


def clip_record(
    argv: list[str],
    settings: ClipTraining,
    started: float,
    losses: list[float],
    tokenizer: Any,
    world_size: int,
) -> dict:
    """The manifest's account of a CLIP run (`clip_evaluation` adds the metrics)."""
    pairs = settings.steps * settings.batch_size
    training = run_record(["clip", *argv], settings, started, losses)
    if world_size > 1:
        launch = f"torchrun --standalone --nproc_per_node={world_size} -m mmlesson.train_clip"
        training["command"] = f"{launch} {' '.join(argv)}"
    return {
        "tokenizer": {"context_length": tokenizer.context_length, "bpe_ids": tokenizer.bpe_ids},
        "training": training
        | {
            "pairs_seen": pairs,
            "world_size": world_size,
            "data": f"ShapesWorld(seed={settings.seed}, exclude=HELD_OUT), items 0 to {pairs - 1}, one pass",
            "held_out_combos": [list(pair) for pair in HELD_OUT],
        },
    }


def clip_evaluation(clip: Any) -> dict:
    evaluation = ClipEvaluation()
    return {
        "metrics": {k: round(v, 4) for k, v in evaluate_clip(clip, evaluation).items()},
        "evaluation": {"function": "mmlesson.train_clip.evaluate_clip", **dataclasses.asdict(evaluation)},
    }


def start_workers() -> tuple[int, int, torch.device]:
    """Join the other worker processes when `torchrun` started several: (rank, world size, device)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank, world_size = workers()
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return rank, world_size, torch.device("cuda", local_rank)
    return rank, world_size, torch.device("cpu")


class StepLog:
    """One JSON object per line and per step (step, loss, seconds the step took), flushed at once, so that a
    run killed half-way leaves every step it finished in the log (lesson 8 plots it)."""

    def __init__(self, path: Path | None, append: bool = False):
        self.file, self.last = None, time.perf_counter()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = path.open("a" if append else "w", encoding="utf-8")

    def write(self, step: int, loss: float) -> None:
        now, self.last = self.last, time.perf_counter()
        if self.file is not None:
            line = {"step": step, "loss": round(loss, 6), "seconds": round(self.last - now, 4)}
            self.file.write(json.dumps(line) + "\n")
            self.file.flush()


def every_n_steps(
    options: argparse.Namespace, model: torch.nn.Module, settings: ClipTraining, rank: int
) -> Callable[[ClipRunState], None]:
    """What `train_clip` calls after each step: rank 0 saves the run every `--checkpoint-every` steps."""

    def save(state: ClipRunState) -> None:
        if rank == 0 and options.checkpoint_every and state.step % options.checkpoint_every == 0:
            save_run(options.out, model, state, settings)

    return save


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
    record = {
        "config": dataclasses.asdict(dalle.gpt.config),
        "tokenizer": {"context_length": dalle.tokenizer.context_length, "words": dalle.tokenizer.words[1:]},
        "vqgan_sha256": shipped_sha256(TINY_VQGAN_NAME),
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


def dalle2_seconds_per_image(dalle2: Dalle2, n: int, repeats: int = 3) -> float:
    """Seconds per image at the default settings, from the fastest of `repeats` calls for n images."""
    return best_seconds(lambda: dalle2.generate("a large red circle on the left", n), repeats) / n


VARIATIONS_SEED = 2000  # the pictures whose variations are measured: a world training never drew from


def train_dalle2_command(argv: list[str]) -> int:
    settings, options = start("dalle2", Dalle2Training, argv)
    clip, vqgan = load_tiny_clip(torch.device("cpu")), load_tiny_vqgan().eval()
    world = data.ShapesWorld(seed=settings.seed, exclude=HELD_OUT)
    started = time.perf_counter()
    pairs = embed_world(clip, vqgan, world, settings.images, settings.partial_share)
    embedding_time = time.perf_counter() - started
    dalle2, losses = train_dalle2(clip, vqgan, pairs, settings)
    training = run_record(["dalle2", *argv], settings, started, losses["decoder"])
    for module in dalle2.trained_parts().values():
        as_shipped(module)
    attributes = evaluation_attributes()
    metrics = {
        prior: {k: round(v, 4) for k, v in evaluate_dalle2(dalle2, clip, attributes, prior=prior).items()}
        for prior in PRIORS
    }
    pictures = data.ShapesWorld(seed=VARIATIONS_SEED).sample(50)
    metrics["variations_keep"] = {k: round(v, 4) for k, v in variations_keep(dalle2, pictures).items()}
    metrics["seconds_per_image"] = round(dalle2_seconds_per_image(dalle2, 1), 4)
    metrics["seconds_per_image_in_batches_of_8"] = round(dalle2_seconds_per_image(dalle2, 8), 4)
    record = {
        "decoder": dataclasses.asdict(dalle2.decoder.config),
        "prior": dataclasses.asdict(dalle2.diffusion_prior.config),
        "trained_on": {name: shipped_sha256(name) for name in (TINY_CLIP_NAME, TINY_VQGAN_NAME)},
        "parameters": {
            name: sum(p.numel() for p in m.parameters()) for name, m in dalle2.trained_parts().items()
        },
        "training": training
        | {
            "final_prior_loss": round(sum(losses["prior"][-50:]) / 50, 4),
            "data": f"ShapesWorld(seed={settings.seed}, exclude=HELD_OUT), items 0 to {settings.images - 1}, "
            f"embedded once by {TINY_CLIP_NAME} and {TINY_VQGAN_NAME}; {settings.partial_share:.0%} of the "
            "captions partial",
            "held_out_combos": [list(pair) for pair in HELD_OUT],
            "embedding_time_s": round(embedding_time, 1),
            "snapping_agreement": round(snapping_agreement(dalle2.decoder, vqgan, pairs.latents[:2000]), 5),
        },
        "metrics": metrics,
        "evaluation": dalle2_evaluation_record(),
    }
    return finish(TINY_DALLE2_NAME, dalle2.state_dict(), options.out, record)


def dalle2_evaluation_record() -> dict[str, Any]:
    """How the DALL-E 2 manifest's metrics are measured: every prior (the metrics are keyed by it), and the
    speed at generate's defaults, whose prior is named, so that a later change of default shows."""
    defaults = {k: v for k, v in defaults_of(evaluate_dalle2).items() if k != "prior"}
    return {
        "function": "mmlesson.train_dalle2.evaluate_dalle2",
        "attributes": "evaluation_attributes(): every color x shape pair x size x position, caption "
        "template 0",
        "priors": list(PRIORS),
        **defaults,
        "sampling": "generate's defaults",
        "speed": f"dalle2_seconds_per_image: generate's defaults, prior {DEFAULT_PRIOR!r}",
        "weights": AS_SHIPPED,
    }


def shipped_sha256(name: str) -> str:
    manifest, _ = shipped_weights(name)
    return manifest["files"][manifest["weights"]]["sha256"]


def clip_batch_sweep_command(argv: list[str]) -> int:
    """Lesson 8's batch-size sweep (`BatchSweep`), written as a small JSON with its settings."""
    sweep, options = start("clip-batch-sweep", BatchSweep, argv)
    evaluation = ClipEvaluation(images=1000, held_out_images=500, gallery=500)
    started = time.perf_counter()
    rows = batch_size_sweep(sweep, evaluation)
    record = {
        "command": f"{COMMAND} clip-batch-sweep {' '.join(argv)}".rstrip(),
        "settings": dataclasses.asdict(sweep),
        "evaluation": {"function": "mmlesson.train_clip.evaluate_clip", **dataclasses.asdict(evaluation)},
        "wall_time_s": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "open_clip": open_clip.__version__},
        "runs": [{key: round(v, 4) if isinstance(v, float) else v for key, v in row.items()} for row in rows],
    }
    options.out.mkdir(parents=True, exist_ok=True)
    path = options.out / BATCH_SWEEP_FILE
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record["runs"], indent=2))
    print(f"wrote {path}")
    return 0


def defaults_of(function: Callable) -> dict[str, Any]:
    """A function's default arguments, read from its signature: a manifest that records them cannot drift
    from the code."""
    parameters = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


TRAINERS: dict[str, Callable[[list[str]], int]] = {
    "clip": train_clip_command,
    "vqgan": train_vqgan_command,
    "dalle": train_dalle_command,
    "dalle2": train_dalle2_command,
    "clip-batch-sweep": clip_batch_sweep_command,
}
