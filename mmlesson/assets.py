"""Every file the course may download, and the one careful way it downloads them.

The tiny profile downloads nothing: its weights ship inside the package. The full profile needs pretrained
weights (hundreds of MB each). They are listed once, in `REGISTRY`, with every URL we know (mirrors after the
primary), the sha256 we pin, the size, the license and what the course uses them for.

`fetch(name)` is careful because a workshop room is a hostile place for downloads:
- it checks the sha256 of what it got, so a truncated or tampered file is never used;
- it writes to a temporary file and renames it only once the hash matches, so the cache holds either the
  right file or nothing (a failed download leaves no half-file behind);
- it holds a lock per file, so two kernels asking for the same file at once download it once;
- a cached file that no longer matches its hash is deleted and fetched again;
- when every URL fails it says which file, how big, from where, and where to put it by hand.

The downloading itself is pooch's (hash-checked streaming download with a tqdm progress bar).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mmlesson.errors import MMLessonError

if TYPE_CHECKING:
    import torch

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass(frozen=True)
class Asset:
    """One downloadable file: where it comes from, what it must hash to, and why the course needs it."""

    name: str
    filename: str
    urls: tuple[str, ...]
    sha256: str
    size: int
    license: str
    purpose: str
    profiles: tuple[str, ...] = ("full",)


REGISTRY: dict[str, Asset] = {}


def register(asset: Asset) -> Asset:
    """Add an asset to the registry (tests register assets served from 127.0.0.1)."""
    if len(asset.sha256) != 64 or not all(c in "0123456789abcdef" for c in asset.sha256):
        raise ValueError(f"{asset.name}: sha256 must be 64 lowercase hex digits, got {asset.sha256!r}")
    if not asset.urls:
        raise ValueError(f"{asset.name}: at least one URL is needed")
    REGISTRY[asset.name] = asset
    return asset


def unregister(name: str) -> None:
    """Remove an asset added by `register` (used by tests to clean up)."""
    REGISTRY.pop(name, None)


class AssetUnavailableError(MMLessonError):
    """No URL gave a file with the pinned hash; the message says how to get it by hand."""


def get(name: str) -> Asset:
    """The registry entry called `name`, or an error listing the names that exist."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY)) or "(none)"
        raise MMLessonError(f"No asset called {name!r}. Known assets: {known}.") from None


def for_profile(profile: str) -> list[Asset]:
    """The assets a profile needs, in registry order (the tiny profile needs none)."""
    return [asset for asset in REGISTRY.values() if profile in asset.profiles]


def human_size(n_bytes: int) -> str:
    """1234567 -> '1.2 MB' (decimal units, as download pages use)."""
    size = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def cache_dir() -> Path:
    """`MMLESSON_CACHE` if set (instructors point a whole room at one shared folder), else the user cache."""
    configured = os.environ.get("MMLESSON_CACHE", "").strip()
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mmlesson", appauthor=False))


