"""Seconds per image of the tiny DALL-E, sampling with the KV cache against recomputing the whole prefix.

Both sample the same 64 image tokens after a 12-slot caption with the same seed (they draw the same tokens;
tests/test_dalle.py checks that), then the VQGAN decodes them:
- full recompute: every step runs the GPT over the caption and all tokens so far (12 to 75 positions);
- KV cache: every step runs the GPT over the one new token and reuses the cached keys and values.
The ratio full-recompute time / KV-cache time must be >= 1.0. Absolute seconds per image are printed too
(the issue's bar: at most 1 second per image on 2 cores). The shipped weights are used, but speed does not
depend on them.

    python benchmarks/bench_dalle.py
"""

from functools import partial

import torch
from timing import best_seconds

import mmlesson

CAPTION = "a large red circle on the left"


def seconds_per_image(dalle: mmlesson.Dalle, n: int, use_cache: bool) -> float:
    def draw() -> None:
        dalle.decode(dalle.sample_codes(CAPTION, n, seed=0, use_cache=use_cache))

    return best_seconds(partial(draw), repeats=3) / n


def main() -> None:
    dalle = mmlesson.load_dalle("tiny", device="cpu")
    print(f"{torch.get_num_threads()} threads, {dalle.gpt!r}")
    for n in (1, 8):
        cached = seconds_per_image(dalle, n, use_cache=True)
        full = seconds_per_image(dalle, n, use_cache=False)
        print(
            f"n={n}  KV cache {cached:.3f} s/image   full recompute {full:.3f} s/image   "
            f"ratio {full / cached:5.2f}  (target >= 1.0; bar: KV cache <= 1 s/image)"
        )


if __name__ == "__main__":
    main()
