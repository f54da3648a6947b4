"""How the course's tiny DALL-E is trained and measured; the shipped weights come from `main()` below.

    python -m mmlesson.train_dalle --threads 1                   # encode, train, evaluate, write weights/
    python -m mmlesson.train_dalle --steps 100 --images 2000 --out /tmp/try   # a quick run elsewhere

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

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

import torch

from mmlesson import data, judge, runtime
from mmlesson.assets import save_shipped, shipped_weights
from mmlesson.clip import ClipBundle, load_tiny_clip
from mmlesson.dalle import TINY_DALLE_NAME, CaptionTokenizer, Dalle, split_words
from mmlesson.data import HELD_OUT  # the tiny CLIP's too: neither model has seen a red triangle
from mmlesson.schedule import learning_rate, set_learning_rate
from mmlesson.train import training_arguments
from mmlesson.vqgan import TINY_VQGAN_NAME, VQGAN, load_tiny_vqgan

# The names lessons use; see API.md.
__all__ = [
    "new_tiny_dalle",
    "encode_world",
    "train_dalle",
    "evaluate_dalle",
]

CONTEXT_LENGTH = 12  # caption slots: the longest course caption has 10 words and marks
PARTIAL_SHARE = 0.25  # of the training captions that name only some attributes
EVALUATION_SEED = 1000  # sampling seed of the evaluation (training never samples)


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
    partial_share: float = PARTIAL_SHARE,
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
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    warmup: int = 100,
    seed: int = 0,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train the GPT in place on random batches of `sequences`; returns the loss of every step.

    `on_step(step, loss)` is called after each step (a notebook can draw samples every few hundred steps).
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(dalle.gpt.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    dalle.gpt.train()
    losses = []
    for step in runtime.progress_bar(range(steps), desc="training", disable=not progress):
        set_learning_rate(optimizer, learning_rate(step, steps, lr, warmup, floor=0.1))
        batch = sequences[torch.randint(len(sequences), (batch_size,), generator=generator)]
        loss = dalle.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dalle.gpt.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    dalle.gpt.eval()
    return losses


# -- evaluation ---------------------------------------------------------------------------------------------


def evaluation_attributes(
    combos: Sequence[tuple[str, str]] = data.ALL_COMBOS,
    sizes: Sequence[str] = data.SIZES,
    positions: Sequence[str] = data.POSITIONS,
) -> list[dict]:
    """One attribute set per combo x size x position, in that order; its caption is `data.caption(a)`."""
    return [
        {"color": color, "shape": shape, "size": size, "position": position}
        for color, shape in combos
        for size in sizes
        for position in positions
    ]


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
    and for those whose color x shape pair was held out of training or not.

    `{color,position,shape}_{all,held_in,held_out}`: the share of all samples whose attribute matches.
    `{...}_reranked_{all,held_in,held_out}`: the same for one image per caption, the one the CLIP ranks
    first of its samples; `rerank_shape_gain` = shape_reranked_all - shape_all. The shape judge and the
    reranker are the same CLIP, so that gain is partly CLIP agreeing with itself; color and position after
    reranking are measured from pixels and say whether the picks are really better.
    """
    held_out, results, reranked = set(HELD_OUT), [], []
    for first in range(0, len(attributes), captions_per_batch):
        group = attributes[first : first + captions_per_batch]
        captions = [data.caption(a) for a in group]
        images = dalle.generate(captions, samples, temperature, top_k, seed + first)
        expected = [a for a in group for _ in range(samples)]
        results.append(judge.judge(clip, images, expected))
        picks = [
            judge.rerank(clip, caption, images[k * samples : (k + 1) * samples])[0]
            for k, caption in enumerate(captions)
        ]
        reranked.append(judge.judge(clip, picks, group))
    picks_held_out = torch.tensor([(a["color"], a["shape"]) in held_out for a in attributes])
    samples_held_out = picks_held_out.repeat_interleave(samples)
    metrics = {}
    for name in ("color", "position", "shape"):
        metrics |= _rates(name, [m for result in results for m in result[name]], samples_held_out)
        metrics |= _rates(
            f"{name}_reranked", [m for result in reranked for m in result[name]], picks_held_out
        )
    metrics["rerank_shape_gain"] = metrics["shape_reranked_all"] - metrics["shape_all"]
    return metrics


