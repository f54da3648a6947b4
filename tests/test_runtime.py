"""Device, profile, threads and seed: every choice, every override, and every bad value."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import mmlesson
from mmlesson import runtime
from mmlesson.course import assets
from mmlesson.errors import MMLessonError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for variable in ("MMLESSON_DEVICE", "MMLESSON_PROFILE", "MMLESSON_THREADS"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(runtime, "_gpu_kind", lambda: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch):
    monkeypatch.setattr(runtime, "_gpu_kind", lambda: "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Test GPU")


def test_setup_prints_device_profile_reason_and_versions(no_gpu, capsys):
    rt = mmlesson.setup()
    out = capsys.readouterr().out
    assert rt.device == torch.device("cpu") and rt.profile == "tiny"
    assert "no GPU found" in out and "profile: tiny" in out
    assert f"torch {torch.__version__}" in out and "open_clip" in out and "cache" in out
    assert repr(rt) == "Runtime(device='cpu', profile='tiny', seed=0)"


def test_setup_shows_home_as_tilde(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MMLESSON_CACHE", str(tmp_path / "course-cache"))
    mmlesson.setup()
    assert "cache  : ~/course-cache" in capsys.readouterr().out


def test_setup_seeds_every_generator():
    mmlesson.setup(seed=7, verbose=False)
    first = torch.rand(3), np.random.rand(), random.random()
    mmlesson.setup(seed=7, verbose=False)
    second = torch.rand(3), np.random.rand(), random.random()
    assert torch.equal(first[0], second[0]) and first[1:] == second[1:]


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, 2**64, 2**70])
def test_bad_seed(seed):
    with pytest.raises(MMLessonError, match="seed must be a non-negative integer"):
        mmlesson.setup(seed=seed, verbose=False)


def test_environment_overrides_auto_and_argument_overrides_environment(monkeypatch, no_gpu):
    monkeypatch.setenv("MMLESSON_PROFILE", "full")
    choice = runtime.choose_profile(None, torch.device("cpu"))
    assert choice.value == "full" and "MMLESSON_PROFILE=full" in choice.reason and "slow" in choice.reason
    assert runtime.choose_profile("tiny", torch.device("cpu")).value == "tiny"


@pytest.mark.parametrize("name", ["huge", "TINYY", ""])
def test_unknown_profile(name, monkeypatch):
    monkeypatch.setenv("MMLESSON_PROFILE", name or "x")
    with pytest.raises(MMLessonError, match="Unknown profile: (profile=|MMLESSON_PROFILE=).*'tiny'.*'full'"):
        runtime.choose_profile(name or None, torch.device("cpu"))


def test_auto_without_gpu_is_tiny(no_gpu):
    choice = runtime.choose_profile(None, torch.device("cpu"))
    assert (choice.value, choice.reason) == (
        "tiny",
        "no GPU found: the tiny profile runs on any CPU, offline",
    )


def test_auto_with_gpu_is_full_when_weights_cached(fake_cuda, monkeypatch):
    monkeypatch.setattr(assets, "is_cached", lambda name: True)
    choice = runtime.choose_profile(None, torch.device("cuda"))
    assert choice.value == "full" and "cached" in choice.reason


def test_auto_with_gpu_is_full_when_weights_reachable(fake_cuda, monkeypatch):
    monkeypatch.setattr(assets, "is_cached", lambda name: False)
    monkeypatch.setattr(assets, "reachable", lambda asset: True)
    choice = runtime.choose_profile(None, torch.device("cuda"))
    assert choice.value == "full" and "GB" in choice.reason


def test_auto_with_gpu_offline_falls_back_to_tiny(fake_cuda, monkeypatch):
    monkeypatch.setattr(assets, "is_cached", lambda name: False)
    monkeypatch.setattr(assets, "reachable", lambda asset: False)
    choice = runtime.choose_profile(None, torch.device("cuda"))
    assert choice.value == "tiny" and "cannot be downloaded" in choice.reason


def test_auto_device_prefers_cuda(fake_cuda):
    assert runtime.choose_device(None).value == "cuda"


def test_auto_device_without_gpu_is_cpu(no_gpu):
    assert runtime.choose_device(None) == runtime.Choice("cpu", "no GPU found")


def test_cuda_requested_without_gpu(monkeypatch, no_gpu):
    monkeypatch.setenv("MMLESSON_DEVICE", "cuda")
    with pytest.raises(
        MMLessonError,
        match="MMLESSON_DEVICE=cuda was requested but no usable NVIDIA GPU.*Unset MMLESSON_DEVICE",
    ):
        mmlesson.setup(verbose=False)


def test_cuda_index_out_of_range(fake_cuda, monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(MMLessonError, match="has 1 GPU"):
        runtime.choose_device("cuda:3")


def test_mps_requested_without_apple_gpu(no_gpu):
    with pytest.raises(MMLessonError, match="no Apple GPU"):
        runtime.choose_device("mps")


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:x", "meta"])
def test_unknown_device(name):
    with pytest.raises(MMLessonError, match="cpu, cuda"):
        runtime.choose_device(name)


def test_threads(monkeypatch):
    assert runtime.choose_threads(3) == 3
    monkeypatch.setenv("MMLESSON_THREADS", "2")
    assert runtime.choose_threads() == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("MMLESSON_THREADS", bad)
        with pytest.raises(MMLessonError, match="positive integer"):
            runtime.choose_threads()


def test_setup_limits_torch_threads():
    before = torch.get_num_threads()
    try:
        assert mmlesson.setup(threads=1, verbose=False).threads == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_current_does_not_reseed(monkeypatch):
    monkeypatch.setattr(runtime, "_current", None)
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    assert runtime.current().profile == "tiny"
    assert torch.equal(torch.rand(1), expected)


def test_available_memory_takes_the_smaller_of_machine_and_container(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemAvailable:    8000000 kB\n")
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    assert runtime.available_memory_bytes(meminfo, cgroup) == 8_000_000 * 1024  # no container files
    (cgroup / "memory.max").write_text("max\n")
    assert runtime.available_memory_bytes(meminfo, cgroup) == 8_000_000 * 1024  # a container without limit
    (cgroup / "memory.max").write_text(f"{2 * 1024**3}\n")  # a 2 GiB Binder seat, 0.5 GiB used
    (cgroup / "memory.current").write_text(f"{1024**3 // 2}\n")
    assert runtime.available_memory_bytes(meminfo, cgroup) == 1.5 * 1024**3
    assert runtime.available_memory_bytes(tmp_path / "none", tmp_path / "none") is None  # macOS, Windows
    assert runtime.available_memory_bytes() is None or runtime.available_memory_bytes() > 0


def test_current_decides_once_until_the_request_changes(monkeypatch):
    monkeypatch.setattr(runtime, "_current", None)
    decisions = []
    real = runtime.resolve
    monkeypatch.setattr(
        runtime, "resolve", lambda *args, **kwargs: decisions.append(1) or real(*args, **kwargs)
    )
    for _ in range(3):
        assert runtime.current().profile == "tiny"  # as every load_* call without setup() asks
    assert len(decisions) == 1
    monkeypatch.setenv("MMLESSON_THREADS", "1")  # the learner asked for something else: decide again
    assert runtime.current().threads == 1 and len(decisions) == 2
    runtime.current()
    assert len(decisions) == 2


def test_the_decision_of_setup_stands_until_the_next_setup(monkeypatch):
    monkeypatch.setattr(runtime, "_current", None)
    chosen = mmlesson.setup(threads=torch.get_num_threads(), verbose=False)
    monkeypatch.setenv("MMLESSON_PROFILE", "full")
    assert runtime.current() is chosen


def test_the_auto_profile_checks_the_cache_once_per_process(fake_cuda, monkeypatch):
    hashed = []
    monkeypatch.setattr(assets, "_is_verified", lambda asset, target: hashed.append(asset.name) or True)
    monkeypatch.setattr(runtime, "_current", None)
    for _ in range(3):
        assert runtime.current().profile == "full"
    assert len(hashed) == len(assets.for_profile("full"))  # one decision, one check per file
