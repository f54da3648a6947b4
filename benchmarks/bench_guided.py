"""Seconds per step of `mmlesson.guided.generate` against plain reference loops, in the same run.

All optimize the same latent of the shipped tiny VQGAN against the tiny CLIP, 64 px, 16 cutouts:
- plain reference (the issue's baseline): each cutout cut with slicing, resized with `F.interpolate`,
  flipped, noised, normalized and embedded by CLIP on its own; `loss.backward()`, as a first VQGAN+CLIP
  notebook writes it;
- stacked reference: the same cutouts made one by one, but embedded in one batch, and the gradient taken
  for the latent only: what is left to gain from making the cutouts in one matrix product;
- ours: `generate(...)`: cutouts in one batched product, one CLIP batch, gradient for the latent only.
The ratio ours / plain reference must be <= 0.7.

With `--full` the same comparison runs at full size: ViT-B-32 and the f16-16384 VQGAN with random weights
(enough for timing, no download), 256 px, 32 cutouts, on the GPU if there is one; it prints steps per second
and the card's name.

    python benchmarks/bench_guided.py            # tiny models, CPU
    python benchmarks/bench_guided.py --full     # full-size models, GPU
"""

import argparse
import time
from dataclasses import dataclass

import open_clip
import torch
import torch.nn.functional as F
from bench_vqgan import FULL_CONFIG

import mmlesson
from mmlesson import guided
from mmlesson.clip import bundle_from_model
from mmlesson.vqgan import VQGAN


@dataclass
class Setting:
    clip: mmlesson.ClipBundle
    vqgan: VQGAN
    size: int
    cutouts: int
    steps: int


def tiny_setting() -> Setting:
    clip, vqgan = mmlesson.load_clip("tiny", device="cpu"), mmlesson.load_vqgan("tiny", device="cpu")
    return Setting(clip, vqgan, size=64, cutouts=16, steps=30)


def full_setting() -> Setting:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval().to(device)
    clip = bundle_from_model(model, open_clip.get_tokenizer("ViT-B-32"), "ViT-B-32 (random)", device)
    return Setting(clip, VQGAN(FULL_CONFIG, "f16-16384 (random)").eval().to(device), 256, 32, 10)


def one_cutout(clip, image, generator) -> torch.Tensor:
    size = image.shape[-1]
    side = int(size * (0.5 + 0.5 * torch.rand(1, generator=generator).item()))
    left = int((size - side) * torch.rand(1, generator=generator).item())
    top = int((size - side) * torch.rand(1, generator=generator).item())
    view = F.interpolate(
        image[:, :, top : top + side, left : left + side], size=clip.image_size, mode="bilinear"
    )
    if torch.rand(1, generator=generator).item() < 0.5:
        view = view.flip(-1)
    return clip.normalize_pixels(view + 0.05 * torch.randn(view.shape, generator=generator).to(view))


def plain_loss(clip, image, targets, generator, cutouts: int) -> torch.Tensor:
    losses = []
    for _ in range(cutouts):
        embedding = F.normalize(clip.model.encode_image(one_cutout(clip, image, generator)), dim=-1)
        losses.append(guided.spherical_distance(embedding, targets).mean())
    return torch.stack(losses).mean()


def stacked_loss(clip, image, targets, generator, cutouts: int) -> torch.Tensor:
    views = torch.cat([one_cutout(clip, image, generator) for _ in range(cutouts)])
    return guided.spherical_distance(F.normalize(clip.model.encode_image(views), dim=-1), targets).mean()


def reference_seconds(setting: Setting, loss_of, latent_gradient_only: bool) -> float:
    clip, vqgan = setting.clip, setting.vqgan
    generator = torch.Generator().manual_seed(0)
    targets = clip.encode_texts(["a red circle"]).to(clip.device)
    latents = guided._initial_latents(vqgan, setting.size, None, generator).requires_grad_(True)
    optimizer = torch.optim.Adam([latents], lr=0.15)
    start = time.perf_counter()
    for _ in range(setting.steps):
        loss = loss_of(clip, guided._decode(vqgan, latents), targets, generator, setting.cutouts)
        optimizer.zero_grad()
        loss.backward(inputs=[latents] if latent_gradient_only else None)
        optimizer.step()
        loss.item()  # waits for the GPU, as generate() does when it records the loss
    return (time.perf_counter() - start) / setting.steps


def ours_seconds(setting: Setting) -> float:
    start = time.perf_counter()
    guided.generate(
        "a red circle",
        steps=setting.steps,
        size=setting.size,
        cutouts=setting.cutouts,
        clip=setting.clip,
        vqgan=setting.vqgan,
        frame_every=setting.steps,
    )
    return (time.perf_counter() - start) / setting.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="full-size models with random weights, GPU")
    setting = full_setting() if parser.parse_args().full else tiny_setting()
    ours_seconds(setting)  # warm-up: first calls pay for allocations and kernel selection
    plain = min(reference_seconds(setting, plain_loss, False) for _ in range(2))
    stacked = min(reference_seconds(setting, stacked_loss, True) for _ in range(2))
    ours = min(ours_seconds(setting) for _ in range(2))
    device = setting.clip.device
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"{setting.clip.name} + {setting.vqgan.name}, {setting.size} px, {setting.cutouts} cutouts, {where}"
    )
    print(f"plain reference (cutouts one by one)    {plain * 1000:7.1f} ms/step")
    print(f"stacked reference (one CLIP batch)      {stacked * 1000:7.1f} ms/step")
    print(f"mmlesson.guided.generate                {ours * 1000:7.1f} ms/step  ({1 / ours:.1f} steps/s)")
    print(f"ratio ours / plain reference            {ours / plain:7.2f}  (target <= 0.7)")
    print(f"ratio ours / stacked reference          {ours / stacked:7.2f}")


if __name__ == "__main__":
    main()
