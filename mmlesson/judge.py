"""Reading a generated Shapes-world picture back: which color, where, which shape.

A text-to-image model is only as good as a check that does not trust it. In the Shapes world two of the
three attributes can be measured from pixels with no model at all:
- the object is its colored pixels (`data.color_map`: saturated enough to have a hue; the light-gray
  background and edges blended into it have none);
- its color is `data.dominant_color`: the palette color that most of those pixels are nearest to in hue
  (hue, because an anti-aliased edge mixes the color with gray, which changes saturation, not hue);
- its position is the `POSITION_XY` point nearest to the centroid of those pixels (the world
  places an object's bounding box, not its centroid, but a stray speck moves a box more than a centroid;
  the price: a large triangle's centroid lies low, and about 1 real image in 600 is misread).
The shape needs a model: the shipped tiny CLIP, zero-shot over the five shape names. The same CLIP can
rerank samples by how well they match their caption (DALL-E 1 drew 512 samples and kept CLIP's favourites).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from mmlesson import data
from mmlesson.clip import ClipBundle, InputError
from mmlesson.zeroshot import SHAPES_TEMPLATES, classify

# The names lessons use; see API.md.
__all__ = [
    "ATTRIBUTES",
    "judge",
    "object_position",
    "object_shapes",
    "clip_scores",
    "rerank",
]

ATTRIBUTES = ("color", "position", "shape")  # what `judge` checks, the keys of each attribute set


def object_position(image: Image.Image) -> str | None:
    """The position word whose point is nearest to the object's centroid; None when no object is drawn."""
    ys, xs = np.nonzero(data.color_map(image) >= 0)
    if len(xs) == 0:
        return None
    x, y = (xs.mean() + 0.5) / image.width, (ys.mean() + 0.5) / image.height  # pixel centers, as fractions
    return min(
        data.POSITIONS, key=lambda p: (data.POSITION_XY[p][0] - x) ** 2 + (data.POSITION_XY[p][1] - y) ** 2
    )


def object_shapes(clip: ClipBundle, images: Sequence[Image.Image]) -> list[str]:
    """CLIP's zero-shot shape for each image (prompts "a {shape}", "a photo of a {shape}", ... averaged)."""
    probabilities = classify(clip, list(images), list(data.SHAPES), SHAPES_TEMPLATES)
    return [data.SHAPES[k] for k in probabilities.argmax(dim=1).tolist()]


def judge(
    clip: ClipBundle, images: Sequence[Image.Image], attributes: Sequence[dict]
) -> dict[str, list[bool]]:
    """For each image, whether its color, position and shape are those of `attributes` (its caption's)."""
    if len(images) != len(attributes):
        raise InputError(f"{len(images)} images but {len(attributes)} attribute sets: give one per image")
    for k, wanted in enumerate(attributes):
        if not isinstance(wanted, dict) or not set(ATTRIBUTES) <= wanted.keys():
            raise InputError(
                f"attribute set {k} must be a dict with the keys {', '.join(ATTRIBUTES)} (as a Shapes-world "
                f"batch's `attributes` are), got {wanted!r}"
            )
    shapes = object_shapes(clip, images)
    return {
        "color": [data.dominant_color(image) == a["color"] for image, a in zip(images, attributes)],
        "position": [object_position(image) == a["position"] for image, a in zip(images, attributes)],
        "shape": [shape == a["shape"] for shape, a in zip(shapes, attributes)],
    }


def clip_scores(clip: ClipBundle, caption: str, images: Sequence[Image.Image]) -> torch.Tensor:
    """Cosine similarity [N] between the caption and each image, as CLIP sees them."""
    return (clip.encode_images(list(images)) @ clip.encode_texts([caption]).T).squeeze(1)


def rerank(clip: ClipBundle, caption: str, images: Sequence[Image.Image]) -> list[Image.Image]:
    """The images, best match to the caption first (by `clip_scores`)."""
    order = clip_scores(clip, caption, images).argsort(descending=True).tolist()
    return [images[k] for k in order]
