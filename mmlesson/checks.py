"""Input checks the lesson modules share: each refuses a value a learner could pass by mistake, naming the
argument and saying what would work, before it reaches PyTorch (whose own error would come from deep inside,
or never: a NaN pixel or a wrapped-around seed gives a silently wrong result)."""

from __future__ import annotations

import numbers
from typing import Any

import torch

from mmlesson.errors import InputError

MAX_SEED = 2**64 - 1  # torch's generators take 64-bit seeds; a negative seed would wrap around to a large one


def check_int(
    value: Any, name: str, minimum: int = 1, maximum: int | None = None, means: str = "", wanted: str = ""
) -> int:
    """`value` as an int, if it is a whole number (numpy's too, never a bool) from `minimum` to `maximum`.

    The message says which numbers are allowed (`wanted`, if given, says it in words) and ends with `means`:
    what the number is for.
    """
    if not wanted and maximum is not None:
        wanted = f"a whole number from {minimum} to {maximum}"
    elif not wanted:
        named = {0: "a non-negative integer", 1: "a positive integer"}
        wanted = named.get(minimum) or f"an integer >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be {wanted}, got {value!r} ({type(value).__name__}){means}")
    if value < minimum or (maximum is not None and value > maximum):
        raise InputError(f"{name} must be {wanted}, got {value!r}{means}")
    return int(value)


def check_seed(seed: Any) -> int:
    """A seed as torch's random generators take it: a whole number from 0 to 2**64 - 1.

    torch would read -1 as 2**64 - 1 (the same images as that seed) and fail deep inside for 2**64 and
    above; a float or a bool is almost always a mistake (seed=True is not "random").
    """
    return check_int(
        seed,
        "seed",
        0,
        MAX_SEED,
        means=" (torch's seeds are 64 bits): each seed gives its own reproducible result, e.g. seed=0",
        wanted="a non-negative integer up to 2**64 - 1",
    )


def check_finite_pixels(pixels: torch.Tensor, name: str) -> torch.Tensor:
    """Refuse pixels that are NaN or infinite, naming the images that hold them.

    No model complains about them: CLIP turns them into NaN embeddings, a VQGAN into token 0, and every
    result computed from those is silently wrong.
    """
    bad = ~torch.isfinite(pixels)
    if bad.any():
        images = bad.flatten(1).any(dim=1).nonzero().flatten().tolist() if bad.ndim == 4 else [0]
        raise InputError(
            f"{name} holds {int(bad.sum())} NaN or infinite pixel values (in image(s) {images[:10]}): find "
            "where they came from (a division by zero?), or replace them, e.g. pixels.nan_to_num(0.0)"
        )
    return pixels
