"""The full profile's CLIP, loaded for real without internet.

A ViT-B-32 with random weights is saved in the published checkpoint's format (open_clip's
`open_clip_model.safetensors`: the model's state dict), served from 127.0.0.1, and the registry is pointed
at it; `load_clip(profile="full")` then runs exactly the code path a learner's does: fetch, verify, load.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import open_clip
import pytest
import torch
from safetensors.torch import save_file

import mmlesson
from mmlesson.clip import FULL_CLIP_ASSET
from mmlesson.course import assets
from mmlesson.data import ShapesWorld
from mmlesson.errors import MMLessonError
from tests.helpers import FileServer, free_port


@pytest.fixture(scope="module")
def published_checkpoint(tmp_path_factory):
    """(random ViT-B-32, path of its weights in the published safetensors format)."""
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    path = tmp_path_factory.mktemp("published") / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model, path


@pytest.fixture
def registry_on_loopback(published_checkpoint, monkeypatch):
    _, path = published_checkpoint
    body = path.read_bytes()
    server = FileServer(body)
    entry = replace(
        assets.REGISTRY[FULL_CLIP_ASSET],
        urls=(server.url("/good"),),
        sha256=hashlib.sha256(body).hexdigest(),
        size=len(body),
    )
    monkeypatch.setitem(assets.REGISTRY, FULL_CLIP_ASSET, entry)
    yield server
    server.close()


@pytest.mark.slow
def test_full_profile_downloads_verifies_and_loads(published_checkpoint, registry_on_loopback, cache):
    original, _ = published_checkpoint
    bundle = mmlesson.load_clip(profile="full", device="cpu")
    assert bundle.name == "ViT-B-32/laion2b_s34b_b79k" and bundle.image_size == 224
    loaded = bundle.model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in original.state_dict().items())
    images = ShapesWorld(seed=1).sample(3).images
    assert bundle.encode_images(images).shape == (3, 512)
    assert bundle.encode_texts(["a photo of a cat", "a photo of a dog"]).shape == (2, 512)
    mmlesson.load_clip(profile="full", device="cpu")  # the second time from the cache
    assert registry_on_loopback.hits["/good"] == 1


def test_full_profile_offline_says_what_to_do_and_tiny_still_works(monkeypatch, cache):
    entry = replace(assets.REGISTRY[FULL_CLIP_ASSET], urls=(f"http://127.0.0.1:{free_port()}/w",))
    monkeypatch.setitem(assets.REGISTRY, FULL_CLIP_ASSET, entry)
    with pytest.raises(assets.AssetUnavailableError, match="(?s)605.1 MB.*MMLESSON_PROFILE=tiny"):
        mmlesson.load_clip(profile="full", device="cpu")
    assert mmlesson.load_clip(profile="tiny", device="cpu").name == "mmlesson-tiny-clip"


@pytest.mark.slow
def test_a_local_checkpoint_file(published_checkpoint):
    original, path = published_checkpoint
    bundle = mmlesson.load_clip(profile="full", device="cpu", model_name="ViT-B-32", pretrained=str(path))
    key = "visual.conv1.weight"
    assert torch.equal(bundle.model.state_dict()[key], original.state_dict()[key])


@pytest.mark.parametrize(
    "model_name, pretrained, message",
    [
        ("ViT-B-33", "laion2b_s34b_b79k", "no model called 'ViT-B-33'.*ViT-B-32"),
        ("ViT-B-32", "laion9b", "no pretrained tag 'laion9b'.*laion2b_s34b_b79k"),
        ("ViT-B-32", "~/no/such/file.safetensors", "No checkpoint file"),
        ("ViT-B-32", "openai", "could not download ViT-B-32/openai"),  # HF_HUB_OFFLINE=1 in the tests
    ],
)
def test_bad_model_names_and_tags_are_explained(model_name, pretrained, message):
    with pytest.raises(MMLessonError, match=message):
        mmlesson.load_clip(profile="full", device="cpu", model_name=model_name, pretrained=pretrained)
