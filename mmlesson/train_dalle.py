"""How the course's tiny DALL-E is trained and measured. The shipped weights come from

    python -m mmlesson train dalle --threads 1                   # encode, train, evaluate, write weights/
    python -m mmlesson train dalle --steps 100 --images 2000 --out /tmp/try   # a quick run elsewhere

(the command line is `mmlesson.course.training`; everything it trains with is `DalleTraining`).

The training set is drawn and encoded once: Shapes-world images, with the tiny CLIP's held-out color x
shape pairs left out, each turned into its 64 tiny-VQGAN tokens and stored with its caption as one
sequence (`Dalle.to_sequence`). Running the VQGAN's encoder on every step would cost more than the GPT's
step itself, and a few tens of thousands of images, each seen a few times, are plenty. Most captions are
the world's own sentences; a quarter name only some attributes ("a photo of a red star"), so that short
prompts work too, and the model learns to draw a sensible position or size when none is asked for.

The loss is the cross-entropy of the image tokens only (`Dalle.loss`), with AdamW, a warm-up and a cosine
decay, and gradient clipping, as in nanoGPT. `evaluate_dalle` measures the pictures, not the loss: it asks
for every color x shape x size x position, draws several samples of each, and reads their color and
position from the pixels and their shape with the tiny CLIP (`mmlesson.judge`), separately for the pairs
seen in training and the held-out ones.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from mmlesson import data, judge, runtime
from mmlesson.clip import ClipBundle
from mmlesson.dalle import CaptionTokenizer, Dalle, split_words
from mmlesson.schedule import learning_rate, set_learning_rate
from mmlesson.vqgan import VQGAN

# The names lessons use; see API.md.
__all__ = [
    "DalleTraining",
    "new_tiny_dalle",
    "encode_world",
    "train_dalle",
    "evaluate_dalle",
]

CONTEXT_LENGTH = 12  # caption slots: the longest course caption has 10 words and marks
EVALUATION_SEED = 1000  # sampling seed of the evaluation (training never samples)


@dataclass(frozen=True)
class DalleTraining:
    """Everything a DALL-E training run is decided by; the defaults made the shipped tiny DALL-E, and its
    manifest records these fields as they were."""

    images: int = 32_000  # training images, encoded once
    partial_share: float = 0.25  # of the captions that name only some attributes
    steps: int = 2400
    batch_size: int = 64
    peak_lr: float = 1e-3
    warmup: int = 100
    floor: float = 0.1  # the cosine decay ends at floor * peak_lr
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)  # nanoGPT's
    clip_grad_norm: float = 1.0
    seed: int = 0


def course_words() -> list[str]:
    """Every word and punctuation mark of the course's captions and prompts: the tokenizer's vocabulary."""
    return sorted({word for text in data.course_texts() for word in split_words(text)})


def new_tiny_dalle(
    vqgan: VQGAN, n_layer: int = 4, n_head: int = 4, n_embd: int = 128, seed: int = 0
) -> Dalle:
    """An untrained DALL-E over the course's words and the given (trained) VQGAN's tokens."""
    torch.manual_seed(seed)
    return Dalle.untrained(vqgan, CaptionTokenizer(course_words(), CONTEXT_LENGTH), n_layer, n_head, n_embd)


def encode_world(
    dalle: Dalle,
    world: data.ShapesWorld,
    n: int,
    start: int = 0,
    partial_share: float = DalleTraining.partial_share,
    chunk: int = 500,
    progress: bool = True,
) -> torch.Tensor:
    """Sequences [n, text_length + image_length] of items start..start+n-1 of the world.

    Each caption is the world's own or, with probability `partial_share`, a partial one
    (`data.partial_caption`); the choice depends on the world's seed and the item only.
    """
    rows = []
    for first in runtime.progress_bar(range(start, start + n, chunk), desc="encoding", disable=not progress):
        batch = world.sample(min(chunk, start + n - first), start=first)
        captions = []
        for k, (caption, attributes) in enumerate(zip(batch.captions, batch.attributes)):
            rng = random.Random(f"caption:{world.seed}:{first + k}")
            captions.append(
                data.partial_caption(attributes, rng) if rng.random() < partial_share else caption
            )
        rows.append(dalle.to_sequence(captions, batch.to_tensor()))
    return torch.cat(rows)


def train_dalle(
    dalle: Dalle,
    sequences: torch.Tensor,
    settings: DalleTraining = DalleTraining(),
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train the GPT in place on random batches of `sequences`; returns the loss of every step.

    `on_step(step, loss)` is called after each step (a notebook can draw samples every few hundred steps).
    """
    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.AdamW(
        dalle.gpt.parameters(), lr=settings.peak_lr, betas=settings.betas, weight_decay=settings.weight_decay
    )
    dalle.gpt.train()
    losses = []
    steps = settings.steps
    for step in runtime.progress_bar(range(steps), desc="training", disable=not progress):
        lr = learning_rate(step, steps, settings.peak_lr, settings.warmup, settings.floor)
        set_learning_rate(optimizer, lr)
        batch = sequences[torch.randint(len(sequences), (settings.batch_size,), generator=generator)]
        loss = dalle.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dalle.gpt.parameters(), settings.clip_grad_norm)
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    dalle.gpt.eval()
    return losses


# -- evaluation ---------------------------------------------------------------------------------------------


def evaluate_dalle(
    dalle: Dalle,
    clip: ClipBundle,
    attributes: Sequence[dict],
    samples: int = 8,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = EVALUATION_SEED,
    captions_per_batch: int = 40,
) -> dict[str, float]:
    """Match rates of `samples` images per caption "a {size} {color} {shape} {where}", for all captions
    and for those whose color x shape pair was held out of training or not (`judge.evaluate_generator`
    says which rates)."""
    return judge.evaluate_generator(
        lambda captions, n, batch_seed: dalle.generate(captions, n, temperature, top_k, batch_seed),
        clip,
        attributes,
        samples,
        seed,
        captions_per_batch,
    )
