"""The tiny DALL-E shipped in the package: intact, made as its manifest says, and drawing what it is asked."""

from __future__ import annotations

import json

import pytest

import mmlesson
from mmlesson import data, judge, train_dalle
from mmlesson.course import assets
from mmlesson.course.assets import read_manifest
from mmlesson.dalle import GPT, TINY_DALLE_NAME, Dalle, load_tiny_dalle
from mmlesson.errors import MMLessonError
from mmlesson.train_dalle import DalleTraining
from mmlesson.vqgan import TINY_VQGAN_NAME
from tests.helpers import command_gives_the_recorded_settings, copy_shipped, damage

# The bars, over every color and shape, read from the pixels (color, position) and by the tiny CLIP
# (shape); reranking 8 samples by CLIP must raise the shape score.
QUALITY_BARS = {"color_all": 0.90, "position_all": 0.80, "shape_all": 0.80}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return read_manifest(TINY_DALLE_NAME)


@pytest.fixture(scope="module")
def dalle() -> Dalle:
    return mmlesson.load_dalle(profile="tiny", device="cpu")


@pytest.fixture(scope="module")
def measured(dalle) -> dict[str, float]:
    """Every color x shape pair once (sizes and positions taken in turn), 8 samples each: 240 images."""
    attributes = judge.evaluation_attributes()
    per_pair = len(attributes) // 30
    subset = [attributes[k * per_pair + k % per_pair] for k in range(30)]
    clip = mmlesson.load_clip(profile="tiny", device="cpu")
    return train_dalle.evaluate_dalle(dalle, clip, subset, samples=8)


def test_shipped_files_match_their_manifest():
    rows = {name: ok for name, ok, _ in assets.verify_shipped()}
    assert rows.get(f"{TINY_DALLE_NAME}.safetensors") is True


def test_manifest_records_how_the_weights_were_made(manifest):
    training = manifest["training"]
    assert command_gives_the_recorded_settings(training, "dalle", DalleTraining)
    assert {"wall_time_s", "threads", "data", "final_loss"} <= training.keys()
    assert [tuple(pair) for pair in training["held_out_combos"]] == list(data.HELD_OUT)
    assert manifest["tokenizer"]["words"] == train_dalle.course_words()
    vqgan = read_manifest(TINY_VQGAN_NAME)
    assert manifest["vqgan_sha256"] == vqgan["files"][vqgan["weights"]]["sha256"]


def test_it_is_the_course_gpt_over_words_and_vqgan_codes(dalle, manifest):
    assert type(dalle.gpt) is GPT and not dalle.gpt.training
    assert (dalle.text_length, dalle.image_length, dalle.gpt.config.n_codes) == (12, 64, 512)
    assert dalle.gpt.n_params() == manifest["parameters"]


def test_the_manifest_metrics_meet_the_bars(manifest):
    metrics = manifest["metrics"]
    for name, bar in QUALITY_BARS.items():
        assert metrics[name] >= bar, f"{name}: {metrics[name]} < {bar}"
    assert metrics["rerank_shape_gain"] > 0
    assert metrics["seconds_per_image"] <= 1.0


@pytest.mark.slow
def test_quality_bars_hold_recomputed_on_every_color_and_shape(measured, manifest):
    for name, bar in QUALITY_BARS.items():
        assert measured[name] >= bar, f"{name}: {measured[name]:.3f} < {bar}"
    for name in QUALITY_BARS:  # a smaller sample than the manifest's, so only roughly the same
        assert measured[name] == pytest.approx(manifest["metrics"][name], abs=0.1), name


@pytest.mark.slow
def test_reranking_by_clip_raises_the_shape_score(measured):
    assert measured["shape_reranked_all"] > measured["shape_all"]
    assert measured["shape_reranked_held_out"] > measured["shape_held_out"]  # where it matters most


def test_damaged_weights_are_refused_with_advice(tmp_path):
    damage(copy_shipped(tmp_path, TINY_DALLE_NAME, TINY_VQGAN_NAME) / f"{TINY_DALLE_NAME}.safetensors")
    with pytest.raises(MMLessonError, match="damaged.*reinstall"):
        load_tiny_dalle(weights_dir=tmp_path)


def test_weights_trained_on_another_vqgan_are_refused(tmp_path):
    path = copy_shipped(tmp_path, TINY_DALLE_NAME, TINY_VQGAN_NAME) / f"{TINY_DALLE_NAME}.manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**manifest, "vqgan_sha256": "0" * 64}), encoding="utf-8")
    with pytest.raises(MMLessonError, match="tokens of another mmlesson-tiny-vqgan.*retrain"):
        load_tiny_dalle(weights_dir=tmp_path)
