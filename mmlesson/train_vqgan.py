"""How the course's tiny VQGAN is trained and measured. The shipped weights come from

    python -m mmlesson train vqgan                       # train, evaluate, write mmlesson/weights/
    python -m mmlesson train vqgan --steps 50 --out /tmp/try   # a quick run elsewhere

(the command line is `mmlesson.course.training`; everything it trains with is `VqganTraining`).

Fresh Shapes-world images every step (nothing is seen twice). The loss is the reconstruction error (L1,
which keeps edges sharp, plus squared error, which is what PSNR measures) and the quantizer's codebook and
commitment terms. No LPIPS (it needs downloaded VGG weights) and no discriminator: on flat-colored shapes
the plain losses already reach the quality bars, and a GAN would double the CPU time.

Codebook entries that no latent picks stop learning (they get no gradient) and waste the codebook. Every
`restart_every` steps, each entry unused since the last check is moved onto a random latent of the current
batch, a common remedy (e.g. Dhariwal et al., Jukebox, 2020).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmlesson import data
from mmlesson.schedule import learning_rate, set_learning_rate
from mmlesson.vqgan import VQGAN, psnr

# The names lessons use; see API.md.
__all__ = ["VqganTraining", "train_vqgan", "evaluate_vqgan"]


@dataclass(frozen=True)
class VqganTraining:
    """Everything a VQGAN training run is decided by; the defaults made the shipped tiny VQGAN, and its
    manifest records these fields as they were."""

    steps: int = 2500
    batch_size: int = 16
    peak_lr: float = 5e-4
    warmup: int = 100
    floor: float = 0.1  # the cosine decay ends at floor * peak_lr
    betas: tuple[float, float] = (0.5, 0.9)  # the usual GAN-era Adam settings taming-transformers trains with
    restart_every: int = 100  # steps between moving unused codebook entries onto the data
    restart_until: float = 0.8  # no restarts in the last 20% of the steps: let the last ones settle
    seed: int = 0


@dataclass(frozen=True)
class VqganEvaluation:
    """Where the shipped VQGAN is measured: a world whose seed training never used."""

    seed: int = 1000
    images: int = 1000


def restart_unused(model: VQGAN, latents: torch.Tensor, used: torch.Tensor) -> int:
    """Move every codebook entry not in `used` onto a random latent vector of this batch; return how many."""
    unused = (~used).nonzero().flatten()
    if len(unused):
        vectors = latents.detach().permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        picks = torch.randint(len(vectors), (len(unused),))
        with torch.no_grad():
            model.codebook[unused] = vectors[picks]
    return len(unused)


def train_vqgan(
    model: VQGAN, world: data.ShapesWorld, settings: VqganTraining = VqganTraining()
) -> list[float]:
    """Train in place; returns the loss of every step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.peak_lr, betas=settings.betas)
    used = torch.zeros(model.codebook_size, dtype=torch.bool)
    losses = []
    model.train()
    steps, batch_size = settings.steps, settings.batch_size
    for step in range(steps):
        lr = learning_rate(step, steps, settings.peak_lr, settings.warmup, settings.floor)
        set_learning_rate(optimizer, lr)
        pixels = world.sample(batch_size, start=step * batch_size).to_tensor() * 2 - 1
        latents = model.encode_latents(pixels)
        quantized, indices, codebook_loss = model.quantize_latents(latents)
        reconstruction = model.decode_latents(quantized)
        loss = (reconstruction - pixels).abs().mean() + F.mse_loss(reconstruction, pixels) + codebook_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        used[indices.flatten()] = True
        if (step + 1) % settings.restart_every == 0 and step + 1 < steps * settings.restart_until:
            restarted = restart_unused(model, latents, used)
            used[:] = False
            print(
                f"step {step + 1}: loss {loss.item():.4f}, restarted {restarted} unused entries", flush=True
            )
        losses.append(loss.item())
    model.eval()
    return losses


def evaluate_vqgan(
    model: VQGAN, settings: VqganEvaluation = VqganEvaluation(), batch_size: int = 100
) -> dict[str, float]:
    """Reconstruction PSNR and codebook use on Shapes images training never saw."""
    n = settings.images
    images = data.ShapesWorld(seed=settings.seed).sample(n).to_tensor()
    scores, counts = [], torch.zeros(model.codebook_size)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = images[start : start + batch_size]
            indices = model.encode(batch)
            scores.append(psnr(batch, model.decode(indices)))
            counts += torch.bincount(indices.flatten(), minlength=model.codebook_size)
    share = counts / counts.sum()
    entropy = -(share[share > 0] * share[share > 0].log()).sum()
    return {
        "psnr_db_mean": torch.cat(scores).mean().item(),
        "psnr_db_min": torch.cat(scores).min().item(),
        "codebook_used_share": (counts > 0).float().mean().item(),
        "codebook_perplexity": entropy.exp().item(),
    }
