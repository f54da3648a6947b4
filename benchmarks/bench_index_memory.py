"""How much memory does an index of a million 512-d float16 embeddings take, from building to searching?

The raw numbers are 1M x 512 x 2 bytes = 1.0 GiB; the target is a peak under 1.5 GB (1.4 GiB) above what the
process used before. Each step runs in a fresh child process, which reports its peak resident memory
(`ru_maxrss`) minus its memory once the libraries were imported:
- build: make the vectors, `ImageIndex(vectors, ...)`, 10 searches, 100 at once with `search_many`, `save`;
- load: `ImageIndex.load` of that file, then the same searches.
The ratio printed is peak extra memory / size of the raw embeddings (1.0 would be no overhead at all).

    python benchmarks/bench_index_memory.py
"""

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

N, DIM = 1_000_000, 512
TARGET_BYTES = 1.5e9


def peak_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def child(step: str, path: Path) -> None:
    """Run one step in this (fresh) process and print {"extra": bytes} as JSON."""
    import torch

    from mmlesson.search import ImageIndex, synthetic_embeddings

    before = peak_bytes()
    if step == "build":
        index = ImageIndex(synthetic_embeddings(N, DIM, seed=0), [str(i) for i in range(N)], "random")
    else:
        index = ImageIndex.load(path)
    queries = synthetic_embeddings(100, DIM, seed=1)
    for query in queries[:10]:
        index.search(query, k=10)
    index.search_many(queries, k=10)
    if step == "build":
        index.save(path)
    assert index.embeddings.dtype == torch.float16 and len(index) == N
    print(json.dumps({"extra": peak_bytes() - before}))


def run_child(step: str, path: Path) -> int:
    result = subprocess.run(
        [sys.executable, __file__, step, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])["extra"]


def main() -> None:
    raw = N * DIM * 2
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "million.safetensors"
        for step in ("build", "load"):
            extra = run_child(step, path)
            verdict = "PASS" if extra < TARGET_BYTES else "FAIL"
            print(
                f"{step:5}  peak extra memory {extra / 1e9:5.2f} GB  ratio to raw {extra / raw:4.2f}  "
                f"(target < {TARGET_BYTES / 1e9:.1f} GB: {verdict})"
            )
        print(f"file size {path.stat().st_size / 1e9:.2f} GB for {N:,} x {DIM} float16")


if __name__ == "__main__":
    if len(sys.argv) == 3:
        child(sys.argv[1], Path(sys.argv[2]))
    else:
        main()
