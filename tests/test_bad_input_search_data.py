"""Bad input to `mmlesson.data` and `mmlesson.search`, in one table: what has been tried, and what happens.

Each row is an id, a call, and the outcome expected: an error (types it must be, a fragment of its message)
or a correct result. Rows under "handled before issue 16" passed before that review; they stay so that the
next reviewer sees what has been tried. The other rows failed before it.

Some calls could take the whole machine on a broken implementation (resizing a 3 KB PNG of 1,000,000 x 1
pixels needs ~12 GB; FAISS with m=-1 allocates ~24 GB, with m=0 it aborts the process, with m=1 it
crashes). They run together in one child process allowed to map only 4 GB more than its imports did (torch
alone maps ~3 GB of address space), so they can only fail, never kill the test run; each row asserts its own
clear message, and every row fails if the child dies. Checks of read permission run in one child that
becomes user `nobody` once its imports are done (Python itself lies under /root, which nobody may not
enter): the tests run as root, who may read any file whatever its mode. The "as_nobody" rows' fixture says
how it decides.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from mmlesson import search
from mmlesson.course import index_file
from mmlesson.course.index_file import FORMAT
from mmlesson.data import ShapesWorld
from mmlesson.errors import MMLessonError
from mmlesson.images import load_image
from mmlesson.search import ImageIndex

HEADROOM = 4 * 2**30  # the address space a child may map beyond what its imports mapped
THIN = (1_000_000, 1)  # a 3 KB PNG that resizes to 64 x 64,000,000 pixels for a 64-pixel model


# ---------------------------------------------------------------------------------------------------------
# The world the calls run in: a bundle, a small index, and files of every kind in a folder user nobody can
# enter (pytest's own tmp_path is not: /tmp/pytest-of-root is private to root).


@dataclass
class World:
    bundle: Any
    images: list[Image.Image]
    index: ImageIndex  # of `images`, with the bundle
    folder: Path
    saved: Path  # an index file with one skipped item
    vector: torch.Tensor  # a unit vector of the index's dimension
    counter: Iterator[int] = field(default_factory=itertools.count)

    @cached_property
    def approx_index(self) -> ImageIndex:
        """200 random float32 vectors: enough for every FAISS parameter to matter, quick to index."""
        vectors = search.synthetic_embeddings(200, 16, seed=0, dtype=torch.float32)
        return ImageIndex(vectors, [str(i) for i in range(200)], "random")

    def fresh(self, suffix: str = ".safetensors") -> Path:
        return self.folder / f"made-{next(self.counter)}{suffix}"

    def edited(self, edit: Callable[[bytes], bytes]) -> Path:
        """A copy of the saved index with its bytes changed by `edit` (which must change something)."""
        content = self.saved.read_bytes()
        changed = edit(content)
        assert changed != content, "the edit did not change the file"
        path = self.fresh()
        path.write_bytes(changed)
        return path

    def crafted(
        self,
        version: int = 2,
        embeddings: torch.Tensor | None = None,
        ids: bytes | None = None,
        extra: dict[str, torch.Tensor] | None = None,
        drop: tuple[str, ...] = (),
        **metadata: str,
    ) -> Path:
        """An index file written by hand, with a checksum that matches it (unless `sha256` is given): what
        an attacker, or a bug in another tool, could produce."""
        embeddings = self.index.embeddings if embeddings is None else embeddings
        ids = json.dumps(self.index.ids).encode() if ids is None else ids
        ids_tensor = torch.tensor(list(ids), dtype=torch.uint8)
        header = {"format": FORMAT, "version": str(version), "model": "test-clip", "skipped": "[]"}
        header = {key: value for key, value in (header | metadata).items() if key not in drop}
        if "sha256" not in metadata and "sha256" not in drop:
            header["sha256"] = (
                checksum_v1(embeddings, ids_tensor, header.get("model", ""))
                if version == 1
                else index_file._checksum(embeddings, ids_tensor, header)
            )
        path = self.fresh()
        save_file({"embeddings": embeddings, "ids": ids_tensor} | (extra or {}), str(path), header)
        return path

    def resaved(self, change: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]) -> Path:
        """The saved index written again with its tensors changed and its header (checksum too) kept."""
        with safe_open(str(self.saved), framework="pt") as file:
            header = file.metadata()
            tensors = {name: file.get_tensor(name) for name in file.keys()}
        path = self.fresh()
        save_file(change(tensors), str(path), header)
        return path


def checksum_v1(embeddings: torch.Tensor, ids: torch.Tensor, model: str) -> str:
    """Format 1's checksum, written out here so these rows run against any version of search.py."""
    digest = hashlib.sha256(embeddings.numpy().tobytes())
    digest.update(ids.numpy().tobytes())
    digest.update(b"\0" + model.encode())
    return digest.hexdigest()


