"""Is `ClipBundle.encode_images` at least as fast as the obvious loop over open_clip's `encode_image`?

Both embed the same 512 Shapes images with the shipped tiny CLIP on the CPU:
- baseline: for each image, `preprocess`, add a batch dimension, `model.encode_image`, normalize
  (what a first notebook would write; gradients tracked, one image at a time);
- ours: `bundle.encode_images(images)` (batches of 64 under `torch.inference_mode`).
The ratio baseline time / our time must be >= 2.0 (issue 17). Results are also checked to agree.

    python benchmarks/bench_clip_encode.py
"""

import torch
import torch.nn.functional as F

import mmlesson
from mmlesson.course.timing import best_seconds
from mmlesson.data import ShapesWorld

N = 512


def plain_loop(bundle, images) -> torch.Tensor:
    rows = [bundle.model.encode_image(bundle.preprocess(image).unsqueeze(0)) for image in images]
    return F.normalize(torch.cat(rows), dim=-1)


def main() -> None:
    bundle = mmlesson.load_clip(profile="tiny", device="cpu")
    images = ShapesWorld(seed=7).sample(N).images
    ours = bundle.encode_images(images)
    assert torch.allclose(ours, plain_loop(bundle, images).detach(), atol=1e-4), "the two paths disagree"
    baseline_s = best_seconds(lambda: plain_loop(bundle, images), repeats=3)
    ours_s = best_seconds(lambda: bundle.encode_images(images), repeats=3)
    print(f"plain loop over encode_image   {N / baseline_s:8,.0f} images/s")
    print(f"ClipBundle.encode_images       {N / ours_s:8,.0f} images/s")
    threads = torch.get_num_threads()
    print(f"ratio (loop time / our time)   {baseline_s / ours_s:8.2f}  (target >= 2.0, {threads} threads)")


if __name__ == "__main__":
    main()
