"""Reading a generated Shapes-world picture back: which color, where, which shape.

A text-to-image model is only as good as a check that does not trust it. In the Shapes world two of the
three attributes can be measured from pixels with no model at all:
- the object is its colored pixels (`color_map`: saturated enough to have a hue; the light-gray
  background and edges blended into it have none);
- its color is `dominant_color`: the palette color that most of those pixels are nearest to in hue
  (hue, because an anti-aliased edge mixes the color with gray, which changes saturation, not hue);
- its position is the `POSITION_XY` point nearest to the centroid of those pixels (the world
  places an object's bounding box, not its centroid, but a stray speck moves a box more than a centroid;
  the price: a large triangle's centroid lies low, and about 1 real image in 600 is misread).
The shape needs a model: the shipped tiny CLIP, zero-shot over the five shape names. The same CLIP can
rerank samples by how well they match their caption (DALL-E 1 drew 512 samples and kept CLIP's favourites).
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from mmlesson import data
from mmlesson.clip import ClipBundle
from mmlesson.errors import InputError
from mmlesson.images import load_image
from mmlesson.zeroshot import SHAPES_TEMPLATES, classify

# The names lessons use; see API.md.
__all__ = [
    "color_map",
    "color_shares",
    "dominant_color",
    "ATTRIBUTES",
    "match_attributes",
    "object_position",
    "object_shapes",
    "clip_scores",
    "rerank",
    "evaluation_attributes",
    "evaluate_generator",
    "diversity",
]

# -- color, from the pixels alone ---------------------------------------------------------------------------

SATURATION_MIN = 0.35  # below this a pixel is background gray, an edge blended into it, or near-white
VALUE_MIN = 0.25  # below this a pixel is too dark for its hue to mean much


def _hue(rgb: tuple[int, int, int]) -> float:
    return colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0]


COLOR_HUES = {name: _hue(rgb) for name, rgb in data.COLOR_RGB.items()}  # in turns: 0..1


def color_map(image: Image.Image | np.ndarray) -> np.ndarray:
    """[H, W]: for each pixel the index in data.COLORS of the palette color whose hue is nearest, or -1 where
    the pixel is not colored (saturation or brightness too low: the light-gray background, edges blended into
    it, dark smudges). Measured from the pixels alone, so it can check what any model generated."""
    hsv = np.asarray(load_image(image).convert("HSV"), dtype=np.float32) / 255
    palette = np.array([COLOR_HUES[name] for name in data.COLORS])
    distance = np.abs(hsv[..., :1] - palette)
    nearest = np.minimum(distance, 1 - distance).argmin(axis=-1)  # hue is an angle: 0.98 is near 0.02
    colored = (hsv[..., 1] >= SATURATION_MIN) & (hsv[..., 2] >= VALUE_MIN)
    return np.where(colored, nearest, -1)


def color_shares(image: Image.Image | np.ndarray) -> dict[str, float]:
    """The share of an image's pixels that `color_map` assigns to each palette color."""
    labels = color_map(image)
    counts = np.bincount(labels[labels >= 0], minlength=len(data.COLORS)) / labels.size
    return dict(zip(data.COLORS, counts.tolist()))


def dominant_color(image: Image.Image | np.ndarray, min_share: float = 0.01) -> str | None:
    """The palette color most of an image's colored pixels are nearest to, measured from the pixels alone;
    None when under `min_share` of the image is colored at all (a blank or gray picture)."""
    shares = color_shares(image)
    best = max(shares, key=shares.get)
    return best if shares[best] >= min_share else None


# -- the judge -----------------------------------------------------------------------------------------------

ATTRIBUTES = ("color", "position", "shape")  # what `match_attributes` checks, the keys of each attribute set


def object_position(image: Image.Image) -> str | None:
    """The position word whose point is nearest to the object's centroid; None when no object is drawn."""
    ys, xs = np.nonzero(color_map(image) >= 0)
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


