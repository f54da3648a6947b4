"""Seconds per step of `mmlesson.guided.generate` against a plain reference loop, in the same run.

Both optimize the same latent of the shipped tiny VQGAN against the tiny CLIP, 64 px, 16 cutouts:
- reference: the cutouts made one by one (crop with slicing, resize with `F.interpolate`, flip, noise,
  normalize), then stacked: how a first VQGAN+CLIP notebook writes it;
- ours: `generate(...)`, whose cutouts are cut and resized in one batched `roi_align` call.
The ratio our seconds per step / reference seconds per step must be <= 0.7.

    python benchmarks/bench_guided.py
"""

import time

import torch
import torch.nn.functional as F

import mmlesson
from mmlesson import guided

STEPS, CUTOUTS = 30, 16


def reference_step(clip, vqgan, latents, optimizer, targets, generator) -> float:
    image = guided._decode(vqgan, latents)
    views = []
    for _ in range(CUTOUTS):
        side = int(64 * (0.5 + 0.5 * torch.rand(1, generator=generator).item()))
        left = int((64 - side) * torch.rand(1, generator=generator).item())
        top = int((64 - side) * torch.rand(1, generator=generator).item())
        view = F.interpolate(image[:, :, top : top + side, left : left + side], size=64, mode="bilinear")
        if torch.rand(1, generator=generator).item() < 0.5:
            view = view.flip(-1)
        views.append(clip.normalize_pixels(view + 0.05 * torch.randn(view.shape, generator=generator)))
    embeddings = F.normalize(clip.model.encode_image(torch.cat(views)), dim=-1)
    loss = guided.spherical_distance(embeddings, targets).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def reference_seconds(clip, vqgan) -> float:
    generator = torch.Generator().manual_seed(0)
    targets = clip.encode_texts(["a red circle"])
    latents = guided._initial_latents(vqgan, 64, None, generator).requires_grad_(True)
    optimizer = torch.optim.Adam([latents], lr=0.15)
    start = time.perf_counter()
    for _ in range(STEPS):
        reference_step(clip, vqgan, latents, optimizer, targets, generator)
    return (time.perf_counter() - start) / STEPS


def ours_seconds(clip, vqgan) -> float:
    start = time.perf_counter()
    guided.generate("a red circle", steps=STEPS, cutouts=CUTOUTS, clip=clip, vqgan=vqgan, frame_every=STEPS)
    return (time.perf_counter() - start) / STEPS


def main() -> None:
    clip, vqgan = mmlesson.load_clip("tiny", device="cpu"), mmlesson.load_vqgan("tiny", device="cpu")
    reference = min(reference_seconds(clip, vqgan) for _ in range(2))
    ours = min(ours_seconds(clip, vqgan) for _ in range(2))
    print(f"reference loop (cutouts one by one)  {reference * 1000:7.1f} ms/step")
    print(f"mmlesson.guided.generate             {ours * 1000:7.1f} ms/step")
    threads = torch.get_num_threads()
    print(f"ratio ours / reference               {ours / reference:7.2f}  (target <= 0.7, {threads} threads)")


if __name__ == "__main__":
    main()
