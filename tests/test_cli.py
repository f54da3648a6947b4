"""`python -m mmlesson doctor | fetch | assets`, as an instructor types them before a workshop."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys

import pytest

from mmlesson.course import assets, cli, training
from mmlesson.course.training import parse_settings
from mmlesson.errors import MMLessonError
from mmlesson.train_dalle import DalleTraining
from mmlesson.train_vqgan import VqganEvaluation, VqganTraining
from tests.helpers import command_gives_the_recorded_settings


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run the real entry point in a fresh interpreter, as a person would."""
    return subprocess.run(
        [sys.executable, "-m", "mmlesson", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


@pytest.mark.slow
def test_doctor_passes_in_the_tiny_profile():
    result = run_cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "profile: tiny" in result.stdout
    assert "[FAIL]" not in result.stdout
    assert "import open_clip" in result.stdout and "CLIP tokenizer works offline" in result.stdout


@pytest.mark.slow
def test_doctor_fails_on_a_bad_device_with_advice():
    result = run_cli("doctor", MMLESSON_DEVICE="tpu")
    assert result.returncode == 1
    assert "[FAIL]" in result.stdout and "MMLESSON_DEVICE" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_doctor_full_profile_reports_missing_weights(capsys, cache):
    assert cli.main(["doctor", "--profile", "full"]) == 1
    out = capsys.readouterr().out
    assert "clip-vit-b-32-laion2b (605.1 MB): missing -> python -m mmlesson fetch --profile full" in out


def test_doctor_reports_an_unwritable_cache(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("MMLESSON_CACHE", str(tmp_path / "file" / "cache"))
    assert cli.main(["doctor"]) == 1
    assert "not writable" in capsys.readouterr().out


def test_fetch_tiny_needs_nothing(capsys):
    assert cli.main(["fetch", "--profile", "tiny"]) == 0
    assert "needs no downloads" in capsys.readouterr().out


@pytest.fixture
def full_profile_on_loopback(monkeypatch, file_server, payload):
    """The registry's full profile, pointed at the test server."""
    asset = assets.Asset(
        "loopback-weights",
        "loopback.bin",
        (file_server.url("/good"),),
        hashlib.sha256(payload).hexdigest(),
        len(payload),
        "test",
        "test",
    )
    monkeypatch.setattr(assets, "REGISTRY", {asset.name: asset})
    return asset


def test_fetch_full_downloads_then_doctor_passes(cache, full_profile_on_loopback, capsys):
    assert cli.main(["fetch", "--profile", "full", "--no-progress"]) == 0
    assert "[ ok ] loopback-weights" in capsys.readouterr().out
    assert (cache / "loopback.bin").is_file()
    assert cli.main(["assets"]) == 0
    assert "cached" in capsys.readouterr().out


def test_fetch_full_offline_exits_nonzero_naming_what_is_missing(
    cache, full_profile_on_loopback, file_server, capsys
):
    file_server.close()
    assert cli.main(["fetch", "--profile", "full", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "could not connect" in out and "loopback.bin" in out and "1 of 1 files are missing" in out
    assert not any(p.name == "loopback.bin" for p in cache.iterdir())


@pytest.mark.slow
def test_unknown_command_and_profile_are_argparse_errors():
    result = run_cli("fetch", "--profile", "huge")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_doctor_accepts_a_read_only_cache_that_holds_everything(
    cache, full_profile_on_loopback, monkeypatch, capsys
):
    assert cli.main(["fetch", "--profile", "full", "--no-progress"]) == 0
    monkeypatch.setattr(assets, "write_problem", lambda folder: PermissionError(errno.EACCES, "denied"))
    assert cli.check_cache("full")[0]
    assert "read-only (shared) and complete for the full profile" in cli.check_cache("full")[1]
    (cache / "loopback.bin").unlink()
    with pytest.raises(MMLessonError, match="not writable"):
        cli.check_cache("full")


def test_fetch_passes_the_deadline_and_notes_a_private_umask(cache, full_profile_on_loopback, capsys):
    previous = os.umask(0o077)
    try:
        assert cli.main(["fetch", "--profile", "full", "--no-progress", "--deadline", "0"]) == 1
    finally:
        os.umask(previous)
    out = capsys.readouterr().out
    assert "your umask is 077" in out and "umask 022" in out
    assert "deadline must be a number of seconds above 0" in out


def test_assets_lists_an_unreadable_file_as_such(cache, full_profile_on_loopback, monkeypatch, capsys):
    def unreadable(name: str) -> bool:
        raise assets.CacheAccessError("belongs to user root")

    monkeypatch.setattr(assets, "is_cached", unreadable)
    assert cli.main(["assets"]) == 0
    assert "unreadable" in capsys.readouterr().out


@pytest.mark.slow
def test_train_writes_weights_and_a_manifest_whose_command_gives_its_settings(tmp_path, capsys, monkeypatch):
    # measured on 100 held-out images instead of 1000 (a minute on one thread): the manifest must say so
    monkeypatch.setattr(training, "VqganEvaluation", lambda: VqganEvaluation(images=100))
    assert cli.main(["train", "vqgan", "--steps", "2", "--batch-size", "2", "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "mmlesson-tiny-vqgan.manifest.json").read_text())
    assert command_gives_the_recorded_settings(manifest["training"], "vqgan", VqganTraining)
    assert manifest["training"]["settings"]["steps"] == 2 and manifest["evaluation"]["images"] == 100
    assert (tmp_path / "mmlesson-tiny-vqgan.safetensors").is_file()
    assert "wrote mmlesson-tiny-vqgan.manifest.json" in capsys.readouterr().out


def test_train_options_are_the_settings_fields():
    with pytest.raises(SystemExit):
        cli.main(["train", "clip", "--no-such-option", "1"])
    settings, _ = parse_settings("dalle", DalleTraining, ["--betas", "0.8", "0.9", "--images", "100"])
    assert settings == DalleTraining(betas=(0.8, 0.9), images=100)
