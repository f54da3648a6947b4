"""How fast does the Shapes world draw images, on one core?

Measures `ShapesWorld().sample(n)` at 64x64 (images per second, best of a few repeats) and, in the same
process, a floor: creating a blank 64x64 PIL image and drawing one ellipse on it, the least any PIL-drawn
dataset can do per image. The ratio ours / floor says what share of that floor speed we keep; it stays
roughly the same when a busy or slow machine scales both rates, so compare ratios across machines, and
use the absolute rate for the target (5,000 images/s, enough to train a tiny CLIP without waiting on data).

    python benchmarks/bench_shapes.py
"""

import os

from PIL import Image, ImageDraw

from mmlesson.course.timing import best_seconds
from mmlesson.data import BACKGROUND_RGB, COLOR_RGB, ShapesWorld

TARGET = 5_000  # images per second
N = 4_000
REPEATS = 5
SIZE = 64


def best_rate(make_images) -> float:
    """Images per second of the fastest of REPEATS runs: the least disturbed by other processes."""
    return N / best_seconds(make_images, REPEATS)


def floor() -> list[Image.Image]:
    images = []
    for _ in range(N):
        image = Image.new("RGB", (SIZE, SIZE), BACKGROUND_RGB)
        ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=COLOR_RGB["red"])
        images.append(image)
    return images


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as on a learner's laptop
    world = ShapesWorld(image_size=SIZE)
    world.sample(200)  # warm up: first calls pay for imports and caches
    ours, baseline = best_rate(lambda: world.sample(N)), best_rate(floor)
    print(f"ShapesWorld.sample   {ours:9,.0f} images/s  ({SIZE}x{SIZE}, best of {REPEATS} x {N:,})")
    print(f"floor (new + ellipse) {baseline:8,.0f} images/s")
    print(f"ratio ours / floor    {ours / baseline:8.2f}")
    print(f"{'PASS' if ours >= TARGET else 'FAIL'}: target {TARGET:,} images/s on one core")


if __name__ == "__main__":
    main()
