"""How the course's tiny CLIP is trained and measured. The shipped weights come from

    python -m mmlesson train clip                   # train, evaluate, write mmlesson/weights/
    python -m mmlesson train clip --steps 200 --out /tmp/try   # a quick run elsewhere

(the command line is `mmlesson.course.training`; everything it trains with is `ClipTraining`). On several
processes the same training runs data-parallel, the global batch split between the workers (lesson 8):

    torchrun --standalone --nproc_per_node=2 -m mmlesson.train_clip -- --steps 8 --out OUT --log OUT/log.jsonl

(the `--` stops torchrun from reading `--log` as an abbreviation of its own `--log-dir`).

Training is plain CLIP: fresh Shapes-world images every step (the world is unlimited, so nothing is seen
twice), a caption for each, the symmetric contrastive loss of `mmlesson.losses`, AdamW with warm-up and a
cosine decay, and a learned temperature. Some (color, shape) pairs are held out of training entirely, so the
evaluation can ask whether the model composes "red" and "star" without ever having seen a red star.

Half of the captions are the world's full sentences; the other half name only some attributes behind a
prompt-like prefix ("a photo of a red star", "a drawing of a circle"), so that short zero-shot prompts are
in-distribution for the text encoder.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import open_clip
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from mmlesson import data, runtime
from mmlesson.clip import ClipBundle, CompactTokenizer, bundle_from_model, normalize_pixels, tiny_clip_config
from mmlesson.data import HELD_OUT, ZERO_SHOT_TEMPLATE, course_texts, training_caption
from mmlesson.errors import InputError
from mmlesson.images import pil_to_tensor
from mmlesson.losses import contrastive_loss, global_contrastive_loss
from mmlesson.schedule import learning_rate, set_learning_rate

# The names lessons use; see API.md.
__all__ = [
    "ClipTraining",
    "ClipEvaluation",
    "ClipRunState",
    "new_tiny_clip",
    "train_clip",
    "worker_share",
    "evaluate_clip",
    "zero_shot_accuracy",
    "BatchSweep",
    "batch_size_sweep",
]

PRECISIONS = ("float32", "bfloat16")
MAX_LOGIT_SCALE = 100.0  # CLIP clamps its learned 1/temperature here, so training cannot run away


@dataclass(frozen=True)
class ClipTraining:
    """Everything a CLIP training run is decided by; the defaults made the shipped tiny CLIP, and its
    manifest records these fields as they were."""

    steps: int = 3000
    batch_size: int = 128
    peak_lr: float = 5e-4
    warmup: int = 100  # steps of linear warm-up, then a cosine decay to zero
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.98)  # CLIP's: a short memory for the second moment
    seed: int = 0
    # With several worker processes (lesson 8): how their shares of the global batch meet in the loss.
    gather: bool = True  # contrast every pair against the whole global batch (False: its worker's share only)
    local_loss: bool = False  # gathered, but each worker computes only its rows and columns of the matrix
    precision: str = "float32"  # "bfloat16": the encoders run under autocast (the loss stays float32)
    grad_checkpointing: bool = False  # keep fewer activations; recompute them in the backward pass


@dataclass(frozen=True)
class ClipEvaluation:
    """Where the quality bars are measured: worlds whose seeds training never used."""

    seed: int = 1000
    images: int = 3000  # of every color x shape pair
    held_out_images: int = 1000  # of the held-out pairs only
    gallery: int = 1000  # images a caption is searched among, for recall@10


CONTEXT_LENGTH = 24  # text tokens: the longest course text needs 12 (with start and end)


def course_bpe_ids() -> list[int]:
    """CLIP BPE ids of every word piece in `course_texts()`."""
    bpe = open_clip.SimpleTokenizer()
    return sorted({i for text in course_texts() for i in bpe.encode(text)})


def new_tiny_clip(
    width: int = 128, layers: int = 4, seed: int = 0
) -> tuple[torch.nn.Module, CompactTokenizer]:
    """An untrained tiny CLIP (open_clip's CLIP class) and its compact tokenizer."""
    tokenizer = CompactTokenizer(course_bpe_ids(), context_length=CONTEXT_LENGTH)
    torch.manual_seed(seed)
    config = tiny_clip_config(tokenizer.vocab_size, width=width, layers=layers, context_length=CONTEXT_LENGTH)
    return open_clip.CLIP(**config), tokenizer


@dataclass
class ClipRunState:
    """Where a training run stands: with the model's weights, enough to continue it exactly."""

    step: int  # the next step to take
    optimizer: torch.optim.Optimizer
    captions: random.Random  # draws each caption's wording (full sentence or partial prompt)


def new_run_state(model: torch.nn.Module, settings: ClipTraining) -> ClipRunState:
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.peak_lr, weight_decay=settings.weight_decay, betas=settings.betas
    )
    return ClipRunState(step=0, optimizer=optimizer, captions=random.Random(settings.seed))


