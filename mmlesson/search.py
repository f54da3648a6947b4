"""Image search: embed a gallery once with CLIP, then find the images closest to a text, an image or a vector.

Because `ClipBundle` returns L2-normalized embeddings, the cosine similarity of a query with every gallery
image is one matrix-vector product, and the best `k` are `torch.topk` of it: exact search, fast enough for
the hundred thousand images a laptop holds, and for a million in float16 (half the memory, scores good to
about three decimals). `ImageIndex.approximate` hands the same vectors to FAISS, imported only when used,
for the millions where exact search gets slow, and `recall_at_k` measures what that speed costs.

An index is saved as one `.safetensors` file, never a pickle, with a checksum over all of it: a damaged
file is refused with one message, a `DamagedIndexError` (the file format is `mmlesson.course.index_file`).

What a learner passes is checked before PIL or FAISS sees it: they would resize a 3 KB PNG of 1,000,000 x 1
pixels into gigabytes, crash the process on `m=1`, or quietly return too few hits on `ef_search=-1`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mmlesson import runtime
from mmlesson.checks import check_int
from mmlesson.clip import ClipBundle, ImageInput
from mmlesson.course.index_file import DTYPES, DamagedIndexError, damaged_message, read_index, write_index
from mmlesson.errors import InputError, MissingPackageError
from mmlesson.images import load_image

# The names lessons use; see API.md.
__all__ = [
    "ImageIndex",
    "ApproximateIndex",
    "Hit",
    "DamagedIndexError",
    "recall_at_k",
    "synthetic_embeddings",
]

FAISS_PARAMS = {"ivf": ("nlist", "nprobe"), "hnsw": ("m", "ef_search", "ef_construction")}
HNSW_MAX_M = 256  # links per vector take 2 * m * 4 bytes: at 256, as much as a float32 512-d vector
HNSW_MAX_EF = 4096  # candidates kept per query or insertion: recall stops improving after a few hundred
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

    Build one with `ImageIndex.build(clip, images)`, `ImageIndex.load(path, clip)`, or directly from
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
        clip: ClipBundle | None = None,
        skipped: Sequence[tuple[str, str]] = (),
        dtype: torch.dtype | None = None,
    ) -> None:
        embeddings = _real_tensor(embeddings, "embeddings")
        if embeddings.ndim != 2 or len(embeddings) != len(ids):
            raise InputError(
                f"embeddings must be [N, D] with one id per row; "
                f"got {tuple(embeddings.shape)} and {len(ids)} ids"
            )
        if len(ids) == 0:
            raise InputError("an image index needs at least one image")
        self.embeddings = _normalized_rows(embeddings.detach(), _storage_dtype(embeddings, dtype))
        self.ids = [str(i) for i in ids]
        self.model_name = str(model_name)
        self.clip = clip
        self.skipped = [(str(item), str(reason)) for item, reason in skipped]

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
        clip: ClipBundle,
        images: Sequence[ImageInput] | str | Path,
        batch_size: int = 64,
        progress: bool = True,
        dtype: torch.dtype = torch.float32,
    ) -> ImageIndex:
        """Embed every readable image of `images` (a list, or a folder whose image files are taken sorted).

        A gallery gathered from the web always holds a few broken files; they are skipped and listed in
        `index.skipped` with the reason, so one bad file does not cost the whole build. So are images too
        thin to resize for the model (see `images.load_image`): a 3 KB PNG of 1,000,000 x 1 pixels would take
        gigabytes once its shorter side is resized to the model's input size.
        """
        batch_size = check_int(batch_size, "batch_size")
        dtype = _check_dtype(dtype)  # now, not after embedding the whole gallery
        items, ids = _gallery(images)
        embeddings, kept_ids, skipped = [], [], []
        with runtime.progress_bar(
            total=len(items), desc="Embedding images", unit="image", disable=not progress
        ) as bar:
            for start in range(0, len(items), batch_size):
                batch = slice(start, start + batch_size)
                loaded, batch_ids, batch_skipped = _load_batch(items[batch], ids[batch], clip.image_size)
                if loaded:
                    embeddings.append(clip.encode_images(clip.preprocess_batch(loaded), batch_size))
                    kept_ids += batch_ids
                skipped += batch_skipped
                bar.update(len(loaded) + len(batch_skipped))
        if not kept_ids:
            reasons = "; ".join(f"{item}: {reason}" for item, reason in skipped[:3])
            raise InputError(f"none of the {len(items)} images could be read ({reasons})")
        return cls(torch.cat(embeddings), kept_ids, clip.name, clip, skipped, dtype)

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        """The `k` gallery images most similar to `query`, best first (exact cosine similarity).

        query: a text (a `str` is always read as text; pass a `pathlib.Path` for an image file), a PIL
        image, a numpy image array, or an embedding (`query_vector` says how arrays are told apart).
        k: how many hits, a positive whole number (numpy's too); all images when the gallery has fewer.
        """
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[Query] | torch.Tensor, k: int = 10) -> list[list[Hit]]:
        """`search` for many queries at once (a list of queries, or embeddings [Q, D]): one list of hits each.

        Texts are embedded in one batch and scores computed for many queries per pass over the gallery,
        so this is much faster than a loop over `search`.
        """
        k = check_int(k, "k")
        results = []
        for chunk in self.query_vectors(queries).split(max(1, SCORES_PER_PASS // len(self))):
            top = torch.topk(self._similarities(chunk), min(k, len(self)), dim=1)
            results += [self._hits(i.tolist(), s.tolist()) for i, s in zip(top.indices, top.values)]
        return results

    def query_vector(self, query: Query) -> torch.Tensor:
        """The normalized embedding [D] of a query, computed with the index's model where needed.

        What a query is follows from its type and shape alone, never from its values:
        - a `str` is a text (pass a `pathlib.Path` for an image file);
        - a `Path`, a PIL image, or a numpy array of two or more rows ([H, W] or [H, W, C], whatever its
          dtype, e.g. uint8 [H, W, 3]) is an image;
        - a torch tensor, or a numpy array of shape [D] or [1, D] (one row, whatever its dtype), is an
          embedding: [1, D] is how one embedding comes out of a model or a slice `embeddings[i : i + 1]`,
          while a picture one pixel tall is of no use as a query.
        """
        if _is_embedding(query):
            return self._check_embedding(query)
        if isinstance(query, str):
            return self._require_clip("a text query").encode_texts(query)[0]
        if isinstance(query, (Image.Image, Path, np.ndarray)):
            clip = self._require_clip("an image query")
            return clip.encode_images(load_image(query, resize_to=clip.image_size))[0]
        raise InputError(
            "search takes a text, a PIL image, a Path, an image array or an embedding, "
            f"got {type(query).__name__}"
        )

    def query_vectors(self, queries: Sequence[Query] | torch.Tensor) -> torch.Tensor:
        """Normalized embeddings [Q, D] of many queries; a list of texts is embedded in one batch."""
        if isinstance(queries, (torch.Tensor, np.ndarray)):
            queries = _real_tensor(queries, "embedding queries")
            if queries.ndim != 2:
                raise InputError(
                    f"embedding queries must be [Q, {self.dim}], got {tuple(queries.shape)}; "
                    "to search with images, pass a list of them"
                )
        elif isinstance(queries, str) or not isinstance(queries, Sequence):
            raise InputError(
                "search_many takes a list of queries or a [Q, D] tensor; for one query use search"
            )
        if len(queries) == 0:
            raise InputError("search_many got no queries")
        if not isinstance(queries, torch.Tensor) and all(isinstance(q, str) for q in queries):
            return self._require_clip("a text query").encode_texts(list(queries))
        return torch.stack([self.query_vector(query) for query in queries])

    def save(self, path: str | Path) -> Path:
        """Write the index to one `.safetensors` file, atomically: a failed save leaves no partial file."""
        return write_index(Path(path), self.embeddings, self.ids, self.model_name, self.skipped)

    @classmethod
    def load(cls, path: str | Path, clip: ClipBundle | None = None) -> ImageIndex:
        """Read an index saved by `save`; pass the `clip` that built it to search by text or image.

        Refuses a clip of another model, and, with one message (a `DamagedIndexError`), any file that is
        not what `save` wrote: damaged, truncated, edited, or not an index at all (see
        `mmlesson.course.index_file`).
        """
        path = Path(path)
        saved = read_index(path)
        if clip is not None and clip.name != saved.model:
            raise InputError(
                f"{path} was built with {saved.model}, you passed {clip.name}: embeddings of different "
                f"models are not comparable. Load the model {saved.model}, or rebuild the index with yours."
            )
        try:
            return cls(saved.embeddings, saved.ids, saved.model, clip, saved.skipped)
        except ValueError as error:  # checksum-valid yet unusable: NaN, a row of zeros, no rows
            raise DamagedIndexError(damaged_message(path, str(error))) from None

    def approximate(self, kind: str = "ivf", **params: int) -> ApproximateIndex:
        """An approximate FAISS index over the same embeddings.

        kind "ivf": k-means cells, searching `nprobe` (1..nlist; default nlist // 16) of `nlist` cells
        (1..number of vectors; default its square root). kind "hnsw": a neighbour graph with `m` links per
        node (2..256; default 32), built keeping `ef_construction` candidates (1..4096; default 40) and
        searched keeping `ef_search` (1..4096; default 64). FAISS keeps at least k candidates, so k hits
        still come back when k > ef_search. Larger `nprobe`/`ef_search`: better recall, slower.

        Each parameter must be a whole number (numpy's too) in its range, checked before FAISS sees it:
        out of range, FAISS crashes the process (m=1), aborts it (m=0), allocates gigabytes (m=-1) or
        quietly returns too few hits (ef_search=-1). FAISS keeps its own copy of the vectors, in this
        index's precision (float16 stays float16).
        """
        settings = _faiss_settings(kind, params, len(self))
        return ApproximateIndex(self, _faiss_index(self.embeddings, kind, settings), kind, settings)

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

    def _check_embedding(self, query: torch.Tensor | np.ndarray) -> torch.Tensor:
        """An embedding query [D] or [1, D] as a normalized float32 vector [D]."""
        vector = _real_tensor(query, "an embedding query")
        if vector.ndim == 2 and len(vector) == 1:
            vector = vector[0]
        if vector.ndim != 1 or len(vector) != self.dim:
            hint = " (a tensor is read as an embedding: pass an image as a PIL image or a Path)"
            raise InputError(
                f"an embedding query must be 1-D of length {self.dim} (this index's dimension) or "
                f"[1, {self.dim}]; got shape {tuple(vector.shape)}, "
                f"length {vector.shape[-1] if vector.ndim else 0}{hint if vector.ndim >= 3 else ''}"
            )
        vector = vector.detach().float().cpu()
        if not torch.isfinite(vector).all() or not vector.any():
            raise InputError(
                "an embedding query must be finite and not all zeros; this one holds NaN, infinite values "
                "or only zeros: check how it was computed"
            )
        return F.normalize(vector, dim=0)

    def _require_clip(self, what: str) -> ClipBundle:
        if self.clip is None:
            raise InputError(
                f"{what} needs the CLIP model that built this index ({self.model_name}): load the index with "
                "ImageIndex.load(path, clip=...), or search with an embedding"
            )
        return self.clip


class ApproximateIndex:
    """A FAISS index over an `ImageIndex`'s embeddings, searched like it (inner product = cosine)."""

    def __init__(
        self, exact: ImageIndex, faiss_index: Any, kind: str, params: dict[str, int] | None = None
    ) -> None:
        self.exact = exact
        self.faiss_index = faiss_index
        self.kind = kind
        self.params = dict(params or {})  # what FAISS was given, defaults included

    def __len__(self) -> int:
        return len(self.exact)

    def __repr__(self) -> str:
        settings = "".join(f", {name}={value}" for name, value in self.params.items())
        return f"ApproximateIndex({self.kind!r}{settings}, {len(self)} images)"

    def search(self, query: Query, k: int = 10) -> list[Hit]:
        """The approximate `k` best gallery images for `query` (same queries as `ImageIndex.search`)."""
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[Query] | torch.Tensor, k: int = 10) -> list[list[Hit]]:
        """`search` for many queries in one FAISS call."""
        k = check_int(k, "k")
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
        raise InputError(
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
        raise InputError(f"need n, dim >= 1, clusters >= 0, spread > 0; got {n}, {dim}, {clusters}, {spread}")
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


# ---------------------------------------------------------------------------------------------------------
# Checking what the learner passes


def _storage_dtype(embeddings: torch.Tensor, dtype: torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float16 if embeddings.dtype == torch.float16 else torch.float32
    return _check_dtype(dtype)


def _check_dtype(dtype: Any) -> torch.dtype:
    if dtype not in DTYPES:
        raise InputError(
            f"an index stores float32 or float16 embeddings, not {dtype}; e.g. dtype=torch.float16"
        )
    return dtype


def _normalized_rows(embeddings: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The rows scaled to unit length, in `dtype` on the CPU, computed a chunk at a time.

    Rows that are already so are shared, not copied: a million float16 embeddings is a gigabyte.
    """
    if not embeddings.is_floating_point():
        raise InputError(f"embeddings must be floating point, got {embeddings.dtype}")
    norms = torch.cat([chunk.float().norm(dim=1).cpu() for chunk in embeddings.split(ROWS_PER_CHUNK)])
    if not torch.isfinite(norms).all() or not norms.all():
        raise InputError("embeddings must be finite, and no row may be all zeros")
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


def _real_tensor(value: Any, what: str) -> torch.Tensor:
    """`value`, a tensor or numpy array, as a tensor of real numbers; else an error naming `what`."""
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        raise InputError(f"{what} must be a torch tensor or a numpy array, got {type(value).__name__}")
    if isinstance(value, np.ndarray) and value.dtype.kind not in "biuf":
        raise InputError(f"{what} must hold real numbers, got a numpy array of dtype {value.dtype}")
    tensor = torch.as_tensor(value)
    if tensor.is_complex():
        raise InputError(f"{what} must hold real numbers, got {tensor.dtype}")
    return tensor


def _is_embedding(query: Any) -> bool:
    """A torch tensor, or a numpy array [D] or [1, D]: see `ImageIndex.query_vector`."""
    if isinstance(query, np.ndarray):
        return query.ndim == 1 or (query.ndim == 2 and query.shape[0] == 1)
    return isinstance(query, torch.Tensor)


def _faiss_settings(kind: Any, params: dict[str, Any], n: int) -> dict[str, int]:
    """The parameters FAISS gets for `n` vectors, defaults filled in, every one checked first: FAISS
    itself crashes, aborts the process, allocates gigabytes or quietly misbehaves on bad values."""
    if not isinstance(kind, str) or kind not in FAISS_PARAMS:
        raise InputError(f"unknown kind {kind!r}; choose 'ivf' or 'hnsw'")
    unknown = sorted(set(params) - set(FAISS_PARAMS[kind]))
    if unknown:
        raise InputError(f"unknown {kind} parameters {unknown}; it takes {', '.join(FAISS_PARAMS[kind])}")
    return _ivf_settings(params, n) if kind == "ivf" else _hnsw_settings(params)


def _ivf_settings(params: dict[str, Any], n: int) -> dict[str, int]:
    cells = max(1, math.isqrt(n))
    nlist = check_int(
        params.get("nlist", cells),
        "nlist",
        1,
        n,
        f": the number of k-means cells, each trained on at least one of the {n} vectors; about the square "
        f"root of the number of vectors is usual, e.g. nlist={cells}",
    )
    probes = max(1, nlist // 16)
    nprobe = check_int(
        params.get("nprobe", probes),
        "nprobe",
        1,
        nlist,
        f": the cells searched for each query, at most all {nlist}; more finds more and is slower, "
        f"e.g. nprobe={probes}",
    )
    return {"nlist": nlist, "nprobe": nprobe}


def _hnsw_settings(params: dict[str, Any]) -> dict[str, int]:
    m = check_int(
        params.get("m", 32),
        "m",
        2,
        HNSW_MAX_M,
        ": the links each vector keeps in the graph. FAISS crashes below 2, and above 256 the links take "
        "more memory than the vectors themselves, for no better recall; 16 to 64 is usual, e.g. m=32",
    )
    ef_search = check_int(
        params.get("ef_search", 64),
        "ef_search",
        1,
        HNSW_MAX_EF,
        ": the candidates kept while searching (FAISS keeps at least k); more finds more and is slower, "
        "e.g. ef_search=64",
    )
    ef_construction = check_int(
        params.get("ef_construction", 40),
        "ef_construction",
        1,
        HNSW_MAX_EF,
        ": the candidates kept while adding each vector; the build time grows in proportion, and past a few "
        "hundred the graph gets no better, e.g. ef_construction=40 (FAISS's default)",
    )
    return {"m": m, "ef_search": ef_search, "ef_construction": ef_construction}


def _gallery(images: Sequence[ImageInput] | str | Path) -> tuple[list, list[str]]:
    """The items to embed and their ids: a file's path, else the item's position in the list."""
    if isinstance(images, (str, Path)):
        items = _folder_images(Path(images).expanduser())
    elif isinstance(images, Image.Image) or not isinstance(images, Iterable):
        raise InputError(
            f"build takes a list of images or a folder of image files, got {type(images).__name__}; "
            "for one image pass [image]"
        )
    else:
        items = list(images)
    if not items:
        raise InputError(
            f"the gallery is empty: {images!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    ids = [str(item) if isinstance(item, (str, Path)) else str(k) for k, item in enumerate(items)]
    return items, ids


def _folder_images(folder: Path) -> list[Path]:
    """The image files of a folder, sorted by name; a folder that may not be read is named as such."""
    try:
        if not folder.is_dir():
            raise InputError(f"{folder} is not a folder; pass a folder of images or a list of images")
        return sorted(
            (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: p.name,
        )
    except PermissionError:
        raise InputError(
            f"the folder {folder} cannot be read: permission denied. Give yourself access (chmod u+rx on "
            "it and the folders above it), or pass a list of the images you can read"
        ) from None


def _load_batch(
    items: list, ids: list[str], resize_to: int
) -> tuple[list[Image.Image], list[str], list[tuple[str, str]]]:
    """The usable images of a batch with their ids, and (id, reason) for each one that is not: unreadable,
    or too thin to resize to the model's input size `resize_to`."""
    images, kept, skipped = [], [], []
    for item, item_id in zip(items, ids):
        try:
            images.append(load_image(item, resize_to=resize_to))
            kept.append(item_id)
        except (ValueError, TypeError, OSError) as error:
            skipped.append((item_id, str(error)))
    return images, kept, skipped


# ---------------------------------------------------------------------------------------------------------
# FAISS


def _faiss_index(embeddings: torch.Tensor, kind: str, settings: dict[str, int]) -> Any:
    """A trained, filled FAISS inner-product index of `kind` with checked `settings` (see `_faiss_settings`),
    storing vectors in the embeddings' precision."""
    faiss = _import_faiss()
    half = embeddings.dtype == torch.float16
    fp16, metric, dim = faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT, embeddings.shape[1]
    cells = 1
    if kind == "ivf":
        cells = settings["nlist"]
        quantizer = faiss.IndexFlatIP(dim)
        index = (
            faiss.IndexIVFScalarQuantizer(quantizer, dim, cells, fp16, metric)
            if half
            else faiss.IndexIVFFlat(quantizer, dim, cells, metric)
        )
        index.nprobe = settings["nprobe"]
    else:
        m = settings["m"]
        index = faiss.IndexHNSWSQ(dim, fp16, m, metric) if half else faiss.IndexHNSWFlat(dim, m, metric)
        index.hnsw.efSearch = settings["ef_search"]
        index.hnsw.efConstruction = settings["ef_construction"]
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
        raise MissingPackageError(
            "approximate search needs FAISS, which the course installs: pip install faiss-cpu"
        ) from None
    return faiss
