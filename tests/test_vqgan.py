"""VQGAN: encode/decode contracts, input checks, the straight-through quantizer, and checkpoint loading."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from mmlesson import vqgan
from mmlesson.course import assets
from mmlesson.data import ShapesWorld
from mmlesson.errors import MMLessonError
from mmlesson.vqgan import VQGAN
from tests import test_checkpoints
from tests.helpers import FileServer


def small_config(resolution: int = 32) -> dict:
    """A VQGAN of the tiny layout, narrower and at 32 px: fast, and enough for contracts."""
    config = vqgan.tiny_vqgan_config()
    config["ddconfig"] = {**config["ddconfig"], "resolution": resolution, "ch_mult": [1, 2, 2]}
    return {**config, "n_embed": 64, "embed_dim": 16, "ddconfig": {**config["ddconfig"], "z_channels": 32}}


@pytest.fixture(scope="module")
def model() -> VQGAN:
    torch.manual_seed(0)
    return VQGAN(small_config(), "test-vqgan").eval()


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return ShapesWorld(seed=0, image_size=32).sample(3).images


def test_encode_gives_a_token_grid_and_decode_gives_images(model, images):
    assert (model.factor, model.grid) == (4, 8)
    tokens = model.encode(images)
    assert tokens.dtype == torch.long and tokens.shape == (3, 8, 8)
    assert tokens.min() >= 0 and tokens.max() < model.codebook_size
    pictures = model.decode(tokens)
    assert pictures.shape == (3, 3, 32, 32) and pictures.min() >= 0 and pictures.max() <= 1
    assert torch.allclose(model.decode(tokens[1]), pictures[1:2], atol=1e-5)  # one grid [h, w] works too
    assert torch.allclose(model.reconstruct(images), pictures)


def test_decode_equals_the_decoder_on_the_quantized_latents(model, images):
    pixels = model.pixels(images)
    with torch.no_grad():
        quantized, tokens, _ = model.quantize_latents(model.encode_latents(pixels))
        assert torch.allclose(model.latents_from_indices(tokens), quantized, atol=1e-6)
        expected = vqgan.to_unit_range(model.decode_latents(quantized))
    assert torch.allclose(model.decode(tokens), expected, atol=1e-5)


def test_many_images_go_through_in_passes_of_a_bounded_size(model, monkeypatch):
    many = ShapesWorld(seed=1, image_size=32).sample(5).images
    whole_tokens, whole_pictures = model.encode(many), model.decode(model.encode(many))
    calls, encode_latents = [], model.encode_latents
    monkeypatch.setattr(vqgan, "CPU_FEATURE_MAP_BUDGET", 2 * 32**2 * model.config["ddconfig"]["ch"] * 4)
    monkeypatch.setattr(
        model, "encode_latents", lambda pixels: calls.append(len(pixels)) or encode_latents(pixels)
    )
    assert model.images_per_pass == 2
    assert torch.equal(model.encode(many), whole_tokens) and calls == [2, 2, 1]
    assert torch.allclose(model.decode(whole_tokens), whole_pictures, atol=1e-5)


def test_a_full_profile_pass_fits_a_colab_t4():
    """The published f16 model: 8 images of 256 px per pass (its feature maps, 32 MB an image)."""
    ddconfig = {**vqgan.tiny_vqgan_config()["ddconfig"], "resolution": 256, "ch": 128, "z_channels": 256}
    ddconfig.update(ch_mult=[1, 1, 2, 2, 4], num_res_blocks=2, attn_resolutions=[16])  # taming's model.yaml
    with torch.device("meta"):  # shapes only: no memory
        full = VQGAN({"embed_dim": 256, "n_embed": 16384, "ddconfig": ddconfig})
    assert (full.resolution, full.grid, full.images_per_pass) == (256, 16, 8)


def test_a_cpu_pass_stays_within_the_caches():
    """On the CPU a pass is sized for speed: 16 images of the tiny model (8 MB maps); on a GPU, 512."""
    assert vqgan.VQGAN(vqgan.tiny_vqgan_config()).images_per_pass == 16
    with torch.device("meta"):
        assert vqgan.VQGAN(vqgan.tiny_vqgan_config()).images_per_pass == 512


def test_the_quantizer_passes_gradients_straight_through(model, images):
    latents = model.encode_latents(model.pixels(images)).detach().requires_grad_(True)
    quantized, tokens, loss = model.quantize_latents(latents)
    assert torch.allclose(quantized, model.latents_from_indices(tokens), atol=1e-6)  # forward: the entries
    quantized.sum().backward()
    assert torch.equal(latents.grad, torch.ones_like(latents))  # backward: as if it were the identity
    assert loss.item() > 0


def test_tokens_out_of_range_or_not_integers_are_refused(model):
    with pytest.raises(ValueError, match=r"in 0\.\.63 .* from 0 to 64"):
        model.decode(torch.tensor([[0, 64]]))
    with pytest.raises(ValueError, match=r"from -1 to 0"):
        model.decode(torch.tensor([[[-1, 0]]]))
    with pytest.raises(ValueError, match="integer tensor"):
        model.decode(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="integer tensor"):
        model.decode(torch.zeros(8, dtype=torch.long))


def test_grayscale_rgba_and_odd_sized_images_are_converted(model, images):
    gray, rgba = images[0].convert("L"), images[0].convert("RGBA")
    assert torch.equal(model.encode(gray), model.encode(gray.convert("RGB")))
    assert torch.equal(model.encode(rgba), model.encode(images[0]))  # opaque RGBA is the same picture
    wide = images[0].resize((80, 40))
    assert model.pixels(wide).shape == (1, 3, 32, 32)  # shorter side to 32, center crop


def test_sizes_that_are_not_multiples_of_the_factor_are_fixed_with_a_warning(model, images):
    with pytest.warns(UserWarning, match="not a multiple of the downsampling factor 4; using 28"):
        assert model.pixels(images, size=30).shape[-1] == 28
    odd = torch.rand(1, 3, 30, 33)
    with pytest.warns(UserWarning, match="30x33 pixels are not a multiple of the factor 4: padded to 32x36"):
        assert model.encode(odd).shape == (1, 8, 9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.encode(torch.rand(2, 3, 32, 32))  # a multiple: no warning


def test_tensors_outside_zero_one_or_of_wrong_shape_are_refused(model):
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        model.encode(torch.rand(1, 3, 32, 32) * 2 - 1)
    with pytest.raises(ValueError, match=r"float \[N, 3, H, W\]"):
        model.encode(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="no images"):
        model.encode([])


def test_nan_pixels_are_refused_instead_of_becoming_token_zero(model):
    pixels = torch.rand(2, 3, 32, 32)
    pixels[1, 0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite.*image\(s\) \[1\]"):
        model.encode(pixels)


def test_psnr_of_identical_and_of_known_error():
    image = torch.rand(2, 3, 8, 8)
    noisy = (image + 0.1).clamp(0, 1)
    expected = 10 * torch.log10(1 / (image - noisy).square().flatten(1).mean(1))
    assert torch.allclose(vqgan.psnr(image, noisy), expected)
    assert (vqgan.psnr(image, image) == 100).all()  # MSE 0: capped, not infinite


# -- checkpoints --------------------------------------------------------------------------------------


def lightning_checkpoint(model: VQGAN, path: Path) -> Path:
    """Save `model` the way taming's Lightning training did: state_dict with loss.* entries, optimizer
    states, and callback state keyed by a class of a package the loader must not need."""
    state = {"loss.discriminator.weight": torch.ones(2), **model.state_dict()}
    return test_checkpoints.lightning_checkpoint(state, path)


def test_model_state_dict_reads_a_lightning_checkpoint_without_its_training_parts(model, tmp_path):
    path = lightning_checkpoint(model, tmp_path / "last.ckpt")
    state = vqgan.model_state_dict(path, assets.sha256_of(path))
    assert not any(k.startswith("loss.") for k in state)
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_a_checkpoint_without_vqgan_weights_is_refused(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"linear.weight": torch.ones(2)}}, path)
    with pytest.raises(MMLessonError, match="no VQGAN state_dict"):
        vqgan.model_state_dict(path, assets.sha256_of(path))


@pytest.fixture
def full_assets(model, tmp_path, cache):
    """The full VQGAN's two assets, replaced by a small random model in the same layout on 127.0.0.1."""
    config = {"model": {"target": "taming.models.vqgan.VQModel", "params": small_config()}}
    config_bytes = yaml.safe_dump(config).encode()
    checkpoint = lightning_checkpoint(model, tmp_path / "served.ckpt").read_bytes()
    servers = [FileServer(config_bytes), FileServer(checkpoint)]
    originals = {
        name: assets.REGISTRY[name] for name in (vqgan.FULL_VQGAN_ASSET + "-config", vqgan.FULL_VQGAN_ASSET)
    }
    for (name, original), server, body in zip(originals.items(), servers, (config_bytes, checkpoint)):
        assets.register(
            assets.Asset(
                name=name,
                filename=original.filename,
                urls=(server.url("/good"),),
                sha256=hashlib.sha256(body).hexdigest(),
                size=len(body),
                license=original.license,
                purpose=original.purpose,
            )
        )
    yield servers
    for original in originals.values():
        assets.register(original)
    for server in servers:
        server.close()


