"""Image search: embed a gallery once with CLIP, then find the images closest to a text, an image or a vector.

Because `ClipBundle` returns L2-normalized embeddings, the cosine similarity of a query with every gallery
image is one matrix-vector product, and the best `k` are `torch.topk` of it: exact search, fast enough for
the hundred thousand images a laptop holds. `ImageIndex.approximate` hands the same vectors to FAISS (an
optional dependency: `pip install faiss-cpu`) for the millions where exact search gets slow, and
`recall_at_k` measures what that speed costs.

An index is saved as one `.safetensors` file, never a pickle: opening a shared index cannot run code. The
header records the model that made the embeddings (vectors of different models are not comparable), the
items' ids and a sha256 checksum, so a damaged file is refused instead of giving quietly wrong answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from tqdm.auto import tqdm

from mmlesson.clip import ClipBundle, ImageInput, check_batch_size
from mmlesson.data import load_image

FORMAT = "mmlesson-image-index"
FORMAT_VERSION = 1
FAISS_PARAMS = {"ivf": {"nlist", "nprobe"}, "hnsw": {"m", "ef_search"}}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"}

Query = str | ImageInput | torch.Tensor


@dataclass(frozen=True)
class Hit:
    """One search result: its rank (0 = best), its position in the gallery, its id and cosine similarity."""

    rank: int
    index: int
    id: str
    score: float


class ImageIndex:
    """Normalized image embeddings with the ids of the images and the name of the model that made them.

    Build one with `ImageIndex.build(bundle, images)` or `ImageIndex.load(path, bundle)`. `skipped` lists
    the (id, reason) of every item the build could not read.
    """

    def __init__(
        self,
        embeddings: torch.Tensor,
        ids: Sequence[str],
        model_name: str,
        bundle: ClipBundle | None = None,
        skipped: Sequence[tuple[str, str]] = (),
    ) -> None:
        if embeddings.ndim != 2 or len(embeddings) != len(ids):
            raise ValueError(
                f"embeddings must be [N, D] with one id per row; "
                f"got {tuple(embeddings.shape)} and {len(ids)} ids"
            )
        if len(ids) == 0:
            raise ValueError("an image index needs at least one image")
        self.embeddings = F.normalize(embeddings.detach().float().cpu(), dim=-1).contiguous()
        self.ids = [str(i) for i in ids]
        self.model_name = model_name
        self.bundle = bundle
        self.skipped = list(skipped)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"ImageIndex({len(self)} images, dim={self.dim}, model={self.model_name!r})"

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    @classmethod
    def build(
        cls,
        bundle: ClipBundle,
        images: Sequence[ImageInput] | str | Path,
        batch_size: int = 64,
        progress: bool = True,
    ) -> ImageIndex:
        """Embed every readable image of `images` (a list, or a folder whose image files are taken sorted).

        A gallery gathered from the web always holds a few broken files; they are skipped and listed in
        `index.skipped` with the reason, so one bad file does not cost the whole build.
        """
        check_batch_size(batch_size)
        items, ids = _gallery(images)
        embeddings, kept_ids, skipped = [], [], []
        with tqdm(total=len(items), desc="Embedding images", unit="image", disable=not progress) as bar:
            for start in range(0, len(items), batch_size):
                loaded, loaded_ids = _load_batch(items[start : start + batch_size], ids[start:], skipped)
                if loaded:
                    embeddings.append(bundle.encode_images(loaded, batch_size=batch_size))
                    kept_ids += loaded_ids
                bar.update(min(batch_size, len(items) - start))
        if not kept_ids:
            reasons = "; ".join(f"{item}: {reason}" for item, reason in skipped[:3])
            raise ValueError(f"none of the {len(items)} images could be read ({reasons})")
        return cls(torch.cat(embeddings), kept_ids, bundle.name, bundle, skipped)

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        """The `k` gallery images most similar to `query`, best first (exact cosine similarity).

        query: a text (a `str` is always read as text; pass a `pathlib.Path` for an image file), a PIL
        image, a numpy image array, or an embedding (a 1-D tensor or numpy array of length `dim`).
        """
        _check_k(k)
        scores = self.embeddings @ self.query_vector(query)
        top = torch.topk(scores, min(k, len(self)))
        return self._hits(top.indices.tolist(), top.values.tolist())

    def query_vector(self, query: Query) -> torch.Tensor:
        """The normalized embedding [D] of a query, computed with the index's model where needed."""
        if isinstance(query, torch.Tensor) or (isinstance(query, np.ndarray) and query.ndim == 1):
            return self._check_embedding(torch.as_tensor(query))
        if isinstance(query, str):
            return self._require_bundle("a text query").encode_texts(query)[0]
        if isinstance(query, (Image.Image, Path, np.ndarray)):
            return self._require_bundle("an image query").encode_images(query)[0]
        raise TypeError(
            "search takes a text, a PIL image, a Path, an image array or an embedding, "
            f"got {type(query).__name__}"
        )

    def save(self, path: str | Path) -> Path:
        """Write the index to one `.safetensors` file, atomically: a failed save leaves no partial file."""
        path = Path(path)
        ids_json = json.dumps(self.ids)
        metadata = {
            "format": FORMAT,
            "version": str(FORMAT_VERSION),
            "model": self.model_name,
            "ids": ids_json,
            "skipped": json.dumps(self.skipped),
            "sha256": _checksum(self.embeddings, ids_json, self.model_name),
        }
        _write_atomically(path, safetensors_bytes({"embeddings": self.embeddings}, metadata))
        return path

    @classmethod
    def load(cls, path: str | Path, bundle: ClipBundle | None = None) -> ImageIndex:
        """Read an index saved by `save`; pass the `bundle` that built it to search by text or image.

        Refuses a damaged file, a file that is not an index, and a bundle of another model.
        """
        path = Path(path)
        embeddings, metadata = _read_index_file(path)
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{path} is a safetensors file but not an image index saved by ImageIndex.save")
        if int(metadata.get("version", 0)) > FORMAT_VERSION:
            raise ValueError(f"{path} was saved by a newer mmlesson; upgrade it (pip install -U mmlesson)")
        if metadata.get("sha256") != _checksum(
            embeddings, metadata.get("ids", ""), metadata.get("model", "")
        ):
            raise ValueError(
                f"{path} is damaged (its checksum does not match its contents): rebuild the index"
            )
        model = metadata["model"]
        if bundle is not None and bundle.name != model:
            raise ValueError(
                f"{path} was built with {model}, you passed {bundle.name}: embeddings of different models "
                f"are not comparable. Load the model {model}, or rebuild the index with yours."
            )
        skipped = [tuple(pair) for pair in json.loads(metadata.get("skipped", "[]"))]
        return cls(embeddings, json.loads(metadata["ids"]), model, bundle, skipped)

    def approximate(self, kind: str = "ivf", **params: int) -> ApproximateIndex:
        """An approximate FAISS index over the same embeddings (needs `pip install faiss-cpu`).

        kind "ivf": k-means cells, searching `nprobe` of `nlist` cells; "hnsw": a neighbour graph with `m`
        links per node, searching `ef_search` candidates. Larger `nprobe`/`ef_search`: better recall, slower.
        """
        return ApproximateIndex(self, _faiss_index(self.embeddings.numpy(), kind, params), kind)

    def _hits(self, indices: list[int], scores: list[float]) -> list[Hit]:
        return [Hit(rank, i, self.ids[i], score) for rank, (i, score) in enumerate(zip(indices, scores))]

    def _check_embedding(self, vector: torch.Tensor) -> torch.Tensor:
        if vector.ndim != 1 or len(vector) != self.dim:
            raise ValueError(
                f"an embedding query must be 1-D of length {self.dim} (this index's dimension); "
                f"got shape {tuple(vector.shape)}, length {vector.shape[-1] if vector.ndim else 0}"
            )
        vector = vector.detach().float().cpu()
        if not torch.isfinite(vector).all() or not vector.any():
            raise ValueError("an embedding query must be finite and not all zeros")
        return F.normalize(vector, dim=0)

    def _require_bundle(self, what: str) -> ClipBundle:
        if self.bundle is None:
            raise ValueError(
                f"{what} needs the CLIP model that built this index ({self.model_name}): load the index with "
                "ImageIndex.load(path, bundle=...), or search with an embedding"
            )
        return self.bundle