def match_attributes(
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
        "color": [dominant_color(image) == a["color"] for image, a in zip(images, attributes)],
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


def diversity(clip: ClipBundle, images: Sequence[Image.Image]) -> float:
    """How different a caption's samples are, as CLIP sees them: the mean cosine distance (1 - cosine)
    between the embeddings of every pair of images. 0: all the same picture; about 0.5 and up: as
    different as pictures of different captions usually are."""
    if len(images) < 2:
        raise InputError(f"diversity needs at least 2 images to compare, got {len(images)}")
    embeddings = clip.encode_images(list(images))
    cosines = embeddings @ embeddings.T
    pairs = len(images) * (len(images) - 1)
    return float((1 - cosines).sum() / pairs)  # the diagonal adds 0


# -- measuring a text-to-image generator ---------------------------------------------------------------------

Generator = Callable[[list[str], int, int], list[Image.Image]]  # (captions, samples each, seed) -> images


def evaluation_attributes(
    combos: Sequence[tuple[str, str]] = data.ALL_COMBOS,
    sizes: Sequence[str] = data.SIZES,
    positions: Sequence[str] = data.POSITIONS,
) -> list[dict]:
    """One attribute set per combo x size x position, in that order; its caption is `data.caption(a)`."""
    return [
        {"color": color, "shape": shape, "size": size, "position": position}
        for color, shape in combos
        for size in sizes
        for position in positions
    ]


def evaluate_generator(
    draw: Generator,
    clip: ClipBundle,
    attributes: Sequence[dict],
    samples: int,
    seed: int,
    captions_per_batch: int = 40,
) -> dict[str, float]:
    """Match rates of `samples` images per caption "a {size} {color} {shape} {where}" drawn by
    `draw(captions, samples, seed)`, for all captions and for those whose color x shape pair was held out
    of training (`data.HELD_OUT`) or not.

    `{color,position,shape}_{all,held_in,held_out}`: the share of all samples whose attribute matches.
    `{...}_reranked_{all,held_in,held_out}`: the same for one image per caption, the one the CLIP ranks
    first of its samples; `rerank_shape_gain` = shape_reranked_all - shape_all. The shape judge and the
    reranker are the same CLIP, so that gain is partly CLIP agreeing with itself; color and position after
    reranking are measured from pixels and say whether the picks are really better.
    """
    held_out, results, reranked = set(data.HELD_OUT), [], []
    for first in range(0, len(attributes), captions_per_batch):
        group = attributes[first : first + captions_per_batch]
        captions = [data.caption(a) for a in group]
        images = draw(captions, samples, seed + first)
        expected = [a for a in group for _ in range(samples)]
        results.append(match_attributes(clip, images, expected))
        picks = [
            rerank(clip, caption, images[k * samples : (k + 1) * samples])[0]
            for k, caption in enumerate(captions)
        ]
        reranked.append(match_attributes(clip, picks, group))
    picks_held_out = torch.tensor([(a["color"], a["shape"]) in held_out for a in attributes])
    samples_held_out = picks_held_out.repeat_interleave(samples)
    metrics = {}
    for name in ATTRIBUTES:
        metrics |= _rates(name, [m for result in results for m in result[name]], samples_held_out)
        metrics |= _rates(
            f"{name}_reranked", [m for result in reranked for m in result[name]], picks_held_out
        )
    metrics["rerank_shape_gain"] = metrics["shape_reranked_all"] - metrics["shape_all"]
    return metrics


def _rates(name: str, matches: list[bool], held_out: torch.Tensor) -> dict[str, float]:
    """`{name}_all`, and `{name}_held_in` / `{name}_held_out` where some items are of that group."""
    matches = torch.tensor(matches, dtype=torch.float)
    rates = {f"{name}_all": matches.mean().item()}
    for group, mask in (("held_in", ~held_out), ("held_out", held_out)):
        if mask.any():
            rates[f"{name}_{group}"] = matches[mask].mean().item()
    return rates
