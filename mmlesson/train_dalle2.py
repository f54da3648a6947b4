"""How the course's tiny DALL-E 2 is trained and measured. The shipped weights come from

    python -m mmlesson.train_dalle2 --threads 2                   # encode, train, evaluate, write weights/
    python -m mmlesson.train_dalle2 --decoder-steps 200 --prior-steps 200 --images 2000 --out /tmp/try

(the same command line as `python -m mmlesson train dalle2`; everything it trains with is `Dalle2Training`).

The training set is drawn and embedded once: Shapes-world images with the held-out color x shape pairs left
out (`data.HELD_OUT`: neither the CLIP nor the decoder nor the prior sees a red triangle), each stored as its
tiny-VQGAN latents (the codebook entries of its tokens), its CLIP image embedding, and the CLIP text
embedding of a caption (the world's own, or one naming only some attributes). Then three parts are fitted:

- the decoder learns p(latents | image embedding) with DDPM's objective, predicting the clean latents
  (target="clean") in their principal directions (`LatentDenoiser.fit_latent_space`), the embedding hidden
  for `drop_condition` of the rows (classifier-free guidance);
- the diffusion prior learns p(image embedding | text embedding) the same way;
- the linear prior is the least-squares map from text to image embeddings (lesson 5's).

AdamW with a warm-up and a cosine decay, as every trainer of the course. `evaluate_dalle2` measures pictures,
not losses: it draws samples for every color x shape x size x position caption and judges them as lesson 6
judges DALL-E 1's (`judge.evaluate_generator`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from mmlesson import data, judge, runtime
from mmlesson.clip import ClipBundle
from mmlesson.dalle2 import (
    DEFAULT_PRIOR,
    PRIORS,
    Dalle2,
    DecoderConfig,
    LatentDenoiser,
    LinearPrior,
    PriorConfig,
    PriorDenoiser,
    assemble,
)
from mmlesson.diffusion import NoiseSchedule, noise_prediction_loss
from mmlesson.errors import InputError
from mmlesson.schedule import learning_rate, set_learning_rate
from mmlesson.vqgan import VQGAN

# The names lessons use; see API.md.
__all__ = [
    "Dalle2Training",
    "Dalle2Data",
    "embed_world",
    "train_denoiser",
    "train_dalle2",
    "evaluate_dalle2",
    "snapping_agreement",
    "variations_keep",
]

EVALUATION_SEED = 1000  # sampling seed of the evaluation (training never samples)


@dataclass(frozen=True)
class Dalle2Training:
    """Everything a DALL-E 2 training run is decided by; the defaults made the shipped tiny DALL-E 2, and its
    manifest records these fields as they were."""

    images: int = 24_000  # training images, embedded once
    partial_share: float = 0.25  # of the captions that name only some attributes
    decoder_steps: int = 4000
    prior_steps: int = 3000
    batch_size: int = 128
    peak_lr: float = 1e-3
    warmup: int = 100
    floor: float = 0.05  # the cosine decay ends at floor * peak_lr
    weight_decay: float = 0.0
    drop_condition: float = 0.1  # share of the rows trained without their condition
    width: int = 128  # the decoder's
    layers: int = 4
    seed: int = 0


@dataclass
class Dalle2Data:
    """The training set, embedded once: one row per image."""

    latents: torch.Tensor  # [N, 64, 8, 8]: the VQGAN codebook entries of each image's tokens
    image_embeddings: torch.Tensor  # [N, 128], unit length
    text_embeddings: torch.Tensor  # [N, 128], of each image's caption

    def __len__(self) -> int:
        return len(self.latents)


def embed_world(
    clip: ClipBundle,
    vqgan: VQGAN,
    world: data.ShapesWorld,
    n: int,
    partial_share: float = Dalle2Training.partial_share,
    chunk: int = 500,
    progress: bool = True,
) -> Dalle2Data:
    """Items 0..n-1 of the world as latents and embeddings; each caption is the world's own or, with
    probability `partial_share`, a partial one (the choice depends on the world's seed and the item only)."""
    latents, images, texts = [], [], []
    for first in runtime.progress_bar(range(0, n, chunk), desc="embedding", disable=not progress):
        batch = world.sample(min(chunk, n - first), start=first)
        captions = []
        for k, (caption, attributes) in enumerate(zip(batch.captions, batch.attributes)):
            rng = random.Random(f"caption:{world.seed}:{first + k}")
            partial = rng.random() < partial_share
            captions.append(data.partial_caption(attributes, rng) if partial else caption)
        pixels = batch.to_tensor()
        with torch.no_grad():
            latents.append(vqgan.latents_from_indices(vqgan.encode(pixels)).cpu())
        images.append(clip.encode_images(clip.normalize_pixels(pixels)))
        texts.append(clip.encode_texts(captions))
    return Dalle2Data(torch.cat(latents), torch.cat(images), torch.cat(texts))


def train_denoiser(
    denoiser: nn.Module,
    x0: torch.Tensor,
    condition: torch.Tensor,
    steps: int,
    settings: Dalle2Training,
    progress: bool = True,
    desc: str = "training",
    target: str = "noise",
) -> list[float]:
    """Train a denoiser in place on random batches of (x0, condition) pairs to predict `target` ("noise" or
    "clean", see `diffusion.noise_prediction_loss`); returns every step's loss."""
    generator = torch.Generator().manual_seed(settings.seed)
    schedule = NoiseSchedule.cosine()
    optimizer = torch.optim.AdamW(
        denoiser.parameters(), lr=settings.peak_lr, weight_decay=settings.weight_decay
    )
    denoiser.train()
    losses = []
    for step in runtime.progress_bar(range(steps), desc=desc, disable=not progress):
        set_learning_rate(
            optimizer, learning_rate(step, steps, settings.peak_lr, settings.warmup, settings.floor)
        )
        rows = torch.randint(len(x0), (settings.batch_size,), generator=generator)
        loss = noise_prediction_loss(
            denoiser, x0[rows], condition[rows], schedule, settings.drop_condition, generator, target
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(denoiser.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    denoiser.eval()
    return losses


def train_dalle2(
    clip: ClipBundle, vqgan: VQGAN, pairs: Dalle2Data, settings: Dalle2Training, progress: bool = True
) -> tuple[Dalle2, dict[str, list[float]]]:
    """A DALL-E 2 trained on `pairs`: the decoder, the diffusion prior and the linear prior; and the losses
    of the two diffusion models."""
    torch.manual_seed(settings.seed)
    decoder_config = DecoderConfig(width=settings.width, layers=settings.layers)
    dalle2 = assemble(clip, vqgan, decoder_config, PriorConfig())
    decoder = dalle2.decoder
    decoder.fit_latent_space(pairs.latents)
    latents = decoder.normalize(pairs.latents)
    embeddings = pairs.image_embeddings * PriorDenoiser.embedding_scale(pairs.image_embeddings.shape[1])
    dalle2.diffusion_prior.bound.copy_(embeddings.abs().max())
    losses = {
        "decoder": train_denoiser(
            decoder,
            latents,
            pairs.image_embeddings,
            settings.decoder_steps,
            settings,
            progress,
            "decoder",
            target="clean",
        ),
        "prior": train_denoiser(
            dalle2.diffusion_prior,
            embeddings,
            pairs.text_embeddings,
            settings.prior_steps,
            settings,
            progress,
            "prior",
            target="clean",
        ),
    }
    dalle2.linear_prior.load_state_dict(
        LinearPrior.fit(pairs.text_embeddings, pairs.image_embeddings).state_dict()
    )
    return dalle2, losses


def snapping_agreement(decoder: LatentDenoiser, vqgan: VQGAN, latents: torch.Tensor) -> float:
    """The share of latent cells that snap to the same codebook entry after `decoder.normalize` and back:
    what the decoder's principal directions keep of the VQGAN's latents (1.0: everything)."""
    with torch.no_grad():
        _, before, _ = vqgan.quantize_latents(latents)
        _, after, _ = vqgan.quantize_latents(decoder.denormalize(decoder.normalize(latents)))
    return (before == after).float().mean().item()


def evaluate_dalle2(
    dalle2: Dalle2,
    clip: ClipBundle,
    attributes: list[dict],
    samples: int = 4,
    prior: str = DEFAULT_PRIOR,
    guidance_scale: float | None = None,
    steps: int | None = None,
    seed: int = EVALUATION_SEED,
) -> dict[str, float]:
    """Match rates of `samples` images per caption (see `judge.evaluate_generator`), drawn through `prior`
    (one of `dalle2.PRIORS`) at the given guidance scale and steps (None: `generate`'s defaults)."""
    if prior not in PRIORS:
        raise InputError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
    options = {"prior": prior}
    options |= {} if guidance_scale is None else {"guidance_scale": guidance_scale}
    options |= {} if steps is None else {"steps": steps}

    def draw(captions: list[str], n: int, batch_seed: int) -> list[Image.Image]:
        return dalle2.generate(captions, n, batch_seed, **options)

    return judge.evaluate_generator(draw, clip, attributes, samples, seed)


def variations_keep(
    dalle2: Dalle2, pictures: data.ShapesBatch, n: int = 4, seed: int = EVALUATION_SEED
) -> dict[str, float]:
    """The share of `n` variations per picture whose color, position and shape are the picture's."""
    images, expected = [], []
    for k, (image, attributes) in enumerate(zip(pictures.images, pictures.attributes)):
        images += dalle2.variations(image, n=n, seed=seed + k)
        expected += [attributes] * n
    verdict = judge.match_attributes(dalle2.clip, images, expected)
    return {name: sum(matches) / len(matches) for name, matches in verdict.items()}


if (
    __name__ == "__main__"
):  # python -m mmlesson.train_dalle2 ...: the command line is mmlesson.course.training's
    import sys

    from mmlesson.course.training import train_dalle2_command

    raise SystemExit(train_dalle2_command(sys.argv[1:]))
