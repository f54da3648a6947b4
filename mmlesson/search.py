"""Image search: embed a gallery once with CLIP, then find the images closest to a text, an image or a vector.

Because `ClipBundle` returns L2-normalized embeddings, the cosine similarity of a query with every gallery
image is one matrix-vector product, and the best `k` are `torch.topk` of it: exact search, fast enough for
the hundred thousand images a laptop holds, and for a million in float16 (half the memory, scores good to
about three decimals). `ImageIndex.approximate` hands the same vectors to FAISS, imported only when used,
for the millions where exact search gets slow, and `recall_at_k` measures what that speed costs.

An index is saved as one `.safetensors` file, never a pickle: opening a shared index cannot run code. It
records the model that made the embeddings (vectors of different models are not comparable), the items' ids
and a sha256 checksum, so a damaged file is refused instead of giving quietly wrong answers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from mmlesson.assets import written_atomically
from mmlesson.clip import ClipBundle, ImageInput, check_positive_int
from mmlesson.data import load_image

FORMAT = "mmlesson-image-index"
FORMAT_VERSION = 1
DTYPES = (torch.float32, torch.float16)
FAISS_PARAMS = {"ivf": {"nlist", "nprobe"}, "hnsw": {"m", "ef_search"}}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"}
ROWS_PER_CHUNK = 65536  # rows normalized, hashed or handed to FAISS at a time: bounded extra memory
SCORES_PER_PASS = 2**24  # query-image scores held at once (64 MB), however many queries and images

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

    Build one with `ImageIndex.build(bundle, images)`, `ImageIndex.load(path, bundle)`, or directly from
    embeddings [N, D]. `dtype` is how they are stored: float32, or float16 for half the memory (the default
    keeps float16 embeddings in float16 and makes anything else float32). Embeddings that are already
    normalized, on the CPU and in that dtype are shared, not copied: a million of them is a gigabyte.
    `skipped` lists the (id, reason) of every item the build could not read.
    """

    def __init__(
        self,
        embeddings: torch.Tensor,
        ids: Sequence[str],
        model_name: str,
        bundle: ClipBundle | None = None,
        skipped: Sequence[tuple[str, str]] = (),
        dtype: torch.dtype | None = None,
    ) -> None:
        if embeddings.ndim != 2 or len(embeddings) != len(ids):
            raise ValueError(
                f"embeddings must be [N, D] with one id per row; "
                f"got {tuple(embeddings.shape)} and {len(ids)} ids"
            )
        if len(ids) == 0:
            raise ValueError("an image index needs at least one image")
        self.embeddings = _normalized_rows(embeddings.detach(), _storage_dtype(embeddings, dtype))
        self.ids = [str(i) for i in ids]
        self.model_name = model_name
        self.bundle = bundle
        self.skipped = list(skipped)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        dtype = str(self.embeddings.dtype).removeprefix("torch.")
        return f"ImageIndex({len(self)} images, dim={self.dim}, {dtype}, model={self.model_name!r})"

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
        dtype: torch.dtype = torch.float32,
    ) -> ImageIndex:
        """Embed every readable image of `images` (a list, or a folder whose image files are taken sorted).

        A gallery gathered from the web always holds a few broken files; they are skipped and listed in
        `index.skipped` with the reason, so one bad file does not cost the whole build.
        """
        check_positive_int(batch_size, "batch_size")
        items, ids = _gallery(images)
        embeddings, kept_ids, skipped = [], [], []
        with tqdm(total=len(items), desc="Embedding images", unit="image", disable=not progress) as bar:
            for start in range(0, len(items), batch_size):
                batch = slice(start, start + batch_size)
                images, batch_ids, batch_skipped = _load_batch(items[batch], ids[batch])
                if images:
                    embeddings.append(bundle.encode_images(bundle.preprocess_batch(images), batch_size))
                    kept_ids += batch_ids
                skipped += batch_skipped
                bar.update(len(images) + len(batch_skipped))
        if not kept_ids:
            reasons = "; ".join(f"{item}: {reason}" for item, reason in skipped[:3])
            raise ValueError(f"none of the {len(items)} images could be read ({reasons})")
        return cls(torch.cat(embeddings), kept_ids, bundle.name, bundle, skipped, dtype)

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        """The `k` gallery images most similar to `query`, best first (exact cosine similarity).

        query: a text (a `str` is always read as text; pass a `pathlib.Path` for an image file), a PIL
        image, a numpy image array, or an embedding (a 1-D tensor or numpy array of length `dim`).
        """
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[Query] | torch.Tensor, k: int = 10) -> list[list[Hit]]:
        """`search` for many queries at once (a list of queries, or embeddings [Q, D]): one list of hits each.

        Texts are embedded in one batch and scores computed for many queries per pass over the gallery,
        so this is much faster than a loop over `search`.
        """
        check_positive_int(k, "k")
        results = []
        for chunk in self.query_vectors(queries).split(max(1, SCORES_PER_PASS // len(self))):
            top = torch.topk(self._similarities(chunk), min(k, len(self)), dim=1)
            results += [self._hits(i.tolist(), s.tolist()) for i, s in zip(top.indices, top.values)]
        return results

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

    def query_vectors(self, queries: Sequence[Query] | torch.Tensor) -> torch.Tensor:
        """Normalized embeddings [Q, D] of many queries; a list of texts is embedded in one batch."""
        if isinstance(queries, (torch.Tensor, np.ndarray)):
            queries = torch.as_tensor(queries)
            if queries.ndim != 2:
                raise ValueError(f"embedding queries must be [Q, {self.dim}], got {tuple(queries.shape)}")
        elif isinstance(queries, str) or not isinstance(queries, Sequence):
            raise TypeError(
                "search_many takes a list of queries or a [Q, D] tensor; for one query use search"
            )
        if len(queries) == 0:
            raise ValueError("search_many got no queries")
        if not isinstance(queries, torch.Tensor) and all(isinstance(q, str) for q in queries):
            return self._require_bundle("a text query").encode_texts(list(queries))
        return torch.stack([self.query_vector(query) for query in queries])

    def save(self, path: str | Path) -> Path:
        """Write the index to one `.safetensors` file, atomically: a failed save leaves no partial file."""
        path = Path(path)
        ids = _ids_tensor(self.ids)
        metadata = {
            "format": FORMAT,
            "version": str(FORMAT_VERSION),
            "model": self.model_name,
            "skipped": json.dumps(self.skipped),
            "sha256": _checksum(self.embeddings, ids, self.model_name),
        }
        with written_atomically(path) as temporary:
            save_file({"embeddings": self.embeddings, "ids": ids}, str(temporary), metadata)
        return path

    @classmethod
    def load(cls, path: str | Path, bundle: ClipBundle | None = None) -> ImageIndex:
        """Read an index saved by `save`; pass the `bundle` that built it to search by text or image.

        Refuses a damaged file, a file that is not an index, and a bundle of another model.
        """
        path = Path(path)
        tensors, metadata = _read_index_file(path)
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{path} is a safetensors file but not an image index saved by ImageIndex.save")
        if int(metadata.get("version", 0)) > FORMAT_VERSION:
            raise ValueError(f"{path} was saved by a newer mmlesson; upgrade it (pip install -U mmlesson)")
        embeddings, ids = tensors["embeddings"], tensors["ids"]
        if metadata.get("sha256") != _checksum(embeddings, ids, metadata.get("model", "")):
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
        return cls(embeddings, json.loads(bytes(ids.numpy())), model, bundle, skipped)

    def approximate(self, kind: str = "ivf", **params: int) -> ApproximateIndex:
        """An approximate FAISS index over the same embeddings.

        kind "ivf": k-means cells, searching `nprobe` of `nlist` cells; "hnsw": a neighbour graph with `m`
        links per node, searching `ef_search` candidates. Larger `nprobe`/`ef_search`: better recall, slower.
        FAISS keeps its own copy of the vectors, in this index's precision (float16 stays float16).
        """
        return ApproximateIndex(self, _faiss_index(self.embeddings, kind, params), kind)

    def _similarities(self, queries: torch.Tensor) -> torch.Tensor:
        """Cosine similarities [Q, N] of normalized queries with every gallery image.

        Measured on a 2-core CPU, NumPy's float32 matrix product reads the gallery about twice as fast as
        torch's, while torch's float16 one is the fast one (NumPy has no fast float16 path): use each where
        it wins. float16 goes one query at a time, as its matrix-vector kernel is the fast one.
        """
        if self.embeddings.dtype == torch.float16:
            return torch.stack([self.embeddings @ query.half() for query in queries]).float()
        return torch.from_numpy(queries.numpy() @ self.embeddings.numpy().T)

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
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[Query] | torch.Tensor, k: int = 10) -> list[list[Hit]]:
        """`search` for many queries in one FAISS call."""
        check_positive_int(k, "k")
        vectors = self.exact.query_vectors(queries).numpy()
        scores, indices = self.faiss_index.search(vectors, min(k, len(self)))
        found = indices >= 0  # FAISS pads with -1 when the cells it searched hold fewer than k images
        return [self.exact._hits(i[f].tolist(), s[f].tolist()) for i, s, f in zip(indices, scores, found)]

    def recall(self, queries: Sequence[Query] | torch.Tensor, k: int = 10) -> float:
        """recall@k of this index against exact search over `queries` (see `recall_at_k`)."""
        vectors = self.exact.query_vectors(queries)
        return recall_at_k(self.exact.search_many(vectors, k), self.search_many(vectors, k))


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


def synthetic_embeddings(
    n: int, dim: int = 512, clusters: int = 0, spread: float = 1.0, seed: int = 0, dtype=torch.float16
) -> torch.Tensor:
    """`n` random unit vectors [n, dim], made a chunk at a time (a million float16 ones: 1 GB, no more).

    clusters=0: uniform on the sphere, the worst case for approximate search (no structure to exploit).
    clusters>0: each vector a random one of `clusters` random centers plus noise of size `spread`, closer
    to real embeddings, where similar images gather. Vectors of the same `seed` are identical everywhere.
    """
    if n < 1 or dim < 1 or clusters < 0 or spread <= 0:
        raise ValueError(f"need n, dim >= 1, clusters >= 0, spread > 0; got {n}, {dim}, {clusters}, {spread}")
    generator = torch.Generator().manual_seed(seed)
    centers = F.normalize(torch.randn(clusters, dim, generator=generator), dim=1) if clusters else None
    vectors = torch.empty(n, dim, dtype=dtype)
    for start in range(0, n, ROWS_PER_CHUNK):
        rows = min(ROWS_PER_CHUNK, n - start)
        chunk = torch.randn(rows, dim, generator=generator)
        if centers is not None:
            chunk = centers[torch.randint(clusters, (rows,), generator=generator)] + spread * chunk / dim**0.5
        vectors[start : start + rows] = F.normalize(chunk, dim=1)
    return vectors


def _storage_dtype(embeddings: torch.Tensor, dtype: torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float16 if embeddings.dtype == torch.float16 else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"an index stores float32 or float16 embeddings, not {dtype}")
    return dtype


def _normalized_rows(embeddings: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The rows scaled to unit length, in `dtype` on the CPU, computed a chunk at a time.

    Rows that are already so are shared, not copied: a million float16 embeddings is a gigabyte.
    """
    if not embeddings.is_floating_point():
        raise ValueError(f"embeddings must be floating point, got {embeddings.dtype}")
    norms = torch.cat([chunk.float().norm(dim=1).cpu() for chunk in embeddings.split(ROWS_PER_CHUNK)])
    if not torch.isfinite(norms).all() or not norms.all():
        raise ValueError("embeddings must be finite, and no row may be all zeros")
    tolerance = 1e-3 if dtype == torch.float16 else 1e-5
    stored_as_is = (
        embeddings.dtype == dtype and embeddings.device.type == "cpu" and embeddings.is_contiguous()
    )
    if stored_as_is and (norms - 1).abs().max() <= tolerance:
        return embeddings
    result = torch.empty(embeddings.shape, dtype=dtype)
    for start in range(0, len(embeddings), ROWS_PER_CHUNK):
        rows = slice(start, start + ROWS_PER_CHUNK)
        result[rows] = embeddings[rows].float().cpu() / norms[rows, None]
    return result


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


def _load_batch(items: list, ids: list[str]) -> tuple[list[Image.Image], list[str], list[tuple[str, str]]]:
    """The readable images of a batch with their ids, and (id, reason) for each unreadable one."""
    images, kept, skipped = [], [], []
    for item, item_id in zip(items, ids):
        try:
            images.append(load_image(item))
            kept.append(item_id)
        except (ValueError, TypeError, OSError) as error:
            skipped.append((item_id, str(error)))
    return images, kept, skipped


def _ids_tensor(ids: list[str]) -> torch.Tensor:
    """The ids as UTF-8 JSON in a uint8 tensor: any number fits (a safetensors header holds 100 MB)."""
    return torch.frombuffer(bytearray(json.dumps(ids).encode("utf-8")), dtype=torch.uint8)


def _checksum(embeddings: torch.Tensor, ids: torch.Tensor, model: str) -> str:
    """sha256 of the embeddings' bytes, the ids and the model name: any edited byte changes it."""
    digest = hashlib.sha256()
    for start in range(0, len(embeddings), ROWS_PER_CHUNK):  # hashed in place, chunk by chunk: no copy
        digest.update(embeddings[start : start + ROWS_PER_CHUNK].numpy().data)
    digest.update(ids.numpy().data)
    digest.update(b"\0" + model.encode("utf-8"))
    return digest.hexdigest()


def _read_index_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and header metadata of an index file; a file that does not parse is refused."""
    if not path.is_file():
        raise FileNotFoundError(f"no index file at {path}")
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            tensors = {name: file.get_tensor(name) for name in file.keys()}
    except (SafetensorError, OSError) as error:
        raise ValueError(
            f"{path} is damaged or is not an image index ({error}): rebuild the index and save it again"
        ) from None
    embeddings, ids = tensors.get("embeddings"), tensors.get("ids")
    if embeddings is None or embeddings.dtype not in DTYPES or embeddings.ndim != 2 or ids is None:
        raise ValueError(f"{path} holds no [N, D] 'embeddings' and 'ids': it is not an image index")
    return tensors, metadata


def _faiss_index(embeddings: torch.Tensor, kind: str, params: dict[str, int]) -> Any:
    """A trained, filled FAISS inner-product index of `kind`, storing vectors in the embeddings' precision."""
    faiss = _import_faiss()
    if kind not in FAISS_PARAMS:
        raise ValueError(f"unknown kind {kind!r}; choose 'ivf' or 'hnsw'")
    unknown = set(params) - FAISS_PARAMS[kind]
    if unknown:
        raise ValueError(
            f"unknown {kind} parameters {sorted(unknown)}; it takes {sorted(FAISS_PARAMS[kind])}"
        )
    half = embeddings.dtype == torch.float16
    fp16, metric, dim = faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT, embeddings.shape[1]
    cells = 1
    if kind == "ivf":
        cells = params.get("nlist", max(1, int(np.sqrt(len(embeddings)))))
        quantizer = faiss.IndexFlatIP(dim)
        index = (
            faiss.IndexIVFScalarQuantizer(quantizer, dim, cells, fp16, metric)
            if half
            else faiss.IndexIVFFlat(quantizer, dim, cells, metric)
        )
        index.nprobe = params.get("nprobe", max(1, cells // 16))
    else:
        m = params.get("m", 32)
        index = faiss.IndexHNSWSQ(dim, fp16, m, metric) if half else faiss.IndexHNSWFlat(dim, m, metric)
        index.hnsw.efSearch = params.get("ef_search", 64)
    index.train(_training_sample(embeddings, cells))  # IVF: k-means for the cells; HNSW: nothing to learn
    for start in range(0, len(embeddings), ROWS_PER_CHUNK):  # FAISS takes float32: a chunk at a time
        index.add(embeddings[start : start + ROWS_PER_CHUNK].float().numpy())
    return index


def _training_sample(embeddings: torch.Tensor, cells: int) -> np.ndarray:
    """A fixed random sample of rows to train `cells` k-means cells on: 40 a cell, just above the 39 that
    FAISS asks for. More gives slightly better cells, at a training time that grows with the sample."""
    rows = torch.randperm(len(embeddings), generator=torch.Generator().manual_seed(0))[: 40 * cells]
    return embeddings[rows.sort().values].float().numpy()


def _import_faiss() -> Any:
    try:
        import faiss
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "approximate search needs FAISS, which the course installs: pip install faiss-cpu"
        ) from None
    return faiss