class PairEncoder(torch.nn.Module):
    """CLIP's two encoders as one forward pass: the unit that DistributedDataParallel wraps, since it
    synchronizes the gradients of what went through its forward."""

    def __init__(self, clip: torch.nn.Module):
        super().__init__()
        self.clip = clip

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.clip.encode_image(images), self.clip.encode_text(tokens)


def workers() -> tuple[int, int]:
    """This process's rank and the number of worker processes: (0, 1) unless torch.distributed is running."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def worker_share(batch_size: int, rank: int, world_size: int) -> slice:
    """The contiguous part of the global batch that worker `rank` embeds: equal parts, in rank order."""
    if batch_size % world_size:
        fitting = batch_size - batch_size % world_size or world_size
        raise InputError(
            f"a global batch of {batch_size} pairs does not split evenly over {world_size} workers: choose a "
            f"--batch-size that is a multiple of {world_size} (e.g. {fitting})"
        )
    size = batch_size // world_size
    return slice(rank * size, (rank + 1) * size)


def batch_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    settings: ClipTraining,
) -> torch.Tensor:
    """This worker's loss: over the global batch (gathered), or over its own share only (`gather=False`)."""
    if workers()[1] > 1 and settings.gather:
        return global_contrastive_loss(image_features, text_features, logit_scale, settings.local_loss)
    return contrastive_loss(image_features, text_features, logit_scale)


def mean_over_workers(value: torch.Tensor) -> float:
    """The mean of a number over all workers (the number itself with one worker)."""
    world_size = workers()[1]
    if world_size > 1:
        value = value.clone()
        dist.all_reduce(value)
        value /= world_size
    return value.item()


def train_clip(
    model: torch.nn.Module,
    tokenizer: CompactTokenizer,
    world: data.ShapesWorld,
    settings: ClipTraining = ClipTraining(),
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    state: ClipRunState | None = None,
    after_step: Callable[[ClipRunState], None] | None = None,
) -> list[float]:
    """Train `model` contrastively on fresh batches of `world`; returns the loss of every step.

    `on_step(step, loss)` is called after each step (a notebook can plot the loss as it falls). A resumed run
    passes the `state` it saved; `after_step(state)` may save it (see `mmlesson.course.resume`).

    Under torch.distributed (`torchrun`, lesson 8) each worker embeds its own share of the same global
    batch and the loss sees the whole batch (see `batch_loss`); the losses returned are the global batch's.
    """
    rank, world_size = workers()
    share = worker_share(settings.batch_size, rank, world_size)
    check_precision(settings.precision)
    state = state or new_run_state(model, settings)
    device = next(model.parameters()).device  # train where the model lives (a GPU on Colab)
    encoder = PairEncoder(model)
    if world_size > 1:
        encoder = DistributedDataParallel(encoder)
    model.set_grad_checkpointing(settings.grad_checkpointing)
    model.train()
    losses = []
    steps, batch_size = settings.steps, settings.batch_size
    bar = runtime.progress_bar(range(state.step, steps), desc="training", disable=not progress or rank > 0)
    for step in bar:
        batch = world.sample(batch_size, start=step * batch_size)
        # Every worker draws every caption, so the random wording is the same whatever the number of workers.
        texts = [training_caption(c, a, state.captions) for c, a in zip(batch.captions, batch.attributes)]
        images, tokens = normalize_pixels(pil_to_tensor(batch.images[share])), tokenizer(texts[share])
        set_learning_rate(state.optimizer, learning_rate(step, steps, settings.peak_lr, settings.warmup))
        with torch.autocast(device.type, torch.bfloat16, enabled=settings.precision == "bfloat16"):
            image_features, text_features = encoder(images.to(device), tokens.to(device))
        loss = batch_loss(image_features, text_features, model.logit_scale.exp(), settings)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))
        state.step = step + 1
        losses.append(mean_over_workers(loss.detach()))
        if on_step is not None:
            on_step(step, losses[-1])
        if after_step is not None:
            after_step(state)
    model.set_grad_checkpointing(False)
    model.eval()
    return losses


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise InputError(
            f"precision {precision!r} is not one the trainer knows: use one of {', '.join(PRECISIONS)}"
        )


def zero_shot_accuracy(
    clip: ClipBundle, image_embeddings: torch.Tensor, labels: list[str], classnames: list[str]
) -> float:
    """Top-1 accuracy of picking, for each image, the prompt 'a photo of a {class}' it is most similar to.

    It takes the images' embeddings, not the images: the evaluation asks several questions of one set of
    images, and encoding them is most of its cost.
    """
    prompts = [ZERO_SHOT_TEMPLATE.format(name) for name in classnames]
    scores = image_embeddings @ clip.encode_texts(prompts).T
    predicted = [classnames[k] for k in scores.argmax(dim=1).tolist()]
    return sum(p == t for p, t in zip(predicted, labels)) / len(labels)


