"""Seconds per image of the tiny DALL-E 2's decoder, sampling n images in one batch with the guidance's two
passes in one batch too, against a plain loop: one image at a time, its conditional and unconditional
passes one after the other.

Both run the same DDIM steps (the defaults of `generate`) from the same noise with the same guidance
formula. The ratio batched / plain loop must be <= 0.7 at n = 8: batching is what lets a CPU draw several
images for less than the price of each alone. Whole images
(prior, decoder, VQGAN) are timed too, at n = 1 and 8: the issue's bar is at most 1 second per image at
n = 8 on 2 cores. Times are the fastest of 3 runs; speed does not depend on the weights, the shipped ones are
used.

    python benchmarks/bench_dalle2.py
"""

import torch

import mmlesson
from mmlesson import data
from mmlesson.course.timing import best_seconds
from mmlesson.course.training import dalle2_seconds_per_image as seconds_per_image
from mmlesson.dalle2 import GUIDANCE_SCALE, SAMPLING_STEPS
from mmlesson.diffusion import Denoiser, ddim_sample

CAPTION = "a large red circle on the left"


def two_passes(denoiser: Denoiser, x: torch.Tensor, t: int, condition: torch.Tensor, scale: float):
    """Classifier-free guidance as first written: the conditional pass, then the unconditional one."""
    steps = torch.full((len(x),), t, dtype=torch.long)
    conditional = denoiser(x, steps, condition, torch.ones(len(x), dtype=torch.bool))
    unconditional = denoiser(x, steps, condition, torch.zeros(len(x), dtype=torch.bool))
    return unconditional + scale * (conditional - unconditional)


def sampling_seconds(dalle2: mmlesson.Dalle2, embeddings: torch.Tensor, batched: bool) -> float:
    """Seconds per image to sample the decoder's latents for `embeddings`: all at once with the guidance's
    passes in one batch, or one image at a time with its two passes one after the other."""
    decoder, c = dalle2.decoder, dalle2.decoder.config
    shape, bound = (c.components, c.grid, c.grid), decoder.bound.item()
    settings = (dalle2.schedule, SAMPLING_STEPS, GUIDANCE_SCALE)

    def sample() -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        if batched:
            return ddim_sample(decoder, embeddings, shape, *settings, generator, bound)
        rows = [
            ddim_sample(decoder, row[None], shape, *settings, generator, bound, noise_estimate=two_passes)
            for row in embeddings
        ]
        return torch.cat(rows)

    return best_seconds(sample, 3) / len(embeddings)


def main() -> None:
    dalle2 = mmlesson.load_dalle2("tiny", device="cpu")
    print(f"{torch.get_num_threads()} threads, {dalle2.decoder!r}")
    print(f"{SAMPLING_STEPS} DDIM steps, guidance scale {GUIDANCE_SCALE}")
    picture = data.render("red", "circle", "large", "left")
    for n in (1, 8):
        embeddings = dalle2.clip.encode_images([picture] * n)
        fast, slow = sampling_seconds(dalle2, embeddings, True), sampling_seconds(dalle2, embeddings, False)
        whole = seconds_per_image(dalle2, n)
        print(
            f"n={n}  decoder sampling: batched {fast:.3f} s/image, plain loop {slow:.3f} s/image, "
            f"ratio {fast / slow:4.2f} (target <= 0.7 at n=8);  whole images {whole:.3f} s/image (bar <= 1 s)"
        )


if __name__ == "__main__":
    main()
