"""The download path a learner's `fetch` takes, run for real against a server on 127.0.0.1.

After every scenario the cache must hold either the right file or nothing: never a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmlesson import assets
from mmlesson.errors import MMLessonError
from tests.conftest import FileServer, free_port


@pytest.fixture
def make_asset(payload: bytes):
    """Register a throw-away asset whose URLs point at the test server; removed afterwards."""
    names = []

    def make(*urls: str, sha256: str | None = None) -> assets.Asset:
        asset = assets.Asset(
            name=f"test-asset-{len(names)}",
            filename=f"test-asset-{len(names)}.bin",
            urls=urls,
            sha256=sha256 or hashlib.sha256(payload).hexdigest(),
            size=len(payload),
            license="test",
            purpose="test",
            profiles=("test",),
        )
        names.append(asset.name)
        return assets.register(asset)

    yield make
    for name in names:
        assets.unregister(name)


def cache_files(cache: Path) -> list[str]:
    """What a learner would find in the cache (lock files live apart, in .locks/)."""
    return sorted(p.name for p in cache.iterdir() if p.name != ".locks") if cache.exists() else []


def test_normal_download_lands_verified(cache, file_server, make_asset, payload):
    asset = make_asset(file_server.url("/good"))
    path = assets.fetch(asset.name, progress=False)
    assert path == cache / asset.filename
    assert path.read_bytes() == payload
    assert cache_files(cache) == [asset.filename]
    assert assets.is_cached(asset.name)


def test_cached_file_is_not_downloaded_again(cache, file_server, make_asset):
    asset = make_asset(file_server.url("/good"))
    assets.fetch(asset.name, progress=False)
    assets.fetch(asset.name, progress=False)
    assert file_server.hits["/good"] == 1


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/truncated", "broke off|does not match"),
        ("/wrong", "does not match the pinned sha256"),
        ("/missing", "HTTP 404"),
        ("/gone", "broke off|does not match"),
    ],
)
def test_failed_download_leaves_nothing(cache, file_server, make_asset, path, reason):
    asset = make_asset(file_server.url(path))
    with pytest.raises(assets.AssetUnavailableError, match=reason) as error:
        assets.fetch(asset.name, progress=False)
    message = str(error.value)
    assert asset.filename in message and file_server.url(path) in message  # what, and from where
    assert str(cache / asset.filename) in message  # where to put it by hand
    assert "MMLESSON_PROFILE=tiny" in message
    assert cache_files(cache) == []


def test_server_gone_then_mirror_succeeds(cache, file_server, make_asset, payload):
    mirror = FileServer(payload)
    try:
        asset = make_asset(file_server.url("/gone"), mirror.url("/good"))
        assert assets.fetch(asset.name, progress=False).read_bytes() == payload
        assert cache_files(cache) == [asset.filename]
    finally:
        mirror.close()


def test_offline_message_names_file_size_and_urls(cache, make_asset):
    url = f"http://127.0.0.1:{free_port()}/weights.bin"
    asset = make_asset(url)
    with pytest.raises(assets.AssetUnavailableError) as error:
        assets.fetch(asset.name, progress=False)
    message = str(error.value)
    assert "could not connect" in message
    assert url in message and assets.human_size(asset.size) in message
    assert cache_files(cache) == []


def test_corrupt_cached_file_is_fetched_again(cache, file_server, make_asset, payload, capsys):
    asset = make_asset(file_server.url("/good"))
    cache.mkdir(parents=True)
    (cache / asset.filename).write_bytes(payload[:-1] + b"X")  # same size, one byte changed
    assert not assets.is_cached(asset.name)
    assert assets.fetch(asset.name, progress=False).read_bytes() == payload
    assert "corrupt" in capsys.readouterr().out


def test_corrupt_cached_file_is_removed_even_when_offline(cache, make_asset, payload):
    asset = make_asset(f"http://127.0.0.1:{free_port()}/weights.bin")
    cache.mkdir(parents=True)
    (cache / asset.filename).write_bytes(payload[:100])
    with pytest.raises(assets.AssetUnavailableError):
        assets.fetch(asset.name, progress=False)
    assert cache_files(cache) == []


def test_two_processes_fetching_at_once_download_once(cache, file_server, make_asset, payload):
    asset = make_asset(file_server.url("/slow"))
    script = textwrap.dedent(
        f"""
        from mmlesson import assets
        assets.register(assets.Asset(name={asset.name!r}, filename={asset.filename!r}, urls={asset.urls!r},
                        sha256={asset.sha256!r}, size={asset.size}, license="t", purpose="t"))
        print(assets.fetch({asset.name!r}, progress=False))
        """
    )
    kernels = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [kernel.communicate(timeout=60)[0] for kernel in kernels]
    assert all(kernel.returncode == 0 for kernel in kernels), outputs
    assert all(output.strip().endswith(asset.filename) for output in outputs)
    assert file_server.hits["/slow"] == 1
    assert (cache / asset.filename).read_bytes() == payload
    assert cache_files(cache) == [asset.filename]


def test_unwritable_cache_gets_advice(tmp_path, monkeypatch, make_asset, file_server):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MMLESSON_CACHE", str(blocker / "cache"))
    asset = make_asset(file_server.url("/good"))
    with pytest.raises(MMLessonError, match="not writable.*MMLESSON_CACHE"):
        assets.fetch(asset.name, progress=False)


def test_unknown_asset_lists_known_names():
    with pytest.raises(MMLessonError, match="clip-vit-b-32-laion2b"):
        assets.get("no-such-weights")


def test_registry_entries_are_complete():
    full = assets.for_profile("full")
    assert {a.name for a in full} >= {"clip-vit-b-32-laion2b", "vqgan-imagenet-f16-16384"}
    for asset in assets.REGISTRY.values():
        assert len(asset.sha256) == 64 and asset.size > 0 and asset.license and asset.purpose
        assert all(url.startswith(("https://", "http://")) for url in asset.urls)
    assert assets.for_profile("tiny") == []


def test_register_rejects_bad_hash():
    with pytest.raises(ValueError, match="64 lowercase hex"):
        assets.register(assets.Asset("x", "x", ("http://x",), "abc", 1, "t", "t"))


def test_cache_dir_defaults_to_user_cache(monkeypatch):
    monkeypatch.delenv("MMLESSON_CACHE")
    assert "mmlesson" in str(assets.cache_dir())
    monkeypatch.setenv("MMLESSON_CACHE", "~/somewhere")
    assert assets.cache_dir() == Path.home() / "somewhere"


def test_verify_shipped_detects_missing_and_tampered(tmp_path):
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    good.write_bytes(b"weights")
    bad.write_bytes(b"tampered")
    files = {
        "good.safetensors": {"sha256": hashlib.sha256(b"weights").hexdigest(), "size": 7},
        "bad.safetensors": {"sha256": hashlib.sha256(b"weights").hexdigest(), "size": 8},
        "gone.safetensors": {"sha256": "0" * 64, "size": 1},
    }
    (tmp_path / "tiny.manifest.json").write_text(json.dumps({"files": files}))
    rows = {name: ok for name, ok, _ in assets.verify_shipped(tmp_path)}
    assert rows == {"bad.safetensors": False, "gone.safetensors": False, "good.safetensors": True}
