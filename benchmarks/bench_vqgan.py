"""Encode and decode throughput of the tiny and the full VQGAN on the CPU, in images per second.

Speed does not depend on the weights, so both models are built with random weights from their configs (the
full one from the official f16-16384 architecture: no 980 MB download). For each model:
- baseline: what taming's `VQModel.encode` / `.decode` do, called one image at a time with autograd on
  (the plain loop a learner would write first);
- ours: `VQGAN.encode(pixels)` and `.decode(tokens)` on the whole batch (no autograd, one call).
The ratio baseline time / our time must be >= 1.0; the tokens and images of both are checked to agree.
A third line times the tiny model decoding 256 images in CPU-sized passes (`images_per_pass`, 16) against
all 256 in one pass, as it did before: the ratio one pass / ours must be >= 1.0 too.

    python benchmarks/bench_vqgan.py
"""

from functools import partial

import torch

from mmlesson.course.timing import best_seconds
from mmlesson.vqgan import VQGAN, tiny_vqgan_config, to_unit_range

FULL_CONFIG = {  # taming-transformers' configs/model.yaml of vqgan_imagenet_f16_16384
    "embed_dim": 256,
    "n_embed": 16384,
    "ddconfig": {
        "double_z": False,
        "z_channels": 256,
        "resolution": 256,
        "in_channels": 3,
        "out_ch": 3,
        "ch": 128,
        "ch_mult": [1, 1, 2, 2, 4],
        "num_res_blocks": 2,
        "attn_resolutions": [16],
        "dropout": 0.0,
    },
}


def plain_encode(model: VQGAN, pixels: torch.Tensor) -> torch.Tensor:
    rows = []
    for image in pixels:
        latents = model.quant_conv(model.encoder(image[None] * 2 - 1))
        _, _, (_, _, indices) = model.quantize(latents)
        rows.append(indices.view(1, *latents.shape[2:]))
    return torch.cat(rows)


def plain_decode(model: VQGAN, tokens: torch.Tensor) -> torch.Tensor:
    images = []
    for grid in tokens:
        latents = model.quantize.get_codebook_entry(
            grid.flatten(), (1, *grid.shape, model.config["embed_dim"])
        )
        images.append(to_unit_range(model.decoder(model.post_quant_conv(latents))))
    return torch.cat(images)


def measure(name: str, model: VQGAN, n: int) -> None:
    pixels = torch.rand(n, 3, model.resolution, model.resolution, generator=torch.Generator().manual_seed(0))
    tokens = model.encode(pixels)
    assert torch.equal(tokens, plain_encode(model, pixels)), "encode paths disagree"
    assert torch.allclose(model.decode(tokens), plain_decode(model, tokens).detach(), atol=1e-4)
    repeats = 3 if n > 8 else 2
    for what, ours, plain, argument in [
        ("encode", model.encode, plain_encode, pixels),
        ("decode", model.decode, plain_decode, tokens),
    ]:
        ours_s = best_seconds(partial(ours, argument), repeats)
        plain_s = best_seconds(partial(plain, model, argument), repeats)
        print(
            f"{name:5} {what}  ours {n / ours_s:7.1f} images/s   plain loop {n / plain_s:7.1f} images/s   "
            f"ratio {plain_s / ours_s:5.2f}  (target >= 1.0)"
        )


def one_pass_decode(model: VQGAN, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return to_unit_range(model.decode_latents(model.latents_from_indices(tokens)))


def measure_passes(model: VQGAN, n: int) -> None:
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(model.codebook_size, (n, model.grid, model.grid), generator=generator)
    assert torch.allclose(model.decode(tokens), one_pass_decode(model, tokens), atol=1e-4)
    ours_s = best_seconds(partial(model.decode, tokens), 3)
    one_pass_s = best_seconds(partial(one_pass_decode, model, tokens), 3)
    print(
        f"tiny  decode of {n}: {model.images_per_pass} per pass {n / ours_s:7.1f} images/s   all in one pass "
        f"{n / one_pass_s:7.1f} images/s   ratio {one_pass_s / ours_s:5.2f}  (target >= 1.0)"
    )


def main() -> None:
    torch.manual_seed(0)
    print(f"{torch.get_num_threads()} threads, random weights")
    measure("tiny", VQGAN(tiny_vqgan_config(), "tiny").eval(), n=64)
    measure_passes(VQGAN(tiny_vqgan_config(), "tiny").eval(), n=256)
    measure("full", VQGAN(FULL_CONFIG, "full").eval(), n=4)


if __name__ == "__main__":
    main()
