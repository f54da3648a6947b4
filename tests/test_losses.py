"""mmlesson.losses agrees with open_clip's ClipLoss and SigLipLoss, including at the edges."""

from __future__ import annotations

import math

import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.loss import SigLipLoss

from mmlesson.losses import contrastive_loss, sigmoid_loss


def embeddings(n: int, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = F.normalize(torch.randn(n, dim, generator=generator), dim=-1)
    texts = F.normalize(torch.randn(n, dim, generator=generator), dim=-1)
    return images, texts


@pytest.mark.parametrize("n", [1, 2, 7, 64])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 14.3, 100.0, 1e4])
def test_contrastive_matches_open_clip(n, scale):
    images, texts = embeddings(n, seed=n)
    expected = open_clip.ClipLoss()(images, texts, torch.tensor(scale))
    assert torch.allclose(contrastive_loss(images, texts, scale), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 7, 64])
@pytest.mark.parametrize("scale, bias", [(1.0, 0.0), (10.0, -10.0), (1e3, -5.0)])
def test_sigmoid_matches_open_clip(n, scale, bias):
    images, texts = embeddings(n, seed=n + 1)
    expected = SigLipLoss()(images, texts, torch.tensor(scale), torch.tensor(bias))
    assert torch.allclose(sigmoid_loss(images, texts, scale, bias), expected, rtol=1e-5, atol=1e-5)


def test_batch_of_one_has_zero_contrastive_loss():
    images, texts = embeddings(1)
    assert contrastive_loss(images, texts, 10.0).item() == pytest.approx(0.0, abs=1e-7)


def test_identical_embeddings_cannot_tell_pairs_apart():
    row = F.normalize(torch.randn(1, 8), dim=-1)
    same = row.repeat(5, 1)
    assert contrastive_loss(same, same, 50.0).item() == pytest.approx(math.log(5), rel=1e-6)
    assert contrastive_loss(same, same, 50.0) == open_clip.ClipLoss()(same, same, torch.tensor(50.0))


def test_perfect_pairs_at_high_scale_approach_zero():
    eye = torch.eye(6)
    assert contrastive_loss(eye, eye, 100.0).item() < 1e-6


def test_half_precision_inputs_match_open_clip_in_float32():
    images, texts = embeddings(32)
    expected = open_clip.ClipLoss()(images, texts, torch.tensor(20.0))
    result = contrastive_loss(images.half(), texts.half(), torch.tensor(20.0))
    assert result.dtype == torch.float32
    assert torch.allclose(result, expected, atol=2e-3)


def test_unnormalized_inputs_are_normalized_first():
    images, texts = embeddings(8)
    assert torch.allclose(
        contrastive_loss(3 * images, 0.5 * texts, 10.0), contrastive_loss(images, texts, 10.0)
    )


def test_gradients_flow_to_embeddings_and_scale():
    images, texts = (t.requires_grad_() for t in embeddings(8))
    log_scale = torch.tensor(math.log(10.0), requires_grad=True)
    contrastive_loss(images, texts, log_scale.exp()).backward()
    assert images.grad.abs().sum() > 0 and texts.grad.abs().sum() > 0 and log_scale.grad != 0


@pytest.mark.parametrize(
    "images, texts, message",
    [
        (torch.zeros(0, 4), torch.zeros(0, 4), "empty"),
        (torch.zeros(3, 4), torch.zeros(2, 4), "same shape"),
        (torch.zeros(4), torch.zeros(4), "2-D"),
    ],
)
def test_bad_shapes_are_explained(images, texts, message):
    with pytest.raises(ValueError, match=message):
        contrastive_loss(images, texts, 1.0)
    with pytest.raises(ValueError, match=message):
        sigmoid_loss(images, texts, 1.0, 0.0)