def text_to_image_recall(clip: ClipBundle, batch: data.ShapesBatch, k: int = 10) -> float:
    """How often an image is among the top k results for its own full caption, searched among `batch`."""
    queries = [data.caption(attributes, 0) for attributes in batch.attributes]
    scores = clip.encode_texts(queries) @ clip.encode_images(batch.images).T
    top = scores.topk(k, dim=1).indices
    return (top == torch.arange(len(batch)).unsqueeze(1)).any(dim=1).float().mean().item()


def evaluate_clip(clip: ClipBundle, settings: ClipEvaluation = ClipEvaluation()) -> dict[str, float]:
    """The quality bars of the shipped tiny CLIP, on worlds with seeds never used in training."""
    seed = settings.seed
    everything = data.ShapesWorld(seed=seed).sample(settings.images)
    held = data.ShapesWorld(seed=seed + 1, combos=HELD_OUT).sample(settings.held_out_images)
    combos = [f"{c} {s}" for c, s in data.ALL_COMBOS]

    def pairs(batch: data.ShapesBatch) -> list[str]:
        return [f"{a['color']} {a['shape']}" for a in batch.attributes]

    colors = [a["color"] for a in everything.attributes]
    shapes = [a["shape"] for a in everything.attributes]
    everything_embedded = clip.encode_images(everything.images)
    held_embedded = clip.encode_images(held.images)
    return {
        "zero_shot_color_shape_all": zero_shot_accuracy(clip, everything_embedded, pairs(everything), combos),
        "zero_shot_color_shape_held_out": zero_shot_accuracy(clip, held_embedded, pairs(held), combos),
        "zero_shot_color": zero_shot_accuracy(
            clip, everything_embedded, [f"{c} shape" for c in colors], [f"{c} shape" for c in data.COLORS]
        ),
        "zero_shot_shape": zero_shot_accuracy(clip, everything_embedded, shapes, list(data.SHAPES)),
        "text_to_image_recall_at_10": text_to_image_recall(
            clip, data.ShapesWorld(seed=seed + 2).sample(settings.gallery)
        ),
    }


@dataclass(frozen=True)
class BatchSweep:
    """Lesson 8's experiment: the same number of training pairs, cut into batches of different sizes.

    A batch of N pairs gives every image N - 1 wrong captions to be told apart from, so a bigger batch asks a
    harder question of every pair; with the pairs fixed, it also means fewer optimizer steps. The model is
    lesson 1's small CLIP, so a run takes about a minute on two cores.
    """

    pairs: int = 25_600
    batch_sizes: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
    peak_lr: float = 2e-3  # lesson 1's, for every batch size
    warmup_share: float = 0.125  # of each run's steps
    width: int = 64
    layers: int = 2
    seed: int = 0
    eval_batch_size: int = 64  # the loss of every model is measured on batches of one size, to compare them
    eval_batches: int = 20


def contrastive_eval_loss(clip: ClipBundle, world: data.ShapesWorld, batch_size: int, batches: int) -> float:
    """Mean contrastive loss of a trained model on `batches` batches of a world it never trained on."""
    losses = []
    with torch.no_grad():
        for k in range(batches):
            batch = world.sample(batch_size, start=k * batch_size)
            images = clip.encode_images(batch.images)
            texts = clip.encode_texts(batch.captions)
            losses.append(contrastive_loss(images, texts, clip.model.logit_scale.exp()).item())
    return sum(losses) / len(losses)


def batch_size_sweep(sweep: BatchSweep, evaluation: ClipEvaluation, progress: bool = True) -> list[dict]:
    """Train one model per batch size on the same pairs; measure each the same way (see `BatchSweep`)."""
    rows = []
    for batch_size in sweep.batch_sizes:
        steps = sweep.pairs // batch_size
        settings = ClipTraining(
            steps=steps,
            batch_size=batch_size,
            peak_lr=sweep.peak_lr,
            warmup=max(1, round(steps * sweep.warmup_share)),
            seed=sweep.seed,
        )
        model, tokenizer = new_tiny_clip(width=sweep.width, layers=sweep.layers, seed=sweep.seed)
        world = data.ShapesWorld(seed=sweep.seed, exclude=HELD_OUT)
        losses = train_clip(model, tokenizer, world, settings, progress=progress)
        clip = bundle_from_model(model, tokenizer, f"sweep-batch-{batch_size}", torch.device("cpu"))
        unseen = data.ShapesWorld(seed=evaluation.seed + 3)
        rows.append(
            {
                "batch_size": batch_size,
                "steps": steps,
                "warmup": settings.warmup,
                "train_loss_last_10_percent": sum(losses[-steps // 10 :]) / len(losses[-steps // 10 :]),
                "eval_loss": contrastive_eval_loss(clip, unseen, sweep.eval_batch_size, sweep.eval_batches),
                **evaluate_clip(clip, evaluation),
            }
        )
    return rows


if __name__ == "__main__":  # torchrun --nproc_per_node=2 -m mmlesson.train_clip ...: the command line is
    import sys  # mmlesson.course.training's (python -m mmlesson train clip ...)

    from mmlesson.course.training import train_clip_command

    raise SystemExit(train_clip_command(sys.argv[1:]))
