"""The full-profile rehearsal (scripts/rehearse_full_profile.py) and the test hook it relies on.

Fast tests check the hook (mmlesson.course.asset_overrides), the lesson choice, the server, and that the
stand-ins have the published formats: real shapes are read on torch's "meta" device (no memory, no disk),
the writing and loading of files on scaled-down models. One slow test rehearses the cheapest lesson end to
end (it builds 1.6 GB of stand-ins into .rehearsal-cache/ on first use, in seconds, and serves them).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pickletools
import re
import sys
import zipfile
from pathlib import Path

import open_clip
import pytest
import requests
import torch
from safetensors import safe_open

from mmlesson.clip import FULL_CLIP_ASSET
from mmlesson.course import assets
from mmlesson.course.asset_overrides import ENV_VAR, OverrideError, apply_overrides
from mmlesson.vqgan import FULL_VQGAN_ASSET, VQGAN

ROOT = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "rehearse_full_profile", ROOT / "scripts/rehearse_full_profile.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


rehearsal = _load_script()


def small_taming_config() -> dict:
    """The published config with a model small enough to write in a unit test (the loss part unchanged)."""
    config = rehearsal.vqgan_config()
    params = config["model"]["params"]
    params.update(embed_dim=8, n_embed=32)
    params["ddconfig"].update(z_channels=8, resolution=32, ch=32, ch_mult=[1, 2], num_res_blocks=1)
    return config


def tensor_bytes(content: object) -> int:
    if torch.is_tensor(content):
        return content.numel() * content.element_size()
    if isinstance(content, dict):
        return sum(tensor_bytes(value) for value in content.values())
    if isinstance(content, (list, tuple)):
        return sum(tensor_bytes(value) for value in content)
    return 0


def pickled_globals(path: Path) -> set[str]:
    """The globals the checkpoint's pickle names (read with pickletools: nothing is run)."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
    return {arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}


# -- the hook ----------------------------------------------------------------------------------------------


@pytest.fixture
def overrides_file(tmp_path):
    def write(content: object) -> dict[str, str]:
        path = tmp_path / "overrides.json"
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
        return {ENV_VAR: str(path)}

    return write


GOOD = {FULL_CLIP_ASSET: {"url": "http://127.0.0.1:9/clip.safetensors", "sha256": "ab" * 32, "size": 12}}


def test_without_the_variable_the_registry_is_unchanged_and_nothing_is_said(capsys):
    for environ in ({}, {ENV_VAR: ""}, {ENV_VAR: "   "}):
        assert apply_overrides(assets.REGISTRY, environ) == assets.REGISTRY
    assert capsys.readouterr() == ("", "")


def test_with_the_variable_listed_assets_are_replaced_loudly(overrides_file):
    said, before = [], dict(assets.REGISTRY)
    result = apply_overrides(assets.REGISTRY, overrides_file(GOOD), announce=said.append)
    entry = result[FULL_CLIP_ASSET]
    assert entry.urls == ("http://127.0.0.1:9/clip.safetensors",) and entry.sha256 == "ab" * 32
    assert entry.size == 12 and entry.filename == assets.REGISTRY[FULL_CLIP_ASSET].filename
    assert result[FULL_VQGAN_ASSET] == assets.REGISTRY[FULL_VQGAN_ASSET]
    assert assets.REGISTRY == before  # a copy: the pinned entries themselves never change
    assert (
        len(said) == 1 and "TEST STAND-INS" in said[0] and FULL_CLIP_ASSET in said[0] and ENV_VAR in said[0]
    )


def test_the_announcement_goes_to_stderr(overrides_file, capsys):
    apply_overrides(assets.REGISTRY, overrides_file(GOOD))
    out, err = capsys.readouterr()
    assert out == "" and "TEST STAND-INS" in err


@pytest.mark.parametrize(
    "content, reason",
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ({"clip-vit-b-99": GOOD[FULL_CLIP_ASSET]}, "no asset called 'clip-vit-b-99'.*clip-vit-b-32-laion2b"),
        ({FULL_CLIP_ASSET: {"url": "http://x", "sha256": "ab" * 32}}, "exactly the fields url, sha256, size"),
        ({FULL_CLIP_ASSET: {**GOOD[FULL_CLIP_ASSET], "sha256": "AB" * 32}}, "64 lowercase hex"),
        ({FULL_CLIP_ASSET: {**GOOD[FULL_CLIP_ASSET], "size": "12"}}, "size must be a positive number"),
        ({FULL_CLIP_ASSET: {**GOOD[FULL_CLIP_ASSET], "url": "ftp://x"}}, "http"),
        ({FULL_CLIP_ASSET: {**GOOD[FULL_CLIP_ASSET], "url": "file:///etc/passwd"}}, "http"),
    ],
)
def test_a_malformed_file_is_refused_with_its_reason(overrides_file, content, reason):
    with pytest.raises(OverrideError, match=f"(?s){ENV_VAR}=.*is refused: .*{reason}.*unset it"):
        apply_overrides(assets.REGISTRY, overrides_file(content), announce=lambda line: None)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(OverrideError, match="cannot read it"):
        apply_overrides(assets.REGISTRY, {ENV_VAR: str(tmp_path / "nowhere.json")})


