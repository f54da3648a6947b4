"""Diffusion from zero: blur a sample into noise step by step, train a network to predict the noise, and
sample by removing it again.

- **The forward process** (DDPM: Ho et al., "Denoising Diffusion Probabilistic Models", 2020) needs no
  network: at step t of T a sample is `x_t = sqrt(a_t) * x_0 + sqrt(1 - a_t) * noise`, where `a_t` (alpha-bar,
  the share of the signal's variance left) falls from 1 at t = 0 to about 0 at t = T. The course uses the
  cosine schedule of Nichol & Dhariwal (2021), which destroys the signal evenly, not mostly at the start.
- **The objective**: a network sees `x_t` and t and predicts the noise that was added; the loss is the mean
  squared error (`noise_prediction_loss`). Predicting the noise at every t is the same, up to weighting, as
  learning the direction towards more likely data at every noise level.
- **Sampling** (DDIM: Song et al., "Denoising Diffusion Implicit Models", 2021): start from pure noise, and at
  each of a few chosen steps estimate x_0 from the predicted noise, then move to the next, less noisy step
  along the same noise. With no fresh noise added (eta = 0) 10-50 steps do what DDPM does in 1,000.
- **Classifier-free guidance** (Ho & Salimans, 2022): train one network both with its condition and, for a
  fraction of the steps, without it; when sampling, push the prediction away from the unconditional one:
  `noise = unconditional + scale * (conditional - unconditional)`. A scale above 1 trades diversity for
  samples that match their condition better. Both predictions come from one batched pass.

A denoiser is any callable `denoiser(x_t, t, condition, keep) -> predicted noise`: `keep` [B] says, per row,
whether the network may see its condition (False: it sees its learned "no condition" instead).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mmlesson.checks import check_int
from mmlesson.errors import InputError

# The names lessons use; see API.md.
__all__ = [
    "NoiseSchedule",
    "noise_prediction_loss",
    "noise_from_clean",
    "ddim_sample",
    "sampling_timesteps",
    "guided_noise",
    "check_guidance_scale",
]

Denoiser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
# (denoiser, x_t, t, condition, guidance scale) -> the noise estimate a sampler steps with
NoiseEstimate = Callable[[Denoiser, torch.Tensor, int, torch.Tensor, float], torch.Tensor]
TRAINING_STEPS = 1000  # T: the noise levels a network is trained on (DDPM's choice)


@dataclass(frozen=True)
class NoiseSchedule:
    """alpha_bars[t]: the share of the signal's variance left at step t (1 before step 0, ~0 at step T-1)."""

    alpha_bars: torch.Tensor

    @classmethod
    def cosine(cls, steps: int = TRAINING_STEPS, offset: float = 0.008) -> NoiseSchedule:
        """Nichol & Dhariwal's schedule: alpha_bar(t) = cos^2(pi/2 * (t/T + s) / (1 + s)), each step's
        noise (beta) capped at 0.999 so that the last step does not divide by zero."""
        t = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        return cls(torch.cumprod(1 - betas, dim=0).float())

    @property
    def steps(self) -> int:
        return len(self.alpha_bars)

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(a_t) * x0 + sqrt(1 - a_t) * noise, for a step t [B] per row of x0 [B, ...]."""
        a = self.alpha_bars.to(x0.device)[t].view(-1, *[1] * (x0.ndim - 1))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise


def noise_prediction_loss(
    denoiser: Denoiser,
    x0: torch.Tensor,
    condition: torch.Tensor,
    schedule: NoiseSchedule,
    drop_condition: float = 0.0,
    generator: torch.Generator | None = None,
    target: str = "noise",
) -> torch.Tensor:
    """DDPM's objective: noise a batch at random steps, and score the denoiser's guess of that noise.

    With `drop_condition` > 0 that share of the rows hides its condition from the denoiser, which so learns
    the unconditional prediction that classifier-free guidance needs too. With target="clean" the denoiser
    guesses the clean x_0 instead (wrap it in `noise_from_clean` to sample): at the noisiest steps the noise
    is easy to guess from x_t alone, so a noise-predicting network learns little there about its condition,
    while a clean-predicting one must say what the sample is.
    """
    if target not in ("noise", "clean"):
        raise InputError(f"target must be 'noise' or 'clean', got {target!r}")
    batch = len(x0)
    t = torch.randint(schedule.steps, (batch,), generator=generator).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    keep = (torch.rand(batch, generator=generator) >= drop_condition).to(x0.device)
    predicted = denoiser(schedule.add_noise(x0, t, noise), t, condition, keep)
    return F.mse_loss(predicted, noise if target == "noise" else x0)


def noise_from_clean(denoiser: Denoiser, schedule: NoiseSchedule) -> Denoiser:
    """A noise-predicting denoiser made of one that predicts the clean x_0: the noise that x_t and that x_0
    imply, (x_t - sqrt(a_t) x_0) / sqrt(1 - a_t). Samplers written for noise prediction then take it as is."""

    def noise(x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        a = schedule.alpha_bars.to(x.device)[t].view(-1, *[1] * (x.ndim - 1))
        return (x - a.sqrt() * denoiser(x, t, condition, keep)) / (1 - a).sqrt()

    return noise


def sampling_timesteps(schedule: NoiseSchedule, steps: int) -> list[int]:
    """`steps` training steps, evenly spaced from the noisiest (T-1) down, where DDIM stops on its way."""
    check_int(steps, "steps", 1, schedule.steps, means=": the number of denoising steps per sample")
    return torch.linspace(schedule.steps - 1, 0, steps).round().long().tolist()


@torch.no_grad()
def ddim_sample(
    denoiser: Denoiser,
    condition: torch.Tensor,
    shape: tuple[int, ...],
    schedule: NoiseSchedule,
    steps: int = 25,
    guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
    bound: float = 3.0,
    noise_estimate: NoiseEstimate | None = None,
) -> torch.Tensor:
    """Samples [B, *shape], one per row of `condition` [B, ...], by DDIM with eta = 0 from pure noise.

    guidance_scale 1 uses the conditional prediction alone, 0 the unconditional one alone; other values mix
    them as classifier-free guidance does, both computed in one batch of 2B rows (`guided_noise`, unless
    `noise_estimate` says otherwise: benchmarks/bench_dalle2.py times the two passes one after the other).

    Each step's estimate of x_0 is clamped to [-bound, bound], the range the data lives in (DDPM clamps
    pixels to [-1, 1] the same way): at the noisiest steps sqrt(a_t) is about 0.00005, and dividing by it
    would blow the smallest error in the predicted noise up into samples far outside the data.
    """
    noise_estimate = noise_estimate or guided_noise
    scale = check_guidance_scale(guidance_scale)
    batch, device = len(condition), condition.device
    x = torch.randn((batch, *shape), generator=generator).to(device)
    timesteps = sampling_timesteps(schedule, steps)
    alpha_bars = schedule.alpha_bars.to(device)
    for k, t in enumerate(timesteps):
        noise = noise_estimate(denoiser, x, t, condition, scale)
        a = alpha_bars[t]
        x0 = ((x - (1 - a).sqrt() * noise) / a.sqrt()).clamp(-bound, bound)
        noise = (x - a.sqrt() * x0) / (1 - a).sqrt()  # the noise that the clamped x_0 implies
        a_next = alpha_bars[timesteps[k + 1]] if k + 1 < len(timesteps) else torch.tensor(1.0)
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * noise
    return x


def guided_noise(
    denoiser: Denoiser, x: torch.Tensor, t: int, condition: torch.Tensor, scale: float
) -> torch.Tensor:
    """The denoiser's noise estimate at step t, guided by `scale` (one pass where only one side is needed)."""
    batch, device = len(x), x.device
    steps = torch.full((batch,), t, device=device, dtype=torch.long)
    if scale in (0.0, 1.0):
        keep = torch.full((batch,), scale == 1.0, device=device)
        return denoiser(x, steps, condition, keep)
    keep = torch.cat([torch.ones(batch, dtype=torch.bool), torch.zeros(batch, dtype=torch.bool)]).to(device)
    both = denoiser(torch.cat([x, x]), torch.cat([steps, steps]), torch.cat([condition, condition]), keep)
    conditional, unconditional = both.chunk(2)
    return unconditional + scale * (conditional - unconditional)


def check_guidance_scale(scale: float) -> float:
    """A guidance scale: a finite number from 0 (ignore the condition) up; 1 is plain conditional sampling."""
    if (
        isinstance(scale, bool)
        or not isinstance(scale, numbers.Real)
        or not math.isfinite(scale)
        or scale < 0
    ):
        raise InputError(
            f"guidance_scale must be a number >= 0, got {scale!r}: 1 samples the conditional model as "
            "trained, larger values (e.g. 3) follow the condition more closely and vary less, 0 ignores it"
        )
    if scale > 50:
        raise InputError(
            f"guidance_scale {scale!r} is far outside what guidance is used with (about 1 to 10): the "
            "samples would saturate into noise. Try a value from 1 to 10."
        )
    return float(scale)
