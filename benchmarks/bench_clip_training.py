"""Training throughput of the tiny CLIP, in image-text pairs per second.

- ours: `mmlesson.train_clip.train_clip` for a few steps at the shipped settings (batch 128): fresh Shapes
  images, captions and tokens every step, forward, backward, AdamW;
- baseline: the same model's forward + backward + AdamW step on one pre-made batch, so the data costs
  nothing. The ratio ours / baseline is the share of pure model speed the full pipeline keeps (1.0 means
  data generation is free).

    python benchmarks/bench_clip_training.py
"""

import torch

from mmlesson import data, train_clip
from mmlesson.clip import normalize_pixels
from mmlesson.course.timing import best_seconds
from mmlesson.losses import contrastive_loss

STEPS = 6
BATCH = 128
SETTINGS = train_clip.ClipTraining(steps=STEPS, batch_size=BATCH)


def model_only_steps(model, tokenizer, batch) -> None:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    pixels = normalize_pixels(batch.to_tensor())
    tokens = tokenizer(batch.captions)
    for _ in range(STEPS):
        loss = contrastive_loss(
            model.encode_image(pixels), model.encode_text(tokens), model.logit_scale.exp()
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def main() -> None:
    model, tokenizer = train_clip.new_tiny_clip()
    world = data.ShapesWorld(seed=0, exclude=data.HELD_OUT)
    batch = world.sample(BATCH)
    ours_s = best_seconds(lambda: train_clip.train_clip(model, tokenizer, world, SETTINGS, progress=False), 3)
    baseline_s = best_seconds(lambda: model_only_steps(model, tokenizer, batch), 3)
    print(f"train_clip (data + model)   {STEPS * BATCH / ours_s:7,.0f} pairs/s")
    print(f"model only (one fixed batch) {STEPS * BATCH / baseline_s:6,.0f} pairs/s")
    print(f"ratio ours / model only      {baseline_s / ours_s:6.2f}  ({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