# -- choosing lessons ----------------------------------------------------------------------------------


def test_lessons_are_found_by_number_and_an_unknown_one_is_named_with_those_that_exist(capsys):
    available = rehearsal.available_lessons()
    assert "02" in available and available["02"].name.startswith("02_")
    assert rehearsal.choose_lessons(["4", "02", "04"], available) == ["04", "02"]
    assert rehearsal.choose_lessons([], available) == list(available)
    assert rehearsal.main(["02", "99"]) == 2
    message = capsys.readouterr().err
    assert "No lesson 99" in message and "02 (02_zero_shot)" in message and "00 (00_setup)" in message


# -- the stand-ins ------------------------------------------------------------------------------------------


def test_the_config_is_the_published_file_byte_for_byte():
    content = rehearsal.VQGAN_CONFIG_YAML.encode()
    published = assets.REGISTRY[FULL_VQGAN_ASSET + "-config"]
    assert hashlib.sha256(content).hexdigest() == published.sha256 and len(content) == published.size
    params = rehearsal.vqgan_config()["model"]["params"]
    assert params["n_embed"] == 16384 and params["ddconfig"]["ch_mult"] == [1, 1, 2, 2, 4]


def test_the_clip_stand_in_has_the_published_keys_shapes_and_size():
    with torch.device("meta"):
        state = rehearsal.clip_state(device="meta")
        reference = open_clip.create_model("ViT-B-32", pretrained=None, device="meta").state_dict()
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in reference.items()}
    assert all(v.dtype == torch.float32 for v in state.values())
    header = assets.REGISTRY[FULL_CLIP_ASSET].size - tensor_bytes(state)  # 8 bytes of length + JSON header
    assert 8 < header < 64_000


def test_the_clip_stand_in_file_is_open_clips_state_dict_in_safetensors(tmp_path):
    path = tmp_path / "open_clip_model.safetensors"
    rehearsal.write_clip_standin(path, model_name="RN50-quickgelu")  # any open_clip model; a small one here
    with safe_open(str(path), "pt") as stored:
        shapes = {key: stored.get_slice(key).get_shape() for key in stored.keys()}
        assert stored.metadata() == {"format": "pt"}
    reference = open_clip.create_model("RN50-quickgelu", pretrained=None).state_dict()
    assert shapes == {key: list(value.shape) for key, value in reference.items()}


def test_the_vqgan_checkpoint_has_the_published_content_and_size():
    with torch.device("meta"):
        content = rehearsal.vqgan_checkpoint(rehearsal.vqgan_config())
    assert set(content) == {
        "epoch", "global_step", "pytorch-lightning_version", "callbacks", "optimizer_states", "lr_schedulers",
        "state_dict",
    }  # fmt: skip
    state = content["state_dict"]
    with torch.device("meta"):
        model = VQGAN(rehearsal.vqgan_config()["model"]["params"])
    assert {k for k in state if not k.startswith("loss.")} == set(model.state_dict())
    for key, shape in [
        ("loss.perceptual_loss.net.slice1.0.weight", (64, 3, 3, 3)),
        ("loss.perceptual_loss.net.slice5.28.weight", (512, 512, 3, 3)),
        ("loss.perceptual_loss.lin0.model.1.weight", (1, 64, 1, 1)),
        ("loss.discriminator.main.0.weight", (64, 3, 4, 4)),
        ("loss.discriminator.main.8.weight", (1, 256, 4, 4)),
        ("quantize.embedding.weight", (16384, 256)),
    ]:
        assert tuple(state[key].shape) == shape, key
    autoencoder, discriminator = content["optimizer_states"]
    assert len(autoencoder["state"]) == len(list(model.parameters()))  # a moment pair per parameter
    assert len(discriminator["state"]) == 10  # 4 convolutions (2 without bias), 2 batch norms
    gap = assets.REGISTRY[FULL_VQGAN_ASSET].size - tensor_bytes(content)  # pickle and zip records
    assert 0 < gap < 1_000_000


