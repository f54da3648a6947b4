"""The tiny VQGAN shipped in the package: intact, taming's modules, and as good as its manifest says."""

from __future__ import annotations

import pytest
import torch
from taming.modules.diffusionmodules.model import Decoder, Encoder
from taming.modules.vqvae.quantize import VectorQuantizer2

import mmlesson
from mmlesson import train_vqgan
from mmlesson.course import assets
from mmlesson.errors import MMLessonError
from mmlesson.runtime import read_manifest
from mmlesson.train_vqgan import VqganTraining
from mmlesson.vqgan import TINY_VQGAN_NAME, load_tiny_vqgan, tiny_vqgan_config
from tests.helpers import command_gives_the_recorded_settings, copy_shipped, damage

QUALITY_BARS = {"psnr_db_mean": 28.0, "codebook_used_share": 0.5}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return read_manifest(TINY_VQGAN_NAME)


@pytest.fixture(scope="module")
def model():
    return mmlesson.load_vqgan(profile="tiny", device="cpu")


def test_shipped_files_match_their_manifest():
    rows = dict((name, ok) for name, ok, _ in assets.verify_shipped())
    assert rows.get(f"{TINY_VQGAN_NAME}.safetensors") is True


def test_manifest_records_how_the_weights_were_made(manifest):
    training = manifest["training"]
    assert command_gives_the_recorded_settings(training, "vqgan", VqganTraining)
    assert {"wall_time_s", "data", "losses"} <= training.keys()
    assert manifest["config"] == tiny_vqgan_config()


def test_it_is_built_from_taming_modules(model):
    assert type(model.encoder) is Encoder and type(model.decoder) is Decoder
    assert type(model.quantize) is VectorQuantizer2
    assert (model.resolution, model.grid, model.codebook_size) == (64, 8, 512)
    assert model.codebook.dtype == torch.float32 and model.device == torch.device("cpu")


@pytest.mark.slow
def test_quality_bars_hold_and_match_the_manifest(model, manifest):
    """Recompute the manifest's metrics on the same held-out images."""
    measured = train_vqgan.evaluate_vqgan(model)
    for name, bar in QUALITY_BARS.items():
        assert measured[name] >= bar, f"{name}: {measured[name]:.4f} < {bar}"
    for name, value in manifest["metrics"].items():
        assert measured[name] == pytest.approx(value, rel=0.01), name


def test_damaged_weights_are_refused_with_advice(tmp_path):
    damage(copy_shipped(tmp_path, TINY_VQGAN_NAME) / f"{TINY_VQGAN_NAME}.safetensors")
    with pytest.raises(MMLessonError, match="damaged.*reinstall"):
        load_tiny_vqgan(weights_dir=tmp_path)
