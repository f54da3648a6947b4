"""The tiny CLIP shipped in the package: intact, within budget, and as good as its manifest says."""

from __future__ import annotations

import open_clip
import pytest
import torch

import mmlesson
from mmlesson import data, train_clip
from mmlesson.clip import TINY_CLIP_NAME, load_tiny_clip
from mmlesson.course import assets
from mmlesson.errors import MMLessonError
from mmlesson.runtime import read_manifest
from mmlesson.train_clip import ClipTraining
from tests.helpers import command_gives_the_recorded_settings, copy_shipped, damage

WEIGHT_BUDGET_BYTES = 20 * 1024 * 1024  # every shipped weight file together
QUALITY_BARS = {
    "zero_shot_color_shape_all": 0.95,
    "zero_shot_color_shape_held_out": 0.85,
    "zero_shot_color": 0.98,
    "zero_shot_shape": 0.98,
    "text_to_image_recall_at_10": 0.90,
}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return read_manifest(TINY_CLIP_NAME)


@pytest.fixture(scope="module")
def bundle():
    return mmlesson.load_clip(profile="tiny", device="cpu")


def test_shipped_files_match_their_manifests():
    rows = assets.verify_shipped()
    assert {name for name, _, _ in rows} >= {f"{TINY_CLIP_NAME}.safetensors", f"{TINY_CLIP_NAME}.json"}
    assert all(ok for _, ok, _ in rows), rows


def test_shipped_weights_stay_within_budget():
    total = sum(path.stat().st_size for path in assets.WEIGHTS_DIR.glob("*.safetensors"))
    assert 0 < total < WEIGHT_BUDGET_BYTES


def test_manifest_records_how_the_weights_were_made(manifest):
    training = manifest["training"]
    assert command_gives_the_recorded_settings(training, "clip", ClipTraining)
    assert {"wall_time_s", "data", "threads", "final_loss"} <= training.keys()
    assert [tuple(pair) for pair in training["held_out_combos"]] == list(data.HELD_OUT)
    assert manifest["tokenizer"]["bpe_ids"] == train_clip.course_bpe_ids()


def test_it_is_open_clips_own_clip_class(bundle):
    assert type(bundle.model) is open_clip.CLIP
    assert bundle.name == TINY_CLIP_NAME and bundle.image_size == 64 and bundle.context_length == 24


@pytest.mark.slow
def test_quality_bars_hold_and_match_the_manifest(bundle, manifest):
    """Recompute every metric the manifest reports, on the same held-out worlds."""
    measured = train_clip.evaluate_clip(bundle)
    for name, bar in QUALITY_BARS.items():
        assert measured[name] >= bar, f"{name}: {measured[name]:.4f} < {bar}"
        assert measured[name] == pytest.approx(manifest["metrics"][name], abs=0.003), name


def test_loads_on_the_requested_device(bundle):
    assert bundle.device == torch.device("cpu")
    assert next(bundle.model.parameters()).dtype == torch.float32


def test_damaged_weights_are_refused_with_advice(tmp_path):
    damage(copy_shipped(tmp_path, TINY_CLIP_NAME) / f"{TINY_CLIP_NAME}.safetensors")
    with pytest.raises(MMLessonError, match="damaged.*reinstall"):
        load_tiny_clip(torch.device("cpu"), weights_dir=tmp_path)