def test_the_vqgan_checkpoint_file_is_a_lightning_checkpoint_the_course_loads(tmp_path):
    config = small_taming_config()
    content = rehearsal.vqgan_checkpoint(config, seed=1)
    path = tmp_path / "last.ckpt"
    rehearsal.write_lightning_checkpoint(content, path)
    assert pickled_globals(path) == {
        "collections OrderedDict",
        "torch._utils _rebuild_tensor_v2",
        "torch FloatStorage",
        "torch LongStorage",
        "pytorch_lightning.callbacks.model_checkpoint ModelCheckpoint",
    }
    from mmlesson import vqgan

    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    weights = vqgan.model_state_dict(path, sha256)
    model = VQGAN(config["model"]["params"])
    model.load_state_dict(weights)  # strict: exactly the model's keys, no loss.* left
    assert torch.equal(
        weights["quantize.embedding.weight"], content["state_dict"]["quantize.embedding.weight"]
    )


def test_stand_ins_are_reproducible():
    config = small_taming_config()
    first, second = (rehearsal.vqgan_checkpoint(config, seed=3) for _ in range(2))
    assert all(torch.equal(first["state_dict"][k], second["state_dict"][k]) for k in first["state_dict"])


# -- serving ------------------------------------------------------------------------------------------------


def test_the_server_serves_the_stand_ins_and_nothing_else(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text(rehearsal.VQGAN_CONFIG_YAML, encoding="utf-8")
    standin = rehearsal.StandIn("x", path, hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size)
    with rehearsal.StandInServer({"x": path}) as server:
        assert requests.get(server.url(path), timeout=10).content == path.read_bytes()
        assert requests.get(server.url(tmp_path / "other.yaml"), timeout=10).status_code == 404
        overrides = rehearsal.write_overrides({FULL_CLIP_ASSET: standin}, server, tmp_path / "o.json")
        entry = apply_overrides(assets.REGISTRY, {ENV_VAR: str(overrides)}, lambda _: None)[FULL_CLIP_ASSET]
        assert entry.urls == (server.url(path),) and entry.sha256 == standin.sha256
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url(path), timeout=2)


def test_the_kernel_runs_a_first_full_profile_run_offline(tmp_path):
    env = rehearsal.kernel_environment(tmp_path / "o.json", tmp_path / "cache")
    assert env["MMLESSON_PROFILE"] == "full" and env["MMLESSON_CACHE"] == str(tmp_path / "cache")
    assert env["HF_HUB_OFFLINE"] == "1" and env[ENV_VAR] == str(tmp_path / "o.json")


def test_a_quality_check_failure_is_not_an_error():
    result = rehearsal.LessonResult("05", quality_failures=["cell 33: AssertionError"])
    assert result.status.startswith("pass") and "stand-in weights" in result.status
    assert rehearsal.LessonResult("05", errors=["cell 3: KeyError"]).status == "FAIL"


# -- end to end ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_cheapest_lesson_rehearses_in_the_full_profile(capsys):
    assert rehearsal.main([rehearsal.CHEAPEST_LESSON, "--quiet"]) == 0
    table = capsys.readouterr().out
    assert re.search(rf"^{rehearsal.CHEAPEST_LESSON}\s+pass\s+\d+", table, re.MULTILINE), table


def test_cached_stand_ins_are_reused_only_while_intact_and_of_this_builder(tmp_path):
    files = {}
    for asset in (rehearsal.CLIP_ASSET, rehearsal.VQGAN_ASSET, rehearsal.CONFIG_ASSET):
        path = tmp_path / f"{asset}.bin"
        path.write_bytes(asset.encode())
        files[asset] = {
            "file": path.name,
            "sha256": hashlib.sha256(asset.encode()).hexdigest(),
            "size": len(asset),
        }
    version = {"builder": rehearsal.BUILDER_VERSION, "seed": 0, "open_clip": open_clip.__version__}
    record = tmp_path / "standins.json"
    record.write_text(json.dumps({**version, "files": files}))
    reused = rehearsal._reusable(record, tmp_path, version)
    assert (
        reused is not None and reused[rehearsal.CLIP_ASSET].path == tmp_path / f"{rehearsal.CLIP_ASSET}.bin"
    )
    assert rehearsal._reusable(record, tmp_path, {**version, "builder": -1}) is None
    (tmp_path / f"{rehearsal.VQGAN_ASSET}.bin").write_bytes(b"x" * len(rehearsal.VQGAN_ASSET))  # same size
    assert rehearsal._reusable(record, tmp_path, version) is None
