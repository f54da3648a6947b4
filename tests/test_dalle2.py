"""The tiny DALL-E 2's parts and its calls (mmlesson.dalle2): shapes, reproducibility and every bad input a
learner could give, on a model with untrained decoder and prior (what is checked here does not depend on
training; the shipped weights are checked in tests/test_shipped_dalle2.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import mmlesson
from mmlesson import data
from mmlesson.clip import load_tiny_clip
from mmlesson.dalle2 import (
    PRIORS,
    DecoderConfig,
    LatentDenoiser,
    LinearPrior,
    PriorConfig,
    assemble,
)
from mmlesson.errors import InputError, MMLessonError
from mmlesson.train_dalle2 import embed_world
from mmlesson.vqgan import load_tiny_vqgan

FEW_STEPS = 2  # sampling steps: enough to exercise the loop


@pytest.fixture(scope="module")
def dalle2():
    model = assemble(
        load_tiny_clip(torch.device("cpu")), load_tiny_vqgan().eval(), DecoderConfig(), PriorConfig()
    )
    # An untrained decoder's output layer starts at zero: it predicts the mean latents whatever it is given.
    # Small random weights make its samples depend on the noise and the embedding, as a trained one's do.
    torch.manual_seed(0)
    torch.nn.init.normal_(model.decoder.out.weight, std=0.05)
    return model


def test_patches_round_trip_and_keep_places_apart():
    decoder = LatentDenoiser(DecoderConfig(components=12, patch=2))
    x = torch.randn(2, 12, 8, 8)
    patches = decoder.to_patches(x)
    assert patches.shape == (2, 16, 48)
    assert torch.equal(decoder.from_patches(patches), x)
    x[:, :, :2, :2] = 0  # the top-left 2x2 cells are the first token, and only it
    assert (decoder.to_patches(x)[:, 0] == 0).all() and (decoder.to_patches(x)[:, 1] != 0).all()


def test_the_decoder_predicts_noise_of_the_latents_shape():
    decoder = LatentDenoiser(DecoderConfig())
    x, t = torch.randn(3, decoder.config.components, 8, 8), torch.tensor([0, 500, 999])
    keep = torch.tensor([True, False, True])
    assert decoder(x, t, torch.randn(3, 128), keep).shape == x.shape


def test_the_latent_space_is_fitted_to_unit_variance_and_round_trips_what_it_keeps():
    generator = torch.Generator().manual_seed(0)
    # latents that vary along 3 directions of 64, with very different spreads, as the VQGAN's do
    directions = torch.linalg.qr(torch.randn(64, 3, generator=generator)).Q.T
    weights = torch.randn(400, 8, 8, 3, generator=generator) * torch.tensor([10.0, 1.0, 0.05])
    latents = (weights @ directions + 0.5).permute(0, 3, 1, 2)
    decoder = LatentDenoiser(DecoderConfig(components=3))
    decoder.fit_latent_space(latents)
    normalized = decoder.normalize(latents)
    assert normalized.shape == (400, 3, 8, 8)
    assert torch.allclose(normalized.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)
    assert torch.allclose(decoder.denormalize(normalized), latents, atol=1e-4)
    assert 1.0 < decoder.bound.item() <= normalized.abs().max().item()


def test_training_pictures_get_the_embeddings_clip_gives_their_images(dalle2):
    world = data.ShapesWorld(seed=5)
    pairs = embed_world(dalle2.clip, dalle2.vqgan, world, 6, progress=False)
    pictures = world.sample(6)
    assert pairs.latents.shape == (6, 64, 8, 8)
    assert torch.allclose(pairs.image_embeddings, dalle2.clip.encode_images(pictures.images), atol=1e-4)
    assert torch.allclose(pairs.text_embeddings.norm(dim=1), torch.ones(6), atol=1e-5)


def test_the_linear_prior_fits_a_linear_map_and_returns_unit_vectors():
    text = torch.randn(200, 8)
    truth = torch.randn(8, 8)
    prior = LinearPrior.fit(text, text @ truth)
    assert torch.allclose(prior.matrix, truth, atol=1e-4)
    assert torch.allclose(prior(text).norm(dim=1), torch.ones(200))


def test_generate_gives_n_images_per_caption_in_order_reproducibly(dalle2):
    images = dalle2.generate(["a red circle", "a blue star"], n=2, seed=3, steps=FEW_STEPS)
    assert len(images) == 4 and all(im.size == (64, 64) and im.mode == "RGB" for im in images)
    again = dalle2.generate(["a red circle", "a blue star"], n=2, seed=3, steps=FEW_STEPS)
    assert [np.asarray(a).tobytes() for a in images] == [np.asarray(b).tobytes() for b in again]
    other = dalle2.generate(["a red circle", "a blue star"], n=2, seed=4, steps=FEW_STEPS)
    assert np.asarray(images[0]).tobytes() != np.asarray(other[0]).tobytes()


@pytest.mark.parametrize("prior", PRIORS)
def test_every_prior_gives_unit_image_embeddings(dalle2, prior):
    text = dalle2.text_embeddings(["a small green heart at the top"] * 2)
    embeddings = dalle2.image_embeddings(text, prior, torch.Generator().manual_seed(0), FEW_STEPS)
    assert embeddings.shape == (2, 128)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(2), atol=1e-5)


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGBA", (30, 50), (255, 0, 0, 128)),
        Image.new("L", (200, 100), 90),
        Image.new("P", (64, 64)),
        np.zeros((17, 23, 3), dtype=np.uint8),
    ],
    ids=["rgba", "grayscale", "palette", "array"],
)
def test_variations_take_an_image_of_any_mode_and_size(dalle2, image):
    images = dalle2.variations(image, n=2, steps=FEW_STEPS)
    assert len(images) == 2 and all(im.size == (64, 64) for im in images)


def test_variations_of_a_file_that_is_not_an_image_say_so(dalle2, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    with pytest.raises(MMLessonError, match="notes.png"):
        dalle2.variations(path, steps=FEW_STEPS)
    with pytest.raises(MMLessonError, match="missing.png"):
        dalle2.variations(tmp_path / "missing.png", steps=FEW_STEPS)


@pytest.mark.parametrize(
    ("caption", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a red dog on the moon", "dog, moon"),
        (42, "must be a string"),
        ([], "no captions"),
    ],
)
def test_bad_captions_are_refused_with_what_to_do(dalle2, caption, message):
    with pytest.raises(InputError, match=message):
        dalle2.generate(caption, steps=FEW_STEPS)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n": 0}, "n must be a positive integer"),
        ({"n": -2}, "n must be"),
        ({"n": 2.5}, "n must be"),
        ({"n": 10**6}, "more than one call"),
        ({"guidance_scale": -1}, "guidance_scale"),
        ({"guidance_scale": float("nan")}, "guidance_scale"),
        ({"guidance_scale": "high"}, "guidance_scale"),
        ({"steps": 0}, "steps"),
        ({"steps": 5000}, "steps"),
        ({"seed": -1}, "seed"),
        ({"prior": "magic"}, "prior must be one of"),
    ],
)
def test_bad_options_are_refused_before_any_work(dalle2, options, message):
    with pytest.raises(InputError, match=message):
        dalle2.generate("a red circle", **{"steps": FEW_STEPS, **options})


def test_the_full_profile_names_what_to_try_instead():
    with pytest.raises(MMLessonError, match="tiny profile only") as error:
        mmlesson.load_dalle2(profile="full")
    assert "Karlo" in str(error.value) and "DALLE2-pytorch" in str(error.value)
