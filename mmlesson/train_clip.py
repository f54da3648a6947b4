"""How the course's tiny CLIP is trained and measured. The shipped weights come from

    python -m mmlesson train clip                   # train, evaluate, write mmlesson/weights/
    python -m mmlesson train clip --steps 200 --out /tmp/try   # a quick run elsewhere

(the command line is `mmlesson.course.training`; everything it trains with is `ClipTraining`).

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

from mmlesson import data, runtime
from mmlesson.clip import ClipBundle, CompactTokenizer, normalize_pixels, tiny_clip_config
from mmlesson.data import HELD_OUT, ZERO_SHOT_TEMPLATE, course_texts, training_caption
from mmlesson.losses import contrastive_loss
from mmlesson.schedule import learning_rate, set_learning_rate

# The names lessons use; see API.md.
__all__ = [
    "ClipTraining",
    "ClipEvaluation",
    "new_tiny_clip",
    "train_clip",
    "evaluate_clip",
    "zero_shot_accuracy",
]

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


def train_clip(
    model: torch.nn.Module,
    tokenizer: CompactTokenizer,
    world: data.ShapesWorld,
    settings: ClipTraining = ClipTraining(),
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train `model` contrastively on fresh batches of `world`; returns the loss of every step.

    `on_step(step, loss)` is called after each step (a notebook can plot the loss as it falls).
    """
    rng = random.Random(settings.seed)
    device = next(model.parameters()).device  # train where the model lives (a GPU on Colab)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.peak_lr, weight_decay=settings.weight_decay, betas=settings.betas
    )
    model.train()
    losses = []
    steps, batch_size = settings.steps, settings.batch_size
    for step in runtime.progress_bar(range(steps), desc="training", disable=not progress):
        batch = world.sample(batch_size, start=step * batch_size)
        texts = [training_caption(c, a, rng) for c, a in zip(batch.captions, batch.attributes)]
        set_learning_rate(optimizer, learning_rate(step, steps, settings.peak_lr, settings.warmup))
        image_features = model.encode_image(normalize_pixels(batch.to_tensor()).to(device))
        text_features = model.encode_text(tokenizer(texts).to(device))
        loss = contrastive_loss(image_features, text_features, model.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(MAX_LOGIT_SCALE))
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses


def zero_shot_accuracy(clip: ClipBundle, images: list, labels: list[str], classnames: list[str]) -> float:
    """Top-1 accuracy of picking, for each image, the prompt 'a photo of a {class}' it is most similar to."""
    prompts = [ZERO_SHOT_TEMPLATE.format(name) for name in classnames]
    scores = clip.encode_images(images) @ clip.encode_texts(prompts).T
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
    return {
        "zero_shot_color_shape_all": zero_shot_accuracy(clip, everything.images, pairs(everything), combos),
        "zero_shot_color_shape_held_out": zero_shot_accuracy(clip, held.images, pairs(held), combos),
        "zero_shot_color": zero_shot_accuracy(
            clip, everything.images, [f"{c} shape" for c in colors], [f"{c} shape" for c in data.COLORS]
        ),
        "zero_shot_shape": zero_shot_accuracy(clip, everything.images, shapes, list(data.SHAPES)),
        "text_to_image_recall_at_10": text_to_image_recall(
            clip, data.ShapesWorld(seed=seed + 2).sample(settings.gallery)
        ),
    }