def test_full_vqgan_downloads_verifies_converts_and_never_unpickles_again(
    model, full_assets, cache, monkeypatch
):
    loaded = vqgan.load_vqgan("full", device="cpu")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    copy = assets.local_path(vqgan.FULL_VQGAN_ASSET).with_suffix(".safetensors")
    record = json.loads(copy.with_suffix(".json").read_text())
    assert record["source_sha256"] == assets.get(vqgan.FULL_VQGAN_ASSET).sha256
    assert record["sha256"] == assets.sha256_of(copy)

    def no_unpickling(*args):
        raise AssertionError("the checkpoint was unpickled again")

    monkeypatch.setattr(vqgan, "model_state_dict", no_unpickling)
    again = vqgan.load_vqgan("full", device="cpu")
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())
    assert full_assets[1].hits["/good"] == 1  # the checkpoint was downloaded once


def test_a_damaged_safetensors_copy_is_made_again(model, full_assets, cache):
    vqgan.load_vqgan("full", device="cpu")
    copy = assets.local_path(vqgan.FULL_VQGAN_ASSET).with_suffix(".safetensors")
    copy.write_bytes(copy.read_bytes()[:-10])
    loaded = vqgan.load_vqgan("full", device="cpu")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    assert assets.sha256_of(copy) == json.loads(copy.with_suffix(".json").read_text())["sha256"]


def test_a_cached_checkpoint_with_the_wrong_hash_is_fetched_again(model, full_assets, cache):
    checkpoint = assets.local_path(vqgan.FULL_VQGAN_ASSET)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"not the checkpoint")
    loaded = vqgan.load_vqgan("full", device="cpu")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    assert full_assets[1].hits["/good"] == 1


def test_unknown_profile_is_refused():
    with pytest.raises(MMLessonError, match="Unknown profile"):
        vqgan.load_vqgan("medium")