class ApproximateIndex:
    """A FAISS index over an `ImageIndex`'s embeddings, searched like it (inner product = cosine)."""

    def __init__(self, exact: ImageIndex, faiss_index: Any, kind: str) -> None:
        self.exact = exact
        self.faiss_index = faiss_index
        self.kind = kind

    def __len__(self) -> int:
        return len(self.exact)

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        """The approximate `k` best gallery images for `query` (same queries as `ImageIndex.search`)."""
        _check_k(k)
        vector = self.exact.query_vector(query).numpy()[None]
        scores, indices = self.faiss_index.search(vector, min(k, len(self)))
        found = indices[0] >= 0  # FAISS pads with -1 when the cells it searched hold fewer than k images
        return self.exact._hits(indices[0][found].tolist(), scores[0][found].tolist())

    def recall(self, queries: Sequence[Query], k: int = 10) -> float:
        """recall@k of this index against exact search over `queries` (see `recall_at_k`)."""
        exact = [self.exact.search(q, k) for q in queries]
        return recall_at_k(exact, [self.search(q, k) for q in queries])


def recall_at_k(exact_hits: Sequence[Sequence[Hit]], approx_hits: Sequence[Sequence[Hit]]) -> float:
    """The share of the exact top-k that the approximate search also found, averaged over queries."""
    if len(exact_hits) != len(approx_hits) or not exact_hits:
        raise ValueError(
            f"need the same, nonzero number of queries; got {len(exact_hits)} and {len(approx_hits)}"
        )
    shares = [
        len({h.index for h in exact} & {h.index for h in approx}) / len(exact)
        for exact, approx in zip(exact_hits, approx_hits)
    ]
    return float(np.mean(shares))