def _rates(name: str, matches: list[bool], held_out: torch.Tensor) -> dict[str, float]:
    """`{name}_all`, and `{name}_held_in` / `{name}_held_out` where some items are of that group."""
    matches = torch.tensor(matches, dtype=torch.float)
    rates = {f"{name}_all": matches.mean().item()}
    for group, mask in (("held_in", ~held_out), ("held_out", held_out)):
        if mask.any():
            rates[f"{name}_{group}"] = matches[mask].mean().item()
    return rates


def seconds_per_image(dalle: Dalle, n: int = 1, repeats: int = 3, use_cache: bool = True) -> float:
    """Seconds to sample and decode one image, from the fastest of `repeats` calls for n images at once."""
    best = float("inf")
    for seed in range(repeats):
        started = time.perf_counter()
        dalle.decode(dalle.sample_codes("a large red circle on the left", n, seed=seed, use_cache=use_cache))
        best = min(best, time.perf_counter() - started)
    return best / n


def main(argv: list[str] | None = None) -> int:
    args = training_arguments(
        "python -m mmlesson.train_dalle", __doc__.splitlines()[0], 2400, 64, argv, lr=1e-3, extra=_options
    )
    vqgan = load_tiny_vqgan().eval()
    dalle = new_tiny_dalle(vqgan, args.layers, args.heads, args.width, seed=args.seed)
    world = data.ShapesWorld(seed=args.seed, exclude=HELD_OUT)
    started = time.perf_counter()
    sequences = encode_world(dalle, world, args.images)
    encoded = time.perf_counter()
    losses = train_dalle(dalle, sequences, args.steps, args.batch_size, args.lr, seed=args.seed)
    wall_time = time.perf_counter() - started
    dalle.gpt.load_state_dict({k: v.half().float() for k, v in dalle.gpt.state_dict().items()})  # as shipped
    clip = load_tiny_clip(torch.device("cpu"))
    metrics = evaluate_dalle(dalle, clip, evaluation_attributes())
    metrics["seconds_per_image"] = seconds_per_image(dalle)
    metrics["seconds_per_image_in_batches_of_8"] = seconds_per_image(dalle, n=8)
    vqgan_manifest, _ = shipped_weights(TINY_VQGAN_NAME)
    record = {
        "config": asdict(dalle.gpt.config),
        "tokenizer": {"context_length": dalle.tokenizer.context_length, "words": dalle.tokenizer.words[1:]},
        "vqgan_sha256": vqgan_manifest["files"][vqgan_manifest["weights"]]["sha256"],
        "parameters": dalle.gpt.n_params(),
        "training": {
            "command": "python -m mmlesson.train_dalle " + " ".join(sys.argv[1:] if argv is None else argv),
            "seed": args.seed,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "peak_lr": args.lr,
            "data": f"ShapesWorld(seed={args.seed}, exclude=HELD_OUT), items 0 to {args.images - 1}, encoded "
            f"once by {TINY_VQGAN_NAME}; {PARTIAL_SHARE:.0%} of the captions partial",
            "held_out_combos": [list(pair) for pair in HELD_OUT],
            "wall_time_s": round(wall_time, 1),
            "encoding_time_s": round(encoded - started, 1),
            "threads": torch.get_num_threads(),
            "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),
            "versions": {"torch": torch.__version__},
        },
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
        "evaluation": "mmlesson.train_dalle.evaluate_dalle over evaluation_attributes() (30 color x shape "
        "pairs x 2 sizes x 5 positions, caption template 0), 8 samples each at temperature 1.0, no top-k, "
        f"seed {EVALUATION_SEED}; color and position from pixels, shape by the tiny CLIP; float16 weights "
        "as shipped; seconds per image (sampling + decoding) at the training's thread count",
    }
    path = save_shipped(TINY_DALLE_NAME, dalle.gpt.state_dict(), args.out, record)
    print(json.dumps(record["metrics"], indent=2))
    print(f"wrote {path.name} and its weights in {args.out}")
    return 0


def _options(parser: argparse.ArgumentParser) -> None:
    """The model's size and the number of training images."""
    parser.add_argument("--images", type=int, default=32_000, help="training images, encoded once")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--width", type=int, default=128)


if __name__ == "__main__":
    raise SystemExit(main())
