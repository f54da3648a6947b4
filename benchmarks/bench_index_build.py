"""Is `ImageIndex.build` at least as fast as the plain open_clip loop that embeds a folder of images?

Both embed the same folder of 1,024 Shapes PNG files with the shipped tiny CLIP on the CPU, and both read
the files from disk, so file decoding counts as it does for a learner's gallery:
- the README loop (open_clip's README: open, preprocess, `encode_image` one image at a time, normalize);
- the batched loop (the same in batches of 64 under `torch.no_grad`: the strongest plain loop);
- ours: `ImageIndex.build(bundle, folder)` (batches of 64 under `torch.inference_mode`, the float steps of
  the preprocessing done once a batch).
The ratio README loop time / our time must be >= 1.0. Against the batched loop, expect about 1.0: the
same model forward takes four fifths of the time in both. The embeddings are also checked to agree.

    python benchmarks/bench_index_build.py
"""

import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

import mmlesson
from mmlesson.course.timing import best_seconds
from mmlesson.data import ShapesWorld
from mmlesson.search import ImageIndex

N = 1024
BATCH = 64


def readme_loop(bundle, paths: list[Path]) -> torch.Tensor:
    rows = []
    with torch.no_grad():
        for path in paths:
            pixels = bundle.preprocess(Image.open(path).convert("RGB")).unsqueeze(0)
            rows.append(bundle.model.encode_image(pixels))
    return F.normalize(torch.cat(rows), dim=-1)


def batched_loop(bundle, paths: list[Path]) -> torch.Tensor:
    rows = []
    with torch.no_grad():
        for start in range(0, len(paths), BATCH):
            batch = [bundle.preprocess(Image.open(p).convert("RGB")) for p in paths[start : start + BATCH]]
            rows.append(bundle.model.encode_image(torch.stack(batch)))
    return F.normalize(torch.cat(rows), dim=-1)


def main() -> None:
    bundle = mmlesson.load_clip(profile="tiny", device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / f"{i:05d}.png" for i in range(N)]
        for path, image in zip(paths, ShapesWorld(seed=11).sample(N).images):
            image.save(path)
        index = ImageIndex.build(bundle, folder, batch_size=BATCH, progress=False)
        assert torch.allclose(index.embeddings, batched_loop(bundle, paths), atol=1e-4), "results disagree"
        readme_s = best_seconds(lambda: readme_loop(bundle, paths), repeats=3)
        batched_s = best_seconds(lambda: batched_loop(bundle, paths), repeats=5)
        ours_s = best_seconds(lambda: ImageIndex.build(bundle, folder, batch_size=BATCH, progress=False), 5)
    print(f"README loop (one image at a time)   {N / readme_s:8,.0f} images/s")
    print(f"batched loop (64, no_grad)          {N / batched_s:8,.0f} images/s")
    print(f"ImageIndex.build                    {N / ours_s:8,.0f} images/s")
    threads = torch.get_num_threads()
    print(f"ratio README loop / ours            {readme_s / ours_s:8.2f}  (target >= 1.0)")
    print(f"ratio batched loop / ours           {batched_s / ours_s:8.2f}  (about 1.0, {threads} threads)")


if __name__ == "__main__":
    main()
