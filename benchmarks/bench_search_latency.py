"""Is exact `ImageIndex.search` as fast as FAISS's exact index on the same vectors?

For N = 10k, 100k and 1M random 512-d unit vectors, stored as float32 and as float16, time 20 top-10
queries one at a time (as a search box sends them) with:
- ours: `ImageIndex.search(query, k=10)` (includes checking and normalizing the query, making `Hit`s);
- FAISS: `faiss.IndexFlatIP` on the same vectors in float32 (FAISS's exact index holds float32 only);
  the ratio our time / its time must be <= 1.2;
- for float16, also `faiss.IndexScalarQuantizer` with QT_fp16 (FAISS scanning float16 storage), shown for
  reference: at 10k both take under a millisecond, and our ~0.3 ms of Python per query shows.
The top-10 found are checked to agree.

    python benchmarks/bench_search_latency.py
"""

from collections.abc import Callable
from functools import partial
from typing import Any

import faiss
import numpy as np
import torch

from mmlesson.course.timing import best_seconds
from mmlesson.search import ImageIndex, synthetic_embeddings

SIZES = (10_000, 100_000, 1_000_000)
DIM, K, QUERIES = 512, 10, 20
TARGET_BASELINE = "IndexFlatIP (float32)"


def faiss_indexes(vectors: np.ndarray, dtype: torch.dtype) -> dict[str, object]:
    flat = faiss.IndexFlatIP(DIM)
    flat.add(vectors)
    indexes = {TARGET_BASELINE: flat}
    if dtype == torch.float16:
        half = faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        half.add(vectors)
        indexes["IndexScalarQuantizer fp16"] = half
    return indexes


def check_agreement(index: ImageIndex, faiss_index, queries: torch.Tensor) -> None:
    """Our top-10 and FAISS's share at least 9 of 10 (float16 rounding may swap near-ties at the edge)."""
    for query in queries:
        ours = {hit.index for hit in index.search(query, K)}
        _, theirs = faiss_index.search(query.numpy()[None], K)
        assert len(ours & set(theirs[0].tolist())) >= K - 1, "ours and FAISS disagree"


def seconds_per_query(search: Callable[[Any], object], queries: list) -> float:
    """Best-of-3 time of running `search` on each query in turn, per query."""
    return best_seconds(lambda: [search(query) for query in queries], repeats=3) / len(queries)


def main() -> None:
    print(f"{torch.get_num_threads()} torch threads, {faiss.omp_get_max_threads()} FAISS threads")
    print(f"{'N':>9} {'dtype':8} {'ours ms':>8}  {'baseline':26} {'its ms':>7} {'ratio':>6}  target <= 1.2")
    queries = synthetic_embeddings(QUERIES, DIM, seed=1, dtype=torch.float32)
    faiss_queries = [query.numpy()[None] for query in queries]  # FAISS takes a [1, D] float32 array
    for n in SIZES:
        vectors = synthetic_embeddings(n, DIM, seed=0)
        for dtype in (torch.float32, torch.float16):
            index = ImageIndex(vectors.to(dtype), [str(i) for i in range(n)], "random")
            as_float32 = index.embeddings.float().numpy()
            ours_s = seconds_per_query(partial(index.search, k=K), list(queries))
            for name, faiss_index in faiss_indexes(as_float32, dtype).items():
                check_agreement(index, faiss_index, queries[:5])
                theirs_s = seconds_per_query(partial(faiss_index.search, k=K), faiss_queries)
                ratio = ours_s / theirs_s
                verdict = ("PASS" if ratio <= 1.2 else "FAIL") if name == TARGET_BASELINE else "reference"
                print(
                    f"{n:>9,} {str(dtype)[6:]:8} {ours_s * 1e3:8.2f}  {name:26} "
                    f"{theirs_s * 1e3:7.2f} {ratio:6.2f}  {verdict}"
                )


if __name__ == "__main__":
    main()