def ensure_writable(folder: Path) -> Path:
    """Create `folder` and prove we can write there, or explain how to choose another one."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise MMLessonError(
            f"The cache folder {folder} is not writable ({error.strerror or error}). Set MMLESSON_CACHE to "
            "a folder you can write to, e.g. `export MMLESSON_CACHE=~/mmlesson-cache` "
            "(Windows: `set MMLESSON_CACHE=%USERPROFILE%\\mmlesson-cache`), then restart the kernel."
        ) from None
    return folder


def local_path(name: str) -> Path:
    """Where asset `name` lives (or will live) in the cache."""
    return cache_dir() / get(name).filename


@contextlib.contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` only when the block succeeds.

    Whoever reads `path` (a learner's next cell, a second process, CI) sees the old file or the new one,
    never half of one; a failed write leaves no temporary file behind.
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def sha256_of(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so a 1 GB checkpoint does not need 1 GB of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def matches(path: Path, sha256: str, size: int | None = None) -> bool:
    """True when the file exists with the expected size (a cheap first test) and hash."""
    if not path.is_file():
        return False
    if size is not None and path.stat().st_size != size:
        return False
    return sha256_of(path) == sha256


def is_cached(name: str) -> bool:
    """True when the asset is in the cache and intact."""
    asset = get(name)
    return matches(cache_dir() / asset.filename, asset.sha256, asset.size)


def reachable(asset: Asset, timeout: float = 3.0) -> bool:
    """True when some URL of the asset answers; a quick probe used by the `auto` profile."""
    import requests

    for url in asset.urls:
        try:
            if requests.head(url, timeout=timeout, allow_redirects=True).status_code == 200:
                return True
        except requests.RequestException:
            continue
    return False


def manual_instructions(asset: Asset, target: Path) -> str:
    """How to get the file by hand when the course cannot download it."""
    urls = "\n".join(f"  - {url}" for url in asset.urls)
    return (
        f"Download {asset.filename} ({human_size(asset.size)}) by hand from any of:\n{urls}\n"
        f"and save it as:\n  {target}\n"
        f"The course checks its sha256 ({asset.sha256}) before using it. "
        "To keep the cache elsewhere (a USB stick, a shared folder), set MMLESSON_CACHE. "
        "Without these weights the tiny profile still works: MMLESSON_PROFILE=tiny."
    )


def fetch(name: str, progress: bool = True, timeout: float = 30.0) -> Path:
    """Return the path of a verified copy of asset `name`, downloading it if needed."""
    from filelock import FileLock

    asset = get(name)
    folder = ensure_writable(cache_dir())
    target = folder / asset.filename
    lock_dir = ensure_writable(folder / ".locks")
    lock = FileLock(str(lock_dir / f"{asset.filename}.lock"))
    try:
        lock.acquire(timeout=0)
    except TimeoutError:
        print(f"Another process is downloading {asset.filename}; waiting for it to finish...")
        lock.acquire()
    try:
        return _fetch_locked(asset, target, progress, timeout)
    finally:
        lock.release()


def _fetch_locked(asset: Asset, target: Path, progress: bool, timeout: float) -> Path:
    """Download under the lock: keep a good copy, drop a corrupt one, try each URL in turn."""
    if matches(target, asset.sha256, asset.size):
        return target
    if target.exists():
        print(
            f"The cached {asset.filename} is incomplete or corrupt (wrong size or sha256): fetching it again."
        )
        target.unlink()
    failures = []
    for number, url in enumerate(asset.urls, start=1):
        try:
            _download(url, asset, target, progress, timeout)
            return target
        except Exception as error:  # noqa: BLE001 - every failure is reported below, with its URL
            failures.append(f"  URL {number}: {_explain(error)}")
    raise AssetUnavailableError(
        f"Could not download {asset.name}:\n"
        + "\n".join(failures)
        + "\n"
        + manual_instructions(asset, target)
    )


def _download(url: str, asset: Asset, target: Path, progress: bool, timeout: float) -> None:
    """One attempt from one URL; pooch streams to a temporary file and renames it only if the hash matches."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")  # pooch would log the full local path of every download
    try:
        pooch.retrieve(
            url,
            known_hash=f"sha256:{asset.sha256}",
            fname=target.name,
            path=target.parent,
            downloader=pooch.HTTPDownloader(progressbar=progress, timeout=timeout),
        )
    finally:
        logger.setLevel(level)


def _explain(error: Exception) -> str:
    """One readable line for a failed download attempt."""
    import requests

    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code} {error.response.reason}"
    if isinstance(error, requests.ConnectionError):
        return "could not connect (offline, or the server is down)"
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "the connection broke off before the whole file arrived"
    if isinstance(error, ValueError) and "hash" in str(error).lower():
        return "the file that arrived does not match the pinned sha256 (truncated or changed on the server)"
    return f"{type(error).__name__}: {error}"


