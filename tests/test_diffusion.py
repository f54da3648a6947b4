"""Diffusion's three pieces (mmlesson.diffusion): the noise schedule, the objective and the DDIM sampler with
classifier-free guidance, checked against what they must do in cases whose answer is known exactly."""

from __future__ import annotations

import math

import pytest
import torch

from mmlesson.diffusion import (
    NoiseSchedule,
    check_guidance_scale,
    ddim_sample,
    guided_noise,
    noise_prediction_loss,
    sampling_timesteps,
)
from mmlesson.errors import InputError

SCHEDULE = NoiseSchedule.cosine()


def oracle_for(point: torch.Tensor):
    """The perfect denoiser for data that is always `point` (or, unconditioned, always 0): given x_t it
    knows x_0, so the noise is (x_t - sqrt(a) x_0) / sqrt(1 - a)."""

    def denoiser(x, t, condition, keep):
        a = SCHEDULE.alpha_bars[t].view(-1, *[1] * (x.ndim - 1))
        x0 = torch.where(keep.view(-1, *[1] * (x.ndim - 1)), point.expand_as(x), torch.zeros_like(x))
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    return denoiser


def test_the_cosine_schedule_goes_from_signal_to_noise():
    a = SCHEDULE.alpha_bars
    assert SCHEDULE.steps == 1000 and a[0] > 0.999 and a[-1] < 1e-4
    assert (a[1:] < a[:-1]).all(), "every step removes some signal"
    # Nichol & Dhariwal's formula, at the middle step
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert a[499].item() == pytest.approx(f(500) / f(0), rel=1e-4)


def test_add_noise_mixes_signal_and_noise_by_the_schedule():
    x0, noise = torch.full((2, 3), 2.0), torch.full((2, 3), -1.0)
    t = torch.tensor([0, 600])
    mixed = SCHEDULE.add_noise(x0, t, noise)
    a = SCHEDULE.alpha_bars[600]
    assert torch.allclose(mixed[1], 2 * a.sqrt() - (1 - a).sqrt())
    assert torch.allclose(mixed[0], torch.full((3,), 2.0), atol=0.05)


def test_the_loss_is_zero_for_the_perfect_denoiser_and_not_for_a_wrong_one():
    point = torch.tensor([1.5, -0.5])
    x0 = point.expand(64, 2).clone()
    condition = torch.zeros(64, 4)
    generator = torch.Generator().manual_seed(0)
    perfect = noise_prediction_loss(oracle_for(point), x0, condition, SCHEDULE, generator=generator)
    assert perfect.item() < 1e-6
    lazy = noise_prediction_loss(lambda x, t, c, k: torch.zeros_like(x), x0, condition, SCHEDULE)
    assert lazy.item() == pytest.approx(1.0, abs=0.3)  # the noise's own variance


def test_ddim_with_the_perfect_denoiser_returns_the_data_point():
    point = torch.tensor([1.5, -0.5, 3.0])
    condition = torch.zeros(5, 1)
    for steps in (1, 10, 50):
        samples = ddim_sample(oracle_for(point), condition, (3,), SCHEDULE, steps=steps)
        assert torch.allclose(samples, point.expand(5, 3), atol=2e-3), steps  # float32 rounding at t=999


def test_a_slightly_wrong_denoiser_still_ends_near_the_data_and_never_outside_the_bound():
    point = torch.tensor([0.5, -0.5])

    def slightly_wrong(x, t, condition, keep):  # at t=999 this error alone puts x_0 200 away
        return oracle_for(point)(x, t, condition, keep) + 0.01

    samples = ddim_sample(slightly_wrong, torch.zeros(8, 1), (2,), SCHEDULE, 25, bound=2.0)
    assert samples.abs().max() <= 2.0
    assert torch.allclose(samples, point.expand(8, 2), atol=0.05)


def test_guidance_mixes_the_two_predictions_in_one_batch():
    calls = []

    def denoiser(x, t, condition, keep):
        calls.append(len(x))
        return torch.where(keep[:, None], torch.ones_like(x), torch.zeros_like(x))

    x, condition = torch.zeros(3, 2), torch.zeros(3, 1)
    assert torch.equal(guided_noise(denoiser, x, 10, condition, 1.0), torch.ones(3, 2))
    assert torch.equal(guided_noise(denoiser, x, 10, condition, 0.0), torch.zeros(3, 2))
    assert torch.equal(guided_noise(denoiser, x, 10, condition, 3.0), torch.full((3, 2), 3.0))
    assert calls == [3, 3, 6], "scales 0 and 1 need one pass; others one pass of both halves"


def test_sampling_is_reproducible_with_a_generator():
    denoiser = lambda x, t, c, k: 0.1 * x  # noqa: E731
    condition = torch.zeros(4, 1)
    runs = [
        ddim_sample(denoiser, condition, (2,), SCHEDULE, 5, generator=torch.Generator().manual_seed(7))
        for _ in range(2)
    ]
    assert torch.equal(*runs)


def test_timesteps_run_from_the_noisiest_down():
    assert sampling_timesteps(SCHEDULE, 5) == [999, 749, 500, 250, 0]
    assert sampling_timesteps(SCHEDULE, 1) == [999]


@pytest.mark.parametrize("steps", [0, -3, 1001, 2.5, "ten", True])
def test_bad_step_counts_are_refused(steps):
    with pytest.raises(InputError, match="steps"):
        sampling_timesteps(SCHEDULE, steps)


@pytest.mark.parametrize("scale", [-1, float("nan"), float("inf"), "3", None, True, 51])
def test_bad_guidance_scales_are_refused(scale):
    with pytest.raises(InputError, match="guidance_scale"):
        check_guidance_scale(scale)


def test_guidance_scales_that_work_are_kept():
    assert check_guidance_scale(0) == 0.0 and check_guidance_scale(7.5) == 7.5