def write_files(folder: Path, images: list[Image.Image]) -> None:
    images[0].save(folder / "a.png")
    images[1].save(folder / "b.png")
    Image.new("RGB", THIN).save(folder / "thin.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    (folder / "cut.png").write_bytes((folder / "a.png").read_bytes()[:60])
    (folder / "no_images").mkdir()
    (folder / "no_images" / "notes.txt").write_text("not an image extension")
    gallery = folder / "gallery"
    gallery.mkdir()
    for name in ("a.png", "b.png", "thin.png"):
        shutil.copy(folder / name, gallery / name)
    for locked in (folder / "locked_folder", folder / "gallery_locked"):
        locked.mkdir()
        shutil.copy(folder / "a.png", locked / "a.png")
    shutil.copy(folder / "a.png", folder / "locked.png")
    shutil.copy(folder / "a.png", folder / "gallery_locked" / "locked.png")
    save_file({"embeddings": torch.ones(2, 4)}, str(folder / "weights.safetensors"))
    (folder / "garbage.safetensors").write_bytes(bytes(range(256)) * 4)
    (folder / "empty.safetensors").write_bytes(b"")


LOCKED = ("locked.png", "gallery_locked/locked.png", "locked.safetensors", "locked_folder")


def lock(folder: Path, mode: int = 0) -> None:
    """chmod 000 the files and the folder that the permission rows try to read (`mode` to undo it)."""
    for path in LOCKED:
        (folder / path).chmod(mode)


@pytest.fixture(scope="module")
def world(bundle) -> Iterator[World]:
    images = ShapesWorld(seed=0).sample(6).images
    index = ImageIndex.build(bundle, images, batch_size=4, progress=False)
    folder = Path(tempfile.mkdtemp(prefix="mmlesson-bad-input-"))
    folder.chmod(0o755)
    write_files(folder, images)
    with_skipped = ImageIndex(index.embeddings, index.ids, index.model_name, skipped=[("x.png", "empty")])
    saved = with_skipped.save(folder / "index.safetensors")
    shutil.copy(saved, folder / "locked.safetensors")
    lock(folder)
    vector = torch.nn.functional.normalize(
        torch.randn(index.dim, generator=torch.Generator().manual_seed(0)), dim=0
    )
    yield World(bundle, images, index, folder, saved, vector)
    lock(folder, 0o755)  # not root: a folder of mode 000 cannot be emptied
    shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# Outcomes


@dataclass(frozen=True)
class Raises:
    """The call raises an error that is an instance of each of `types`, its message matching `fragment`."""

    types: tuple[type, ...]
    fragment: str

    def check(self, type_names: list[str], message: str) -> None:
        missing = [t.__name__ for t in self.types if t.__name__ not in type_names]
        assert not missing, f"raised {type_names[0]}, which is not a {', '.join(missing)}: {message}"
        assert re.search(self.fragment, message), f"{self.fragment!r} not in the message: {message}"


@dataclass(frozen=True)
class Returns:
    """The call returns a result for which `check(result, world)` holds (`what` says what it checks)."""

    check: Callable[[Any, World], bool]
    what: str


@dataclass(frozen=True)
class Prints:
    """A child's call sets a `result` whose repr matches `fragment`."""

    fragment: str


@dataclass(frozen=True)
class Child:
    """Python code run in a child process (see the module docstring); it sets `result` or raises.

    It may use: folder, bundle, shapes_index (an index of 4 Shapes images with the bundle), index (200
    random vectors), ImageIndex, load_image, Image, Path, np, torch. `as_nobody` runs it as user nobody.
    """

    code: str
    as_nobody: bool = False


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[World], Any] | Child
    expect: Raises | Returns | Prints


def learner_error(fragment: str) -> Raises:
    """A ValueError that is an MMLessonError too: the learner can fix it, the message says how."""
    return Raises((MMLessonError, ValueError), fragment)


# "is damaged" alone where the file is an index by its header and layout but fails its checksum
DAMAGED = learner_error(
    r"is damaged( or is not an image index saved by ImageIndex.save)? \(.+\): rebuild the index$"
)


