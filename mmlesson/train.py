"""How the course's tiny CLIP is trained and measured; the shipped weights come from `main()` below.

    python -m mmlesson.train clip                  # train, evaluate, write mmlesson/weights/
    python -m mmlesson.train clip --steps 200 --out /tmp/try   # a quick run elsewhere

Training is plain CLIP: fresh Shapes-world images every step (the world is unlimited, so nothing is seen
twice), a caption for each, the symmetric contrastive loss of `mmlesson.losses`, AdamW with warm-up and a
cosine decay, and a learned temperature. Some (color, shape) pairs are held out of training entirely, so the
evaluation can ask whether the model composes "red" and "star" without ever having seen a red star.

Half of the captions are the world's full sentences; the other half name only some attributes behind a
prompt-like prefix ("a photo of a red star", "a drawing of a circle"), so that short zero-shot prompts are
in-distribution for the text encoder.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import open_clip
import torch

from mmlesson import data, runtime
from mmlesson.assets import WEIGHTS_DIR, save_shipped
from mmlesson.clip import TINY_CLIP_NAME, ClipBundle, CompactTokenizer, bundle_from_model, tiny_clip_config
from mmlesson.data import HELD_OUT, ZERO_SHOT_TEMPLATE, course_texts, training_caption
from mmlesson.losses import contrastive_loss
from mmlesson.schedule import learning_rate, set_learning_rate

# The names lessons use; see API.md.
__all__ = [
    "new_tiny_clip",
    "train_clip",
    "evaluate_clip",
    "zero_shot_accuracy",
]

MAX_LOGIT_SCALE = 100.0  # CLIP clamps its learned 1/temperature here, so training cannot run away


def course_bpe_ids() -> list[int]:
    """CLIP BPE ids of every word piece in `course_texts()`."""
    bpe = open_clip.SimpleTokenizer()
    return sorted({i for text in course_texts() for i in bpe.encode(text)})


def new_tiny_clip(
    width: int = 128, layers: int = 4, seed: int = 0
) -> tuple[torch.nn.Module, CompactTokenizer]:
    """An untrained tiny CLIP (open_clip's CLIP class) and its compact tokenizer."""
    tokenizer = CompactTokenizer(course_bpe_ids(), context_length=24)
    torch.manual_seed(seed)
    config = tiny_clip_config(tokenizer.vocab_size, width=width, layers=layers)
    return open_clip.CLIP(**config), tokenizer


def normalize_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels to the mean/std normalization CLIP's preprocessing applies."""
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def train_clip(
    model: torch.nn.Module,
    tokenizer: CompactTokenizer,
    world: data.ShapesWorld,
    steps: int,
    batch_size: int = 128,
    lr: float = 5e-4,
    warmup: int = 100,
    seed: int = 0,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train `model` contrastively on fresh batches of `world`; returns the loss of every step."""
    rng = random.Random(seed)
    device = next(model.parameters()).device  # train where the model lives (a GPU on Colab)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.98))
    model.train()
    losses = []
    for step in runtime.progress_bar(range(steps), desc="training", disable=not progress):
        batch = world.sample(batch_size, start=step * batch_size)
        texts = [training_caption(c, a, rng) for c, a in zip(batch.captions, batch.attributes)]
        set_learning_rate(optimizer, learning_rate(step, steps, lr, warmup))
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


def zero_shot_accuracy(bundle: ClipBundle, images: list, labels: list[str], classnames: list[str]) -> float:
    """Top-1 accuracy of picking, for each image, the prompt 'a photo of a {class}' it is most similar to."""
    prompts = [ZERO_SHOT_TEMPLATE.format(name) for name in classnames]
    scores = bundle.encode_images(images) @ bundle.encode_texts(prompts).T
    predicted = [classnames[k] for k in scores.argmax(dim=1).tolist()]
    return sum(p == t for p, t in zip(predicted, labels)) / len(labels)


def recall_at_k(bundle: ClipBundle, batch: data.ShapesBatch, k: int = 10) -> float:
    """Text-to-image: how often an image is among the top k results for its own full caption."""
    queries = [data.caption(attributes, 0) for attributes in batch.attributes]
    scores = bundle.encode_texts(queries) @ bundle.encode_images(batch.images).T
    top = scores.topk(k, dim=1).indices
    return (top == torch.arange(len(batch)).unsqueeze(1)).any(dim=1).float().mean().item()


def evaluate_clip(
    bundle: ClipBundle, seed: int = 1000, n: int = 3000, gallery: int = 1000
) -> dict[str, float]:
    """The quality bars of the shipped tiny CLIP, on worlds with seeds never used in training."""
    everything = data.ShapesWorld(seed=seed).sample(n)
    held = data.ShapesWorld(seed=seed + 1, combos=HELD_OUT).sample(n // 3)
    combos = [f"{c} {s}" for c, s in data.ALL_COMBOS]

    def pairs(batch: data.ShapesBatch) -> list[str]:
        return [f"{a['color']} {a['shape']}" for a in batch.attributes]

    colors = [a["color"] for a in everything.attributes]
    shapes = [a["shape"] for a in everything.attributes]
    return {
        "zero_shot_color_shape_all": zero_shot_accuracy(bundle, everything.images, pairs(everything), combos),
        "zero_shot_color_shape_held_out": zero_shot_accuracy(bundle, held.images, pairs(held), combos),
        "zero_shot_color": zero_shot_accuracy(
            bundle, everything.images, [f"{c} shape" for c in colors], [f"{c} shape" for c in data.COLORS]
        ),
        "zero_shot_shape": zero_shot_accuracy(bundle, everything.images, shapes, list(data.SHAPES)),
        "text_to_image_recall_at_10": recall_at_k(bundle, data.ShapesWorld(seed=seed + 2).sample(gallery)),
    }


def training_arguments(
    prog: str,
    description: str,
    steps: int,
    batch_size: int,
    argv: list[str] | None,
    model: str = "",
    lr: float = 5e-4,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The options every trainer of the course takes (and sets the thread count, if one is given).

    `model`, if given, is a positional argument the command must name (`python -m mmlesson.train clip`);
    `extra(parser)` adds a trainer's own options.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    if model:
        parser.add_argument("model", choices=[model])
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def main(argv: list[str] | None = None) -> int:
    args = training_arguments(
        "python -m mmlesson.train", "Train the course's tiny CLIP.", 3000, 128, argv, "clip"
    )
    model, tokenizer = new_tiny_clip(seed=args.seed)
    world = data.ShapesWorld(seed=args.seed, exclude=HELD_OUT)
    started = time.perf_counter()
    losses = train_clip(model, tokenizer, world, args.steps, args.batch_size, args.lr, seed=args.seed)
    wall_time = time.perf_counter() - started
    metrics = evaluate_clip(bundle_from_model(model, tokenizer, TINY_CLIP_NAME, torch.device("cpu")))
    pairs = args.steps * args.batch_size
    record = {
        "tokenizer": {"context_length": tokenizer.context_length, "bpe_ids": tokenizer.bpe_ids},
        "training": {
            "command": "python -m mmlesson.train " + " ".join(sys.argv[1:] if argv is None else argv),
            "seed": args.seed,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "peak_lr": args.lr,
            "pairs_seen": pairs,
            "data": f"ShapesWorld(seed={args.seed}, exclude=HELD_OUT), items 0 to {pairs - 1}, one pass",
            "held_out_combos": [list(pair) for pair in HELD_OUT],
            "wall_time_s": round(wall_time, 1),
            "threads": torch.get_num_threads(),
            "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),
            "versions": {"torch": torch.__version__, "open_clip": open_clip.__version__},
        },
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
        "evaluation": "mmlesson.train.evaluate_clip(seed=1000): 3000 images of all combos, 1000 of "
        "held-out combos, a 1000-image gallery for recall@10",
    }
    config = json.dumps(tiny_clip_config(tokenizer.vocab_size), indent=2) + "\n"
    path = save_shipped(
        TINY_CLIP_NAME, model.state_dict(), args.out, record, {f"{TINY_CLIP_NAME}.json": config}
    )
    print(json.dumps(record["metrics"], indent=2))
    print(f"wrote {path.name} and its weights in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
