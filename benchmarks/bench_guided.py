"""Seconds per step of `mmlesson.guided.generate` against plain reference loops, in the same run.

All optimize the same latent of the shipped tiny VQGAN against the tiny CLIP, 64 px, 16 cutouts:
- plain reference (the issue's baseline): each cutout cut with slicing, resized with `F.interpolate`,
  flipped, noised, normalized and embedded by CLIP on its own; `loss.backward()`, as a first VQGAN+CLIP
  notebook writes it;
- stacked reference: the same cutouts made one by one, but embedded in one batch, and the gradient taken
  for the latent only: what is left to gain from making the cutouts in one matrix product;
- ours: `generate(...)`: cutouts in one batched product, one CLIP batch, gradient for the latent only.
The ratio ours / plain reference must be <= 0.7.

    python benchmarks/bench_guided.py
"""

import time

import torch
import torch.nn.functional as F

import mmlesson
from mmlesson import guided

STEPS, CUTOUTS, SIZE = 30, 16, 64


def one_cutout(clip, image, generator) -> torch.Tensor:
    side = int(SIZE * (0.5 + 0.5 * torch.rand(1, generator=generator).item()))
    left = int((SIZE - side) * torch.rand(1, generator=generator).item())
    top = int((SIZE - side) * torch.rand(1, generator=generator).item())
    view = F.interpolate(
        image[:, :, top : top + side, left : left + side], size=clip.image_size, mode="bilinear"
    )
    if torch.rand(1, generator=generator).item() < 0.5:
        view = view.flip(-1)
    return clip.normalize_pixels(view + 0.05 * torch.randn(view.shape, generator=generator))


def plain_loss(clip, image, targets, generator) -> torch.Tensor:
    losses = []
    for _ in range(CUTOUTS):
        embedding = F.normalize(clip.model.encode_image(one_cutout(clip, image, generator)), dim=-1)
        losses.append(guided.spherical_distance(embedding, targets).mean())
    return torch.stack(losses).mean()


def stacked_loss(clip, image, targets, generator) -> torch.Tensor:
    views = torch.cat([one_cutout(clip, image, generator) for _ in range(CUTOUTS)])
    return guided.spherical_distance(F.normalize(clip.model.encode_image(views), dim=-1), targets).mean()


def reference_seconds(clip, vqgan, loss_of, latent_gradient_only: bool) -> float:
    generator = torch.Generator().manual_seed(0)
    targets = clip.encode_texts(["a red circle"])
    latents = guided._initial_latents(vqgan, SIZE, None, generator).requires_grad_(True)
    optimizer = torch.optim.Adam([latents], lr=0.15)
    start = time.perf_counter()
    for _ in range(STEPS):
        loss = loss_of(clip, guided._decode(vqgan, latents), targets, generator)
        optimizer.zero_grad()
        loss.backward(inputs=[latents] if latent_gradient_only else None)
        optimizer.step()
    return (time.perf_counter() - start) / STEPS


def ours_seconds(clip, vqgan) -> float:
    start = time.perf_counter()
    guided.generate("a red circle", steps=STEPS, cutouts=CUTOUTS, clip=clip, vqgan=vqgan, frame_every=STEPS)
    return (time.perf_counter() - start) / STEPS


def main() -> None:
    clip, vqgan = mmlesson.load_clip("tiny", device="cpu"), mmlesson.load_vqgan("tiny", device="cpu")
    plain = min(reference_seconds(clip, vqgan, plain_loss, False) for _ in range(2))
    stacked = min(reference_seconds(clip, vqgan, stacked_loss, True) for _ in range(2))
    ours = min(ours_seconds(clip, vqgan) for _ in range(2))
    print(f"plain reference (cutouts one by one)    {plain * 1000:7.1f} ms/step")
    print(f"stacked reference (one CLIP batch)      {stacked * 1000:7.1f} ms/step")
    print(f"mmlesson.guided.generate                {ours * 1000:7.1f} ms/step")
    threads = torch.get_num_threads()
    print(f"ratio ours / plain reference            {ours / plain:7.2f}  (target <= 0.7, {threads} threads)")
    print(f"ratio ours / stacked reference          {ours / stacked:7.2f}")


if __name__ == "__main__":
    main()