@contextmanager
def image_pixel_limit(limit: int) -> Iterator[None]:
    old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def with_pixel_limit(call: Callable[[World], Any]) -> Callable[[World], Any]:
    """`call` with PIL's decompression-bomb limit at 50 pixels: a 64 x 64 image is then over twice the limit,
    which PIL refuses (under twice, it only warns)."""

    def limited(w: World) -> Any:
        with image_pixel_limit(100 // 2):
            return call(w)

    return limited


def same_hits(hits: list, expected: list) -> bool:
    return [(h.index, round(h.score, 5)) for h in hits] == [(h.index, round(h.score, 5)) for h in expected]


def set_version(content: bytes, version: bytes) -> bytes:
    return re.sub(rb'"version":"[0-9]+"', b'"version":"' + version + b'"', content, count=1)


def flip_last_byte(content: bytes) -> bytes:
    return content[:-1] + bytes([content[-1] ^ 0x01])


# ---------------------------------------------------------------------------------------------------------
# The table

CASES = [
    # == images.load_image, handled before issue 16 ==
    Case(
        "image-missing-file",
        lambda w: load_image(w.folder / "nowhere.png"),
        Raises((FileNotFoundError,), "no file at .*check the spelling"),
    ),
    Case(
        "image-directory",
        lambda w: load_image(w.folder),
        Raises((ValueError,), "is a directory; pass one image file"),
    ),
    Case(
        "image-url",
        lambda w: load_image("https://example.org/cat.jpg"),
        Raises((ValueError,), "download .* first"),
    ),
    Case(
        "image-empty-file",
        lambda w: load_image(w.folder / "empty.png"),
        Raises((ValueError,), r"empty \(0 bytes\)"),
    ),
    Case(
        "image-text-file",
        lambda w: load_image(w.folder / "text.png"),
        Raises((ValueError,), "not an image file"),
    ),
    Case(
        "image-truncated-file",
        lambda w: load_image(w.folder / "cut.png"),
        Raises((ValueError,), "truncated or corrupt"),
    ),
    Case(
        "image-decompression-bomb",
        with_pixel_limit(lambda w: load_image(w.folder / "a.png")),
        Raises((ValueError,), "too large to open safely"),
    ),
    Case(
        "image-array-channels-first",
        lambda w: load_image(np.zeros((3, 8, 8), np.uint8)),
        Raises((ValueError,), "channels first"),
    ),
    Case(
        "image-array-out-of-range",
        lambda w: load_image(np.full((4, 4), 300.0)),
        Raises((ValueError,), r"float images must lie in \[0, 1\]"),
    ),
    Case(
        "image-array-negative-ints",
        lambda w: load_image(np.full((4, 4), -1)),
        Raises((ValueError,), "0..255 or 0..65535"),
    ),
    Case("image-array-empty", lambda w: load_image(np.zeros((0, 4))), Raises((ValueError,), "is empty")),
    Case(
        "image-array-complex",
        lambda w: load_image(np.zeros((4, 4), complex)),
        Raises((TypeError,), "use uint8, uint16, bool or float"),
    ),
    Case(
        "image-not-an-image",
        lambda w: load_image(42),
        Raises((TypeError,), "takes a PIL image, a file path or a numpy array"),
    ),
    Case(
        "image-torch-tensor",
        lambda w: load_image(torch.zeros(3, 8, 8)),
        Raises((TypeError,), r"permute\(1, 2, 0\)"),
    ),
    Case(
        "image-50-to-1-still-loads",
        lambda w: load_image(np.zeros((1, 50), np.uint8)),
        Returns(lambda r, w: r.size == (50, 1), "a 50:1 image loads"),
    ),
    # == images.load_image, issue 16 ==
    Case(
        "image-thin-png",
        lambda w: load_image(w.folder / "thin.png"),
        learner_error(r"thin.png is 1000000 x 1 pixels.*aspect ratio 1,000,000:1.*crop"),
    ),
    Case(
        "image-thin-pil",
        lambda w: load_image(Image.new("L", (1000, 1))),
        learner_error("aspect ratio 1,000:1"),
    ),
    Case(
        "image-tall-array",
        lambda w: load_image(np.zeros((5000, 10), np.uint8)),
        learner_error("aspect ratio 500:1"),
    ),
    Case(
        "image-resized-too-large",
        lambda w: load_image(np.zeros((100, 1000, 3), np.uint8), resize_to=2000),
        learner_error("resized so that its shorter side is 2000.*40,000,000 pixels"),
    ),
    Case(
        "image-resize-to-zero",
        lambda w: load_image(w.images[0], resize_to=0),
        Raises((ValueError,), "resize_to must be a positive integer"),
    ),
    Case(
        "image-pil-empty",
        lambda w: load_image(Image.new("RGB", (0, 5))),
        learner_error(r"is empty \(0 x 5 pixels\)"),
    ),
    Case(
        "image-array-nan",
        lambda w: load_image(np.full((4, 4, 3), np.nan)),
        learner_error(r"NaN or infinite values.*np.nan_to_num"),
    ),
    Case(
        "image-array-inf",
        lambda w: load_image(np.array([[0.5, np.inf]])),
        learner_error("NaN or infinite values"),
    ),
    Case(
        "image-pil-float-nan",
        lambda w: load_image(Image.fromarray(np.full((4, 4), np.nan, np.float32))),
        learner_error("NaN or infinite values"),
    ),
    Case(
        "image-file-unreadable",
        Child('result = load_image(folder / "locked.png")', as_nobody=True),
        learner_error("locked.png cannot be read: permission denied"),
    ),
    Case(
        "image-in-unreadable-folder",
        Child('result = load_image(folder / "locked_folder" / "a.png")', as_nobody=True),
        learner_error("cannot be read: permission denied"),
    ),
    Case(
        "clip-encode-thin-png",
        Child('result = bundle.encode_images(folder / "thin.png")'),
        learner_error("aspect ratio 1,000,000:1"),
    ),
    # == ImageIndex.build, handled before issue 16 ==
    Case(
        "build-empty-list",
        lambda w: ImageIndex.build(w.bundle, [], progress=False),
        Raises((ValueError,), "the gallery is empty"),
    ),
    Case(
        "build-folder-without-images",
        lambda w: ImageIndex.build(w.bundle, w.folder / "no_images", progress=False),
        Raises((ValueError,), "the gallery is empty"),
    ),
    Case(
        "build-not-a-folder",
        lambda w: ImageIndex.build(w.bundle, w.folder / "nowhere", progress=False),
        Raises((ValueError,), "is not a folder"),
    ),
    Case(
        "build-nothing-readable",
        lambda w: ImageIndex.build(w.bundle, [w.folder / "empty.png", w.folder / "text.png"], progress=False),
        Raises((ValueError,), "none of the 2 images could be read"),
    ),
    Case(
        "build-skips-broken-items",
        lambda w: ImageIndex.build(
            w.bundle, [w.images[0], w.folder / "cut.png", 42, w.images[1]], progress=False
        ),
        Returns(
            lambda r, w: (
                r.ids == ["0", "3"] and [i for i, _ in r.skipped] == [str(w.folder / "cut.png"), "2"]
            ),
            "ids 0 and 3 kept, 1 and 2 skipped",
        ),
    ),
    Case(
        "build-skips-decompression-bomb",
        with_pixel_limit(
            lambda w: ImageIndex.build(w.bundle, [w.images[0], w.folder / "a.png"], progress=False)
        ),
        Returns(
            lambda r, w: r.ids == ["0"] and "too large to open safely" in r.skipped[0][1], "the bomb skipped"
        ),
    ),
    Case(
        "build-batch-size-zero",
        lambda w: ImageIndex.build(w.bundle, w.images, batch_size=0, progress=False),
        Raises((ValueError,), "batch_size must be a positive integer"),
    ),
    Case(
        "build-dtype-bfloat16",
        lambda w: ImageIndex.build(w.bundle, w.images, progress=False, dtype=torch.bfloat16),
        Raises((ValueError,), "float32 or float16"),
    ),
    Case(
        "index-nan-embeddings",
        lambda w: ImageIndex(torch.tensor([[1.0, float("nan")]]), ["a"], "m"),
        Raises((ValueError,), "finite"),
    ),
    Case(
        "index-zero-row",
        lambda w: ImageIndex(torch.zeros(1, 4), ["a"], "m"),
        Raises((ValueError,), "all zeros"),
    ),
    Case(
        "index-ids-count",
        lambda w: ImageIndex(torch.ones(2, 4), ["a"], "m"),
        Raises((ValueError,), r"one id per row"),
    ),
    # == ImageIndex.build, issue 16 ==
    Case(
        "build-thin-png-in-folder",
        Child(
            'built = ImageIndex.build(bundle, folder / "gallery", progress=False)\n'
            "result = [Path(i).name for i in built.ids], built.skipped"
        ),
        Prints(r"\['a\.png', 'b\.png'\], \[\('[^']*thin\.png', .*aspect ratio 1,000,000:1"),
    ),
    Case(
        "build-unreadable-file-skipped",
        Child(
            'result = ImageIndex.build(bundle, folder / "gallery_locked", progress=False).skipped',
            as_nobody=True,
        ),
        Prints(r"locked\.png', '[^']*cannot be read: permission denied"),
    ),
    Case(
        "build-unreadable-folder",
        Child('result = ImageIndex.build(bundle, folder / "locked_folder", progress=False)', as_nobody=True),
        learner_error(r"the folder \S*locked_folder cannot be read: permission denied"),
    ),
    Case(
        "build-one-image-not-a-list",
        lambda w: ImageIndex.build(w.bundle, w.images[0], progress=False),
        learner_error(r"for one image pass \[image\]"),
    ),
    Case(
        "build-batch-size-numpy",
        lambda w: ImageIndex.build(w.bundle, w.images, batch_size=np.int64(4), progress=False),
        Returns(lambda r, w: torch.allclose(r.embeddings, w.index.embeddings, atol=1e-5), "the same index"),
    ),
    Case(
        "build-batch-size-bool",
        lambda w: ImageIndex.build(w.bundle, w.images, batch_size=True, progress=False),
        learner_error("batch_size must be a positive integer"),
    ),
    # == search queries, handled before issue 16 ==
    Case(
        "search-k-zero",
        lambda w: w.index.search("a red circle", k=0),
        Raises((ValueError,), "k must be a positive integer"),
    ),
    Case(
        "search-k-negative",
        lambda w: w.index.search("a red circle", k=-1),
        Raises((ValueError,), "k must be a positive integer"),
    ),
    Case(
        "search-k-float",
        lambda w: w.index.search("a red circle", k=2.5),
        Raises((ValueError,), "k must be a positive integer"),
    ),
    Case(
        "search-k-bool",
        lambda w: w.index.search("a red circle", k=True),
        Raises((ValueError,), "k must be a positive integer"),
    ),
    Case(
        "search-k-beyond-gallery",
        lambda w: w.index.search("a red circle", k=100),
        Returns(lambda r, w: sorted(h.index for h in r) == list(range(6)), "all 6 images"),
    ),
    Case(
        "search-embedding-wrong-length",
        lambda w: w.index.search(torch.ones(w.index.dim + 1)),
        Raises((ValueError,), "must be 1-D of length"),
    ),
    Case(
        "search-embedding-zeros",
        lambda w: w.index.search(np.zeros(w.index.dim, np.float32)),
        Raises((ValueError,), "not all zeros"),
    ),
    Case(
        "search-embedding-nan",
        lambda w: w.index.search(torch.full((w.index.dim,), float("nan"))),
        Raises((ValueError,), "finite"),
    ),
    Case(
        "search-numpy-image-uint8",
        lambda w: w.index.search(np.asarray(w.images[2]), k=1),
        Returns(lambda r, w: r[0].index == 2, "the image itself first"),
    ),
    Case(
        "search-text-without-bundle",
        lambda w: ImageIndex.load(w.saved).search("a red circle"),
        Raises((ValueError,), r"clip="),
    ),
    Case(
        "search-not-a-query",
        lambda w: w.index.search(42),
        Raises((TypeError,), "search takes a text, a PIL image"),
    ),
    Case(
        "search-many-one-string",
        lambda w: w.index.search_many("a red circle"),
        Raises((TypeError,), "for one query use search"),
    ),
    Case("search-many-nothing", lambda w: w.index.search_many([]), Raises((ValueError,), "no queries")),
    Case(
        "search-many-3d",
        lambda w: w.index.search_many(torch.ones(2, 3, w.index.dim)),
        Raises((ValueError,), r"must be \[Q, "),
    ),
    Case(
        "search-many-nan-row",
        lambda w: w.index.search_many(torch.stack([w.vector, torch.full_like(w.vector, float("nan"))])),
        Raises((ValueError,), "finite"),
    ),
    # == search queries, issue 16 ==
    Case(
        "search-k-numpy",
        lambda w: w.index.search(w.vector, k=np.int64(3)),
        Returns(lambda r, w: same_hits(r, w.index.search(w.vector, k=3)), "the same 3 hits as k=3"),
    ),
    Case(
        "search-k-numpy-zero",
        lambda w: w.index.search(w.vector, k=np.int64(0)),
        learner_error("k must be a positive integer"),
    ),
    Case(
        "search-numpy-1xD-embedding",
        lambda w: w.index.search(w.vector.numpy()[None], k=3),
        Returns(lambda r, w: same_hits(r, w.index.search(w.vector, k=3)), "read as an embedding"),
    ),
    Case(
        "search-torch-1xD-embedding",
        lambda w: w.index.search(w.vector[None], k=3),
        Returns(lambda r, w: same_hits(r, w.index.search(w.vector, k=3)), "read as an embedding"),
    ),
    Case(
        "search-many-numpy-1xD-rows",
        lambda w: w.index.search_many([w.vector.numpy()[None]], k=2),
        Returns(lambda r, w: same_hits(r[0], w.index.search(w.vector, k=2)), "read as an embedding"),
    ),
    Case(
        "search-pixel-tensor",
        lambda w: w.index.search(torch.rand(3, 64, 64)),
        learner_error("a tensor is read as an embedding: pass an image as a PIL image or a Path"),
    ),
    Case(
        "search-string-array",
        lambda w: w.index.search(np.array(["x"] * w.index.dim)),
        learner_error("must hold real numbers"),
    ),
    Case(
        "search-complex-embedding",
        lambda w: w.index.search(torch.ones(w.index.dim, dtype=torch.complex64)),
        learner_error("must hold real numbers"),
    ),
    Case(
        "search-thin-png",
        Child('result = shapes_index.search(folder / "thin.png")'),
        learner_error("aspect ratio 1,000,000:1"),
    ),
    Case(
        "search-thin-pil-image",
        Child("result = shapes_index.search(Image.new('RGB', (1_000_000, 1)))"),
        learner_error("aspect ratio 1,000,000:1"),
    ),
    # == approximate search (FAISS), handled before issue 16 ==
    Case(
        "faiss-unknown-kind",
        lambda w: w.approx_index.approximate("lsh"),
        Raises((ValueError,), "unknown kind 'lsh'"),
    ),
    Case(
        "faiss-kind-not-a-string",
        lambda w: w.approx_index.approximate(5),
        Raises((ValueError,), "unknown kind 5"),
    ),
    Case(
        "faiss-unknown-parameter",
        lambda w: w.approx_index.approximate("ivf", ef_search=10),
        Raises((ValueError,), r"unknown ivf parameters \['ef_search'\]"),
    ),
    Case(
        "faiss-ef-search-below-k",
        lambda w: w.approx_index.approximate("hnsw", ef_search=1).search(w.approx_index.embeddings[0], k=10),
        Returns(lambda r, w: len(r) == 10, "10 hits: FAISS keeps at least k candidates"),
    ),
    Case(
        "faiss-k-zero",
        lambda w: w.approx_index.approximate("hnsw").search(w.approx_index.embeddings[0], k=0),
        Raises((ValueError,), "k must be a positive integer"),
    ),
    # == approximate search (FAISS), issue 16 ==
    Case(
        "faiss-unknown-parameter-lists-known",
        lambda w: w.approx_index.approximate("hnsw", efsearch=10),
        learner_error(r"unknown hnsw parameters \['efsearch'\]; it takes m, ef_search, ef_construction"),
    ),
    Case(
        "faiss-hnsw-m-minus-1",
        Child('result = index.approximate("hnsw", m=-1)'),
        learner_error("m must be a whole number from 2 to 256, got -1"),
    ),
    Case(
        "faiss-hnsw-m-0",
        Child('result = index.approximate("hnsw", m=0)'),
        learner_error("m must be a whole number from 2 to 256, got 0"),
    ),
    Case(
        "faiss-hnsw-m-1",
        Child('result = index.approximate("hnsw", m=1)'),
        learner_error("m must be a whole number from 2 to 256, got 1: .*FAISS crashes below 2"),
    ),
    Case(
        "faiss-hnsw-m-true",
        Child('result = index.approximate("hnsw", m=True)'),
        learner_error("m must be a whole number from 2 to 256, got True"),
    ),
    Case(
        "faiss-hnsw-m-257",
        lambda w: w.approx_index.approximate("hnsw", m=257),
        learner_error("m must be a whole number from 2 to 256, got 257"),
    ),
    Case(
        "faiss-hnsw-m-float",
        lambda w: w.approx_index.approximate("hnsw", m=2.5),
        learner_error("m must be a whole number from 2 to 256, got 2.5"),
    ),
    Case(
        "faiss-hnsw-m-numpy",
        lambda w: w.approx_index.approximate("hnsw", m=np.int64(8)).search(w.approx_index.embeddings[3], k=1),
        Returns(lambda r, w: r[0].index == 3, "a vector finds itself"),
    ),
    Case(
        "faiss-hnsw-ef-search-minus-1",
        lambda w: w.approx_index.approximate("hnsw", ef_search=-1),
        learner_error("ef_search must be a whole number from 1 to 4096, got -1"),
    ),
    Case(
        "faiss-hnsw-ef-search-0",
        lambda w: w.approx_index.approximate("hnsw", ef_search=0),
        learner_error("ef_search must be a whole number from 1 to 4096"),
    ),
    Case(
        "faiss-hnsw-ef-search-huge",
        lambda w: w.approx_index.approximate("hnsw", ef_search=10**6),
        learner_error("ef_search must be a whole number from 1 to 4096"),
    ),
    Case(
        "faiss-hnsw-ef-construction-0",
        lambda w: w.approx_index.approximate("hnsw", ef_construction=0),
        learner_error("ef_construction must be a whole number from 1 to 4096, got 0"),
    ),
    Case(
        "faiss-hnsw-ef-construction-huge",
        lambda w: w.approx_index.approximate("hnsw", ef_construction=10**6),
        learner_error("ef_construction must be a whole number from 1 to 4096"),
    ),
    Case(
        "faiss-hnsw-ef-construction-ok",
        lambda w: (
            w.approx_index.approximate("hnsw", ef_construction=np.int32(80)).faiss_index.hnsw.efConstruction
        ),
        Returns(lambda r, w: r == 80, "FAISS got 80"),
    ),
    Case(
        "faiss-ivf-nlist-0",
        lambda w: w.approx_index.approximate("ivf", nlist=0),
        learner_error("nlist must be a whole number from 1 to 200, got 0"),
    ),
    Case(
        "faiss-ivf-nlist-minus-1",
        lambda w: w.approx_index.approximate("ivf", nlist=-1),
        learner_error("nlist must be a whole number from 1 to 200"),
    ),
    Case(
        "faiss-ivf-nlist-over-n",
        lambda w: w.approx_index.approximate("ivf", nlist=201),
        learner_error("nlist must be a whole number from 1 to 200, got 201"),
    ),
    Case(
        "faiss-ivf-nlist-bool",
        lambda w: w.approx_index.approximate("ivf", nlist=True),
        learner_error("nlist must be a whole number from 1 to 200, got True"),
    ),
    Case(
        "faiss-ivf-nprobe-0",
        lambda w: w.approx_index.approximate("ivf", nprobe=0),
        learner_error("nprobe must be a whole number from 1 to 14, got 0"),
    ),
    Case(
        "faiss-ivf-nprobe-over-nlist",
        lambda w: w.approx_index.approximate("ivf", nlist=8, nprobe=9),
        learner_error("nprobe must be a whole number from 1 to 8, got 9"),
    ),
    Case(
        "faiss-ivf-nprobe-minus-1",
        lambda w: w.approx_index.approximate("ivf", nlist=8, nprobe=-1),
        learner_error("nprobe must be a whole number from 1 to 8"),
    ),
    Case(
        "faiss-ivf-numpy-params",
        lambda w: w.approx_index.approximate("ivf", nlist=np.int64(8), nprobe=np.int64(8)).search(
            w.approx_index.embeddings[5], k=1
        ),
        Returns(lambda r, w: r[0].index == 5, "a vector finds itself"),
    ),
    Case(
        "faiss-k-numpy",
        lambda w: w.approx_index.approximate("hnsw").search(w.approx_index.embeddings[0], k=np.int64(4)),
        Returns(lambda r, w: len(r) == 4, "4 hits"),
    ),
    # == index files, handled before issue 16 ==
    Case(
        "load-missing-file",
        lambda w: ImageIndex.load(w.folder / "nowhere.safetensors"),
        Raises((FileNotFoundError,), "no index file at"),
    ),
    Case(
        "load-truncated",
        lambda w: ImageIndex.load(w.edited(lambda b: b[: len(b) // 2])),
        Raises((ValueError,), "damaged.*rebuild the index"),
    ),
    Case(
        "load-flipped-embedding-byte",
        lambda w: ImageIndex.load(w.edited(flip_last_byte)),
        Raises((ValueError,), "damaged.*rebuild the index"),
    ),
    Case(
        "load-edited-id",
        lambda w: ImageIndex.load(w.edited(lambda b: b.replace(b'"3"', b'"7"', 1))),
        Raises((ValueError,), "damaged.*rebuild the index"),
    ),
    Case(
        "load-edited-model-name",
        lambda w: ImageIndex.load(w.edited(lambda b: b.replace(b"test-clip", b"test-clop", 1))),
        Raises((ValueError,), "damaged.*rebuild the index"),
    ),
    Case(
        "load-png-file",
        lambda w: ImageIndex.load(w.folder / "a.png"),
        Raises((ValueError,), "not an image index"),
    ),
    Case(
        "load-empty-file",
        lambda w: ImageIndex.load(w.folder / "empty.safetensors"),
        Raises((ValueError,), "not an image index"),
    ),
    Case(
        "load-random-bytes",
        lambda w: ImageIndex.load(w.folder / "garbage.safetensors"),
        Raises((ValueError,), "not an image index"),
    ),
    Case(
        "load-other-safetensors",
        lambda w: ImageIndex.load(w.folder / "weights.safetensors"),
        Raises((ValueError,), "not an image index"),
    ),
    Case(
        "load-newer-version",
        lambda w: ImageIndex.load(w.edited(lambda b: set_version(b, b"9"))),
        Raises((ValueError,), "saved by a newer mmlesson"),
    ),
    Case(
        "load-other-model",
        lambda w: ImageIndex.load(w.saved, replace(w.bundle, name="another-clip")),
        Raises((ValueError,), "built with test-clip, you passed another-clip"),
    ),
    Case(
        "load-format-1-still-loads",
        lambda w: ImageIndex.load(w.crafted(version=1, skipped='[["x.png", "empty"]]')),
        Returns(
            lambda r, w: r.ids == w.index.ids and r.skipped == [("x.png", "empty")], "ids and skipped back"
        ),
    ),
    # == index files, issue 16 ==
    Case(
        "load-flipped-skipped-byte",
        lambda w: ImageIndex.load(w.edited(lambda b: b.replace(b"empty", b"emptY", 1))),
        DAMAGED,
    ),
    Case("load-directory", lambda w: ImageIndex.load(w.folder), DAMAGED),
    Case(
        "load-unreadable-file",
        Child('result = ImageIndex.load(folder / "locked.safetensors")', as_nobody=True),
        Raises((MMLessonError,), "cannot be read: permission denied"),
    ),
    Case(
        "load-version-not-a-number",
        lambda w: ImageIndex.load(w.edited(lambda b: set_version(b, b"x"))),
        DAMAGED,
    ),
    Case(
        "load-reshaped-embeddings",
        lambda w: ImageIndex.load(
            w.resaved(lambda t: t | {"embeddings": t["embeddings"].reshape(-1, w.index.dim // 2)})
        ),
        DAMAGED,
    ),
    Case("load-v1-ids-not-json", lambda w: ImageIndex.load(w.crafted(version=1, ids=b"\xff[")), DAMAGED),
    Case("load-v1-ids-not-a-list", lambda w: ImageIndex.load(w.crafted(version=1, ids=b'{"a": 1}')), DAMAGED),
    Case(
        "load-v1-ids-numbers",
        lambda w: ImageIndex.load(w.crafted(version=1, ids=json.dumps(list(range(6))).encode())),
        DAMAGED,
    ),
    Case("load-v1-too-few-ids", lambda w: ImageIndex.load(w.crafted(version=1, ids=b'["a"]')), DAMAGED),
    Case(
        "load-v1-skipped-not-json", lambda w: ImageIndex.load(w.crafted(version=1, skipped="[oops")), DAMAGED
    ),
    Case(
        "load-v1-skipped-triples",
        lambda w: ImageIndex.load(w.crafted(version=1, skipped="[[1, 2, 3]]")),
        DAMAGED,
    ),
    Case("load-v1-skipped-number", lambda w: ImageIndex.load(w.crafted(version=1, skipped="[1]")), DAMAGED),
    Case("load-v1-no-model", lambda w: ImageIndex.load(w.crafted(version=1, drop=("model",))), DAMAGED),
    Case(
        "load-v1-nan-embeddings",
        lambda w: ImageIndex.load(
            w.crafted(version=1, embeddings=torch.full((6, w.index.dim), float("nan")))
        ),
        DAMAGED,
    ),
    Case("load-no-checksum", lambda w: ImageIndex.load(w.crafted(drop=("sha256",))), DAMAGED),
    Case("load-no-skipped-list", lambda w: ImageIndex.load(w.crafted(drop=("skipped",))), DAMAGED),
    Case(
        "load-skipped-nested-too-deep", lambda w: ImageIndex.load(w.crafted(skipped="[" * 100_000)), DAMAGED
    ),
    Case(
        "load-zero-row",
        lambda w: ImageIndex.load(
            w.crafted(embeddings=torch.cat([w.index.embeddings[:5], torch.zeros(1, w.index.dim)]))
        ),
        DAMAGED,
    ),
    Case(
        "load-no-rows",
        lambda w: ImageIndex.load(w.crafted(embeddings=torch.zeros(0, w.index.dim), ids=b"[]")),
        DAMAGED,
    ),
    Case(
        "load-float64-embeddings",
        lambda w: ImageIndex.load(w.crafted(embeddings=w.index.embeddings.double())),
        DAMAGED,
    ),
    Case(
        "load-3d-embeddings",
        lambda w: ImageIndex.load(w.crafted(embeddings=w.index.embeddings[None])),
        DAMAGED,
    ),
    Case("load-extra-tensor", lambda w: ImageIndex.load(w.crafted(extra={"code": torch.zeros(3)})), DAMAGED),
    Case(
        "load-ids-not-bytes",
        lambda w: ImageIndex.load(w.resaved(lambda t: t | {"ids": t["ids"].float()})),
        DAMAGED,
    ),
]


def outcome_of(call: Callable[[World], Any], world: World) -> dict[str, Any]:
    try:
        return {"result": call(world)}
    except Exception as error:  # the table says which errors are right
        return {"raised": [c.__name__ for c in type(error).__mro__], "message": str(error)}


@pytest.mark.parametrize(
    "case",
    # the rows in a child process wait for it to start PyTorch (seconds): slow
    [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if isinstance(c.call, Child) else []) for c in CASES],
)
def test_bad_input(case: Case, world: World, request: pytest.FixtureRequest) -> None:
    if isinstance(case.call, Child):
        outcomes = request.getfixturevalue("nobody_outcomes" if case.call.as_nobody else "child_outcomes")
        outcome = outcomes[case.id]
    else:
        outcome = outcome_of(case.call, world)
    if isinstance(case.expect, Raises):
        assert "raised" in outcome, f"expected an error, got {outcome.get('result')!r}"
        case.expect.check(outcome["raised"], outcome["message"])
    elif "raised" in outcome:
        pytest.fail(f"raised {outcome['raised'][0]}: {outcome['message']}")
    elif isinstance(case.expect, Prints):
        assert re.search(case.expect.fragment, outcome["result"]), outcome["result"]
    else:
        assert case.expect.check(outcome["result"], world), f"expected {case.expect.what}"


def test_table_ids_are_unique() -> None:
    assert len({case.id for case in CASES}) == len(CASES)


# ---------------------------------------------------------------------------------------------------------
# Child processes

CHILD = """
import json, os, pwd, resource, sys
from pathlib import Path

import numpy as np
import torch
import faiss
from PIL import Image

from mmlesson import data, search, train_clip
from mmlesson.clip import bundle_from_model
from mmlesson.images import load_image
from mmlesson.search import ImageIndex

folder, codes, headroom, user = Path(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
model, tokenizer = train_clip.new_tiny_clip(width=64, layers=1)
bundle = bundle_from_model(model.eval(), tokenizer, "test-clip", torch.device("cpu"))
shapes_index = ImageIndex.build(bundle, data.ShapesWorld(seed=0).sample(4).images, progress=False)
vectors = search.synthetic_embeddings(200, 16, seed=0, dtype=torch.float32)
index = ImageIndex(vectors, [str(i) for i in range(200)], "random")

mapped = int(Path("/proc/self/status").read_text().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (mapped + headroom, mapped + headroom))

if user:  # Python itself lies in /root, which nobody may not enter: start as root, then become nobody
    Image.init()  # import every lazily imported module the calls use while they can still be read
    ImageIndex.build(bundle, [folder / "a.png"], progress=False)
    ImageIndex.load(folder / "index.safetensors")
    account = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)

outcomes = {}
for name, code in codes.items():
    scope = dict(globals())
    try:
        exec(code, scope)
        outcomes[name] = {"result": repr(scope.get("result"))}
    except Exception as error:
        outcomes[name] = {"raised": [c.__name__ for c in type(error).__mro__], "message": str(error)}
print(json.dumps(outcomes))
"""


def run_children(codes: dict[str, str], folder: Path, user: str = "") -> dict[str, dict]:
    """Run `codes` in one child process (as `user` once set up, if given) and return each one's outcome."""
    env = os.environ | {"HOME": str(folder), "PYTHONDONTWRITEBYTECODE": "1", "MMLESSON_CACHE": str(folder)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), json.dumps(codes), str(HEADROOM), user],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=folder,
        env=env,
    )
    assert done.returncode == 0, f"the child died (exit status {done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def child_outcomes(world: World) -> dict[str, dict]:
    """The outcomes of the other child-process rows, run together in one child (PyTorch starts once)."""
    codes = {c.id: c.call.code for c in CASES if isinstance(c.call, Child) and not c.call.as_nobody}
    return run_children(codes, world.folder)


@pytest.fixture(scope="module")
def nobody_outcomes(world: World) -> dict[str, dict]:
    """The outcomes of every `as_nobody` row, run together in one child process as user nobody."""
    user = ""  # not root: chmod 000 stops this user's own reads
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("nobody").pw_name
        except KeyError:
            pytest.skip("as root, chmod 000 does not stop reads, and there is no user nobody to run as")
    codes = {c.id: c.call.code for c in CASES if isinstance(c.call, Child) and c.call.as_nobody}
    return run_children(codes, world.folder, user)
