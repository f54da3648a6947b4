"""CLIP-guided generation: prompt parsing, the loss, cutouts, and the loop's contracts (small models)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.ops import roi_align

from mmlesson import guided
from mmlesson.guided import Prompt
from mmlesson.vqgan import VQGAN, tiny_vqgan_config


@pytest.fixture(scope="module")
def vqgan() -> VQGAN:
    torch.manual_seed(0)
    config = tiny_vqgan_config()
    config = {**config, "n_embed": 32, "ddconfig": {**config["ddconfig"], "ch_mult": [1, 2, 2]}}
    return VQGAN(config, "test-vqgan").eval()  # 64 px -> 16x16 tokens, fast


def test_prompts_with_weights_negative_prompts_and_colons_in_text():
    assert guided.parse_prompts("a red circle") == [Prompt("a red circle", 1.0)]
    assert guided.parse_prompts("a red circle:2 | blurry:-0.5") == [
        Prompt("a red circle", 2.0),
        Prompt("blurry", -0.5),
    ]
    assert guided.parse_prompts("at the top: a red star") == [Prompt("at the top: a red star", 1.0)]


def test_spherical_distance_is_zero_for_equal_and_grows_with_the_angle():
    a = torch.nn.functional.normalize(torch.randn(3, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    distance = guided.spherical_distance(a, torch.cat([a[:1], -a[:1]]))
    assert distance[0, 0].item() == pytest.approx(0.0, abs=1e-6)
    assert distance[0, 1].item() == pytest.approx(2 * (torch.pi / 2) ** 2, rel=1e-3)  # opposite vectors
    x, y = torch.eye(2)[:1], torch.eye(2)[1:]
    assert guided.spherical_distance(x, y).item() == pytest.approx(2 * (torch.pi / 4) ** 2, rel=1e-5)


@pytest.mark.parametrize(("start", "side"), [(10.0, 40.0), (0.0, 64.0), (3.5, 33.3)])
def test_resize_matrices_enlarge_exactly_as_bilinear_roi_align(start, side):
    """Bilinear sampling at the output pixels' centres, reading past the crop's edge where it can (the
    crop is part of a larger image), exactly as torchvision's `roi_align` does."""
    image = torch.rand(1, 3, 64, 64)
    matrix = guided.resize_matrices(torch.tensor([start]), torch.tensor([side]), 64, 64)
    resized = matrix[:, None] @ image @ matrix[:, None].transpose(-1, -2)
    box = torch.tensor([[0, start, start, start + side, start + side]])
    torch.testing.assert_close(resized, roi_align(image, box, output_size=64, aligned=True))


def test_resize_matrices_shrink_with_antialiasing_and_every_row_sums_to_one():
    image = torch.rand(1, 3, 256, 256)
    matrix = guided.resize_matrices(torch.tensor([0.0]), torch.tensor([256.0]), 256, 64)
    resized = matrix[:, None] @ image @ matrix[:, None].transpose(-1, -2)
    expected = torch.nn.functional.interpolate(image, size=64, mode="bilinear", antialias=True)
    torch.testing.assert_close(resized, expected)
    torch.testing.assert_close(matrix.sum(dim=-1), torch.ones(1, 64))


def test_cutouts_are_crops_of_half_to_all_of_the_image_some_mirrored():
    """On an image whose brightness is its column number, a cutout's slope across columns is its crop side
    over its size (negative when mirrored), and its rows are all alike."""
    image = torch.arange(32.0).expand(1, 3, 32, 32)
    cutouts = guided.make_cutouts(image, 200, 16, torch.Generator().manual_seed(0))
    slope = cutouts[:, 0].diff(dim=-1).mean(dim=(1, 2))
    assert (slope > 0).sum() > 50 and (slope < 0).sum() > 50
    assert slope.abs().min() > 0.95 and slope.abs().max() < 2.05  # sides between 16 and 32 pixels
    assert cutouts[:, 0].diff(dim=-2).abs().mean() < 0.1  # only the noise differs between rows


def test_cutouts_are_batched_differentiable_and_reproducible():
    image = torch.rand(1, 3, 64, 64, requires_grad=True)
    first = guided.make_cutouts(image, 8, 32, torch.Generator().manual_seed(1))
    again = guided.make_cutouts(image, 8, 32, torch.Generator().manual_seed(1))
    assert first.shape == (8, 3, 32, 32) and torch.equal(first, again)
    first.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_generate_is_reproducible_and_records_frames_and_losses(bundle, vqgan):
    seen = []
    result = guided.generate(
        "a red circle | a blue square:-0.3",
        steps=6,
        seed=3,
        cutouts=4,
        frame_every=2,
        clip=bundle,
        vqgan=vqgan,
        callback=lambda step, image, loss: seen.append(step),
    )
    assert isinstance(result.image, Image.Image) and result.image.size == (64, 64)
    assert len(result.losses) == 6 and seen == [0, 2, 4, 5] and len(result.frames) == 4
    assert [p.weight for p in result.prompts] == [1.0, -0.3]
    again = guided.generate(
        "a red circle | a blue square:-0.3", steps=6, seed=3, cutouts=4, clip=bundle, vqgan=vqgan
    )
    assert again.losses == result.losses and again.image.tobytes() == result.image.tobytes()
    other = guided.generate(
        "a red circle | a blue square:-0.3", steps=6, seed=4, cutouts=4, clip=bundle, vqgan=vqgan
    )
    assert other.image.tobytes() != result.image.tobytes()


def test_save_animation_writes_a_looping_gif_and_nothing_on_failure(tmp_path):
    frames = [Image.new("RGB", (8, 8), (k * 40, 0, 0)) for k in range(4)]
    path = guided.save_animation(frames, tmp_path / "run.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 4 and gif.info.get("loop") == 0
    with pytest.raises(ValueError, match="no frames"):
        guided.save_animation([], tmp_path / "empty.gif")
    with pytest.raises(OSError):
        guided.save_animation(frames, tmp_path / "missing-folder" / "run.gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.gif"]


def test_generate_takes_the_gradient_of_the_latent_only(bundle, vqgan):
    """The models are left as they were: no weight gradients computed or stored."""
    parameters = [*bundle.model.parameters(), *vqgan.parameters()]
    assert all(p.requires_grad for p in parameters)
    for parameter in parameters:
        parameter.grad = None
    guided.generate("a circle", steps=2, cutouts=2, clip=bundle, vqgan=vqgan)
    assert all(p.grad is None for p in parameters)


# Odd arguments of generate (prompts, weights, settings, seeds, images, the GPU running out of memory): the
# table in tests/test_bad_input_generation.py.
