"""CLIP-guided generation: prompt parsing, the loss, cutouts, and the loop's contracts (small models)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from mmlesson import guided
from mmlesson.errors import MMLessonError
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


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a red circle |", "empty prompt between"),
        ("a red circle:abc", "cannot read the weight 'abc'"),
        ("a red circle:1..5", "cannot read the weight"),
        ("blurry:-1", "only negative or zero weights"),
        ("a red circle:0", "nonzero finite"),
        ("a red circle:nan", "nonzero finite"),
    ],
)
def test_bad_prompts_get_a_message(spec, message):
    with pytest.raises(ValueError, match=message):
        guided.parse_prompts(spec)


def test_spherical_distance_is_zero_for_equal_and_grows_with_the_angle():
    a = torch.nn.functional.normalize(torch.randn(3, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    distance = guided.spherical_distance(a, torch.cat([a[:1], -a[:1]]))
    assert distance[0, 0].item() == pytest.approx(0.0, abs=1e-6)
    assert distance[0, 1].item() == pytest.approx(2 * (torch.pi / 2) ** 2, rel=1e-3)  # opposite vectors
    x, y = torch.eye(2)[:1], torch.eye(2)[1:]
    assert guided.spherical_distance(x, y).item() == pytest.approx(2 * (torch.pi / 4) ** 2, rel=1e-5)


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


def test_generate_from_an_image_and_with_image_prompts(bundle, vqgan):
    start = Image.new("RGB", (40, 50), (200, 30, 30))
    result = guided.generate(
        "a circle", steps=2, cutouts=2, init_image=start, image_prompts=[start], clip=bundle, vqgan=vqgan
    )
    assert result.image.size == (64, 64) and len(result.losses) == 2


def test_size_not_a_multiple_of_the_factor_is_rounded_with_a_warning(bundle, vqgan):
    with pytest.warns(UserWarning, match="not a multiple of the downsampling factor 4; using 60"):
        result = guided.generate("a circle", steps=1, cutouts=2, size=62, clip=bundle, vqgan=vqgan)
    assert result.image.size == (60, 60)


def test_bad_settings_are_refused(bundle, vqgan):
    for settings in ({"steps": 0}, {"cutouts": 0}, {"steps": 2.5}):
        with pytest.raises(ValueError, match="positive integers"):
            guided.generate("a circle", clip=bundle, vqgan=vqgan, **settings)


def test_out_of_gpu_memory_suggests_fewer_cutouts_or_a_smaller_size(bundle, vqgan, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(guided, "make_cutouts", out_of_memory)
    with pytest.raises(
        MMLessonError, match="ran out of memory at 64x64 px with 8 cutouts.*cutouts=4.*size=32"
    ):
        guided.generate("a circle", steps=1, cutouts=8, clip=bundle, vqgan=vqgan)


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