def _gallery(images: Sequence[ImageInput] | str | Path) -> tuple[list, list[str]]:
    """The items to embed and their ids: a file's path, else the item's position in the list."""
    if isinstance(images, (str, Path)):
        folder = Path(images).expanduser()
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder; pass a folder of images or a list of images")
        items = sorted(
            (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: p.name,
        )
    else:
        items = list(images)
    if not items:
        raise ValueError(
            f"the gallery is empty: {images!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    ids = [str(item) if isinstance(item, (str, Path)) else str(k) for k, item in enumerate(items)]
    return items, ids


def _load_batch(
    items: list, ids: list[str], skipped: list[tuple[str, str]]
) -> tuple[list[Image.Image], list[str]]:
    """Load the readable items of a batch; record each unreadable one in `skipped` and carry on."""
    loaded, loaded_ids = [], []
    for item, item_id in zip(items, ids):
        try:
            loaded.append(load_image(item))
            loaded_ids.append(item_id)
        except (ValueError, OSError) as error:
            skipped.append((item_id, str(error)))
    return loaded, loaded_ids


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _checksum(embeddings: torch.Tensor, ids_json: str, model: str) -> str:
    """sha256 of the embeddings' bytes, the ids and the model name: any edited byte changes it."""
    digest = hashlib.sha256(embeddings.contiguous().numpy().tobytes())
    digest.update(ids_json.encode("utf-8") + b"\0" + model.encode("utf-8"))
    return digest.hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over `path` in one step."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_index_file(path: Path) -> tuple[torch.Tensor, dict[str, str]]:
    """The embeddings and header metadata of a safetensors file; a file that does not parse is refused."""
    if not path.is_file():
        raise FileNotFoundError(f"no index file at {path}")
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            embeddings = file.get_tensor("embeddings") if "embeddings" in file.keys() else None
    except (SafetensorError, OSError) as error:
        raise ValueError(
            f"{path} is damaged or is not an image index ({error}): rebuild the index and save it again"
        ) from None
    if embeddings is None or embeddings.dtype != torch.float32 or embeddings.ndim != 2:
        raise ValueError(f"{path} holds no [N, D] float32 'embeddings': it is not an image index")
    return embeddings, metadata


def _faiss_index(vectors: np.ndarray, kind: str, params: dict[str, int]) -> Any:
    """A trained, filled FAISS inner-product index of `kind` over `vectors`."""
    try:
        import faiss
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "approximate search needs FAISS: pip install faiss-cpu (or pip install mmlesson[search])"
        ) from None
    if kind not in FAISS_PARAMS:
        raise ValueError(f"unknown kind {kind!r}; choose 'ivf' or 'hnsw'")
    unknown = set(params) - FAISS_PARAMS[kind]
    if unknown:
        raise ValueError(
            f"unknown {kind} parameters {sorted(unknown)}; it takes {sorted(FAISS_PARAMS[kind])}"
        )
    n, dim = vectors.shape
    if kind == "ivf":
        nlist = params.get("nlist", max(1, int(np.sqrt(n))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = params.get("nprobe", max(1, nlist // 4))
    else:
        index = faiss.IndexHNSWFlat(dim, params.get("m", 32), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = params.get("ef_search", 64)
    index.add(vectors)
    return index