def read_manifest(name: str, weights_dir: Path = WEIGHTS_DIR) -> dict:
    """The manifest that ships beside a model's weights (config, tokenizer, training record, metrics)."""
    path = weights_dir / f"{name}.manifest.json"
    if not path.is_file():
        raise MMLessonError(
            f"The shipped weights of {name} are missing ({path.name} not found): reinstall the course "
            "package (pip install -e . in the course folder), or train them (python -m mmlesson.train "
            "clip, python -m mmlesson.train_vqgan or python -m mmlesson.train_dalle)."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def save_shipped(
    name: str, state: dict[str, torch.Tensor], out: Path, record: dict, texts: dict[str, str] | None = None
) -> Path:
    """Write a trained model the way the course ships it; return the manifest's path.

    The weights go to `{name}.safetensors` in float16 (half the bytes of float32, and the 20 MB budget of
    all shipped weights is tight), each of `texts` ({filename: content}, e.g. a config) beside them, and
    `{name}.manifest.json` lists every file with its sha256 and size, followed by `record` (how the model
    was made and how good it is). `shipped_weights` and `verify_shipped` check the files against it.
    """
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{name}.safetensors"
    save_file({key: value.detach().half().contiguous() for key, value in state.items()}, str(weights))
    files = [weights]
    for filename, content in (texts or {}).items():
        (out / filename).write_text(content, encoding="utf-8")
        files.append(out / filename)
    manifest = {
        "name": name,
        "weights": weights.name,
        "files": {path.name: {"sha256": sha256_of(path), "size": path.stat().st_size} for path in files},
        **record,
    }
    path = out / f"{name}.manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def shipped_weights(name: str, weights_dir: Path = WEIGHTS_DIR) -> tuple[dict, Path]:
    """A shipped model's manifest and the path of its weights, once their sha256 matches the manifest."""
    manifest = read_manifest(name, weights_dir)
    weights = weights_dir / manifest["weights"]
    if not matches(weights, manifest["files"][weights.name]["sha256"]):
        raise MMLessonError(
            f"The shipped weights {weights.name} are damaged (sha256 differs from the manifest): reinstall "
            "the course package (pip install --force-reinstall -e . in the course folder)."
        )
    return manifest, weights


def verify_shipped(weights_dir: Path = WEIGHTS_DIR) -> list[tuple[str, bool, str]]:
    """Check every file named in the manifests beside the shipped weights against its sha256.

    Each manifest (`*.manifest.json`) lists `files: {filename: {"sha256": ..., "size": ...}}`.
    Returns (filename, ok, detail) rows; an empty list means no weights are shipped yet.
    """
    rows = []
    for manifest_path in sorted(weights_dir.glob("*.manifest.json")):
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        for filename, expected in sorted(manifest.get("files", {}).items()):
            path = weights_dir / filename
            if not path.is_file():
                rows.append((filename, False, f"missing (listed in {manifest_path.name})"))
            elif matches(path, expected["sha256"], expected.get("size")):
                rows.append((filename, True, human_size(path.stat().st_size)))
            else:
                rows.append((filename, False, "sha256 mismatch: reinstall the package"))
    return rows


# --- The registry. Hashes and sizes are those of the published files (Hugging Face LFS metadata, and the
# --- same digests pinned independently by other projects); URLs pinned to a revision where the host allows.
_HF_CLIP = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K/resolve/1a25a446712ba5ee05982a381eed697ef9b435cf"
register(
    Asset(
        name="clip-vit-b-32-laion2b",
        filename="open_clip_ViT-B-32_laion2b_s34b_b79k.safetensors",
        urls=(
            f"https://huggingface.co/{_HF_CLIP}/open_clip_model.safetensors",
            f"https://hf-mirror.com/{_HF_CLIP}/open_clip_model.safetensors",
        ),
        sha256="ac4f8c4b88af6d963118cbf40ad93176d092abbedfcb752601ae1866352656e6",
        size=605_143_316,
        license="MIT (LAION model card)",
        purpose="CLIP ViT-B-32 trained on LAION-2B: zero-shot, search and guidance in the full profile",
    )
)
_HEIBOX = "https://heibox.uni-heidelberg.de/d/a7530b09fed84f80a887/files/?p="
_PYTTI = (
    "https://huggingface.co/Somnai/pytti-vqgan-checkpoints/resolve/debc22c8f285c7734980c464ff992d335dde6e9a"
)
register(
    Asset(
        name="vqgan-imagenet-f16-16384",
        filename="vqgan_imagenet_f16_16384.ckpt",
        urls=(
            f"{_HEIBOX}%2Fckpts%2Flast.ckpt&dl=1",
            "https://heibox.uni-heidelberg.de/f/867b05fc8c4841768640/?dl=1",
            f"{_PYTTI}/imagenet/imagenet.ckpt",
        ),
        sha256="845a68805098cb666420d5db93df53f3a3b6dd443e6dd85c05759c5b998cd663",
        size=980_092_370,
        license="code MIT (taming-transformers); the authors state no separate terms for the checkpoint",
        purpose="VQGAN ImageNet f16-16384 (Esser et al.): image tokens and decoder for the full profile",
    )
)
register(
    Asset(
        name="vqgan-imagenet-f16-16384-config",
        filename="vqgan_imagenet_f16_16384.yaml",
        urls=(
            f"{_HEIBOX}%2Fconfigs%2Fmodel.yaml&dl=1",
            "https://heibox.uni-heidelberg.de/f/274fb24ed38341bfa753/?dl=1",
            f"{_PYTTI}/imagenet/imagenet.yaml",
        ),
        sha256="00e2c6189926f1d89ecfef73e9598db77981c1982f0555fbade963ffd16143c7",
        size=692,
        license="MIT (taming-transformers)",
        purpose="the official architecture config of the VQGAN above",
    )
)
