"""Data for the course: the Shapes world, its vocabulary, and a few bundled real photos.

The **Shapes world** draws one colored shape on a light background and describes it in words:
"a large red circle on the left". Every image is made from four attributes (color, shape, size, position),
so a lesson always knows the right answer: it can train a CLIP in a minute, hold some color x shape pairs
out of training to test compositional zero-shot classification, and measure from pixels whether a
generated "red circle" is red. Item i of a world is a pure function of (seed, image_size, combos, i), so
any item can be regenerated on its own, in any order, on any machine.

    >>> batch = ShapesWorld(seed=0).sample(4)
    >>> batch.captions[0]
    'a picture of a small green star at the top'
    >>> batch.attributes[0]
    {'color': 'green', 'shape': 'star', 'size': 'small', 'position': 'top', 'xy': (30.7, 18.8)}
    >>> batch.to_tensor().shape
    torch.Size([4, 3, 64, 64])

`photos()` returns real photographs that ship inside the scikit-image wheel (no download needed).
Reading a picture's color back from its pixels is `mmlesson.judge`'s; loading and converting images is
`mmlesson.images`'.
"""

from __future__ import annotations

import functools
import importlib.resources
import itertools
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PIL import Image, ImageDraw

from mmlesson.checks import check_int
from mmlesson.errors import InputError, MissingPackageError
from mmlesson.images import load_image, pil_to_tensor

# The names lessons use; see API.md.
__all__ = [
    "COLORS",
    "SHAPES",
    "SIZES",
    "POSITIONS",
    "POSITION_XY",
    "ALL_COMBOS",
    "COLOR_RGB",
    "BACKGROUND_RGB",
    "CAPTION_TEMPLATES",
    "HELD_OUT",
    "PROMPT_PREFIXES",
    "ZERO_SHOT_TEMPLATE",
    "render",
    "caption",
    "partial_caption",
    "training_caption",
    "course_texts",
    "ShapesItem",
    "ShapesBatch",
    "ShapesWorld",
    "Photo",
    "photos",
]

if TYPE_CHECKING:
    import torch

# ---------------------------------------------------------------------------------------------------------
# Vocabulary. Captions and zero-shot prompts are built from exactly these words, never from synonyms.

COLORS = ("red", "orange", "yellow", "green", "blue", "purple")
SHAPES = ("circle", "square", "triangle", "star", "heart")
SIZES = ("small", "large")
POSITIONS = ("left", "right", "top", "bottom", "center")
ALL_COMBOS: tuple[tuple[str, str], ...] = tuple(itertools.product(COLORS, SHAPES))

# Saturated colors whose hues lie far apart (about 0, 30, 56, 131, 225 and 279 degrees), so the color of a
# generated image can be read back from its pixels. The background is a neutral light gray: mixing it into
# an object's edge changes saturation, never hue.
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (250, 125, 0),
    "yellow": (240, 225, 0),
    "green": (30, 170, 55),
    "blue": (30, 80, 230),
    "purple": (150, 45, 205),
}
BACKGROUND_RGB = (240, 240, 240)

POSITION_PHRASES = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}

# Template 0 is the canonical caption; the others vary the sentence so a model learns the words, not one
# word order. Each keeps the vocabulary words intact, so prompts like "a red circle" still match.
CAPTION_TEMPLATES = (
    "a {size} {color} {shape} {where}",
    "a picture of a {size} {color} {shape} {where}",
    "a {color} {shape}, {size}, {where}",
    "{where}: a {size} {color} {shape}",
    "there is a {size} {color} {shape} {where}",
)

# ---------------------------------------------------------------------------------------------------------
# Geometry, as fractions of the image width so a world looks the same at every image_size.

MIN_IMAGE_SIZE = 16
SIZE_FRACTION = {"small": 0.28, "large": 0.5}  # the object's width (unrotated bounding box)
POSITION_XY = {
    "left": (0.28, 0.5),
    "right": (0.72, 0.5),
    "top": (0.5, 0.28),
    "bottom": (0.5, 0.72),
    "center": (0.5, 0.5),
}
COLOR_JITTER = 12  # per channel, in 0..255 units
POSITION_JITTER = 0.04  # fraction of the image
SIZE_JITTER = 0.08  # relative
ROTATION_JITTER = 12.0  # degrees; circles and hearts are drawn upright
ROTATED_SHAPES = ("square", "triangle", "star")
SUPERSAMPLE = 4  # draw each object at 4x and average down: smooth edges, so small stars keep their points
MARGIN = 1.5  # pixels kept free at the border, so rounding never lets the object touch it


def _normalized(points: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """Center a polygon's bounding box on (0, 0) and scale it so its wider side spans -1..1."""
    xs, ys = zip(*points, strict=True)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    half = max(max(xs) - min(xs), max(ys) - min(ys)) / 2
    return tuple(((x - cx) / half, (y - cy) / half) for x, y in points)


def _star(points: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    """A star pointing up; a fat inner radius (0.45, not the classic 0.38) keeps small stars star-like."""
    angles = (math.pi * k / points - math.pi / 2 for k in range(2 * points))
    return [(r * math.cos(a), r * math.sin(a)) for r, a in zip(itertools.cycle((1.0, inner)), angles)]


def _heart(steps: int = 48) -> list[tuple[float, float]]:
    """The classic parametric heart curve, flipped so it stands upright in image coordinates (y down)."""
    ts = (2 * math.pi * k / steps for k in range(steps))
    return [
        (
            16 * math.sin(t) ** 3,
            -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)),
        )
        for t in ts
    ]


# Unit polygons, computed once at import: drawing an item only scales, rotates and moves them.
# A 32-gon is indistinguishable from a circle at these sizes, and keeps every shape on one code path.
_UNIT_POLYGONS = {
    "circle": _normalized(
        [(math.cos(2 * math.pi * k / 32), math.sin(2 * math.pi * k / 32)) for k in range(32)]
    ),
    "square": _normalized([(-1, -1), (1, -1), (1, 1), (-1, 1)]),
    "triangle": _normalized([(0, -math.sqrt(3) / 2), (1, math.sqrt(3) / 2), (-1, math.sqrt(3) / 2)]),
    "star": _normalized(_star()),
    "heart": _normalized(_heart()),
}

# ---------------------------------------------------------------------------------------------------------
# Validation: every message names the bad value and says what would be accepted.


def _check_word(kind: str, word: Any, valid: Sequence[str]) -> str:
    """Raise ValueError unless `word` is one of the vocabulary words `valid`."""
    if word not in valid:
        raise InputError(f"unknown {kind} {word!r}; choose one of: {', '.join(valid)}")
    return word


def _check_pairs(name: str, pairs: Iterable[Any]) -> set[tuple[str, str]]:
    """Validate an iterable of (color, shape) pairs and return them as a set of tuples."""
    if isinstance(pairs, str) or not isinstance(pairs, Iterable):
        raise InputError(
            f"{name} must be a list of (color, shape) pairs such as [('red', 'circle')], got {pairs!r}"
        )
    checked = set()
    for pair in pairs:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise InputError(
                f"{name} must hold (color, shape) pairs such as ('red', 'circle'), got {pair!r}; "
                f"to use a single pair, wrap it in a list: [('red', 'circle')]"
            )
        checked.add((_check_word("color", pair[0], COLORS), _check_word("shape", pair[1], SHAPES)))
    return checked


def _resolve_combos(
    combos: Iterable[Any] | None, exclude: Iterable[Any] | None
) -> tuple[tuple[str, str], ...]:
    """The pairs a world draws from, in the fixed order of ALL_COMBOS.

    The fixed order matters: a set of pairs iterates in a different order in every Python process, and the
    order decides which pair item i gets.
    """
    wanted = set(ALL_COMBOS) if combos is None else _check_pairs("combos", combos)
    held_out = set() if exclude is None else _check_pairs("exclude", exclude)
    kept = tuple(pair for pair in ALL_COMBOS if pair in wanted and pair not in held_out)
    if not kept:
        raise InputError(
            "no (color, shape) pair is left once `exclude` is removed from `combos`; keep at least one pair"
        )
    return kept


# ---------------------------------------------------------------------------------------------------------
# Drawing


class UniformRNG(Protocol):
    """Anything with `uniform(low, high)`: a `random.Random` or a `numpy.random.Generator`."""

    def uniform(self, low: float, high: float) -> float: ...


def _jittered(value: float, spread: float, rng: UniformRNG | None) -> float:
    """`value` moved by up to `spread` either way; exactly `value` when there is no rng."""
    return value if rng is None else value + rng.uniform(-spread, spread)


def _coverage_mask(
    cx: float, cy: float, xs: list[float], ys: list[float]
) -> tuple[tuple[int, int], Image.Image]:
    """Draw the polygon (cx + xs, cy + ys) as an anti-aliased 8-bit mask; return (top-left corner, mask).

    PIL's polygons have hard, staircase edges. Drawing the mask at SUPERSAMPLE x resolution and averaging it
    down gives each edge pixel its covered fraction. Only the polygon's bounding box is drawn, and only in
    one channel, which keeps this cheap.
    """
    x0, y0 = math.floor(cx + min(xs)), math.floor(cy + min(ys))
    width, height = math.ceil(cx + max(xs)) - x0, math.ceil(cy + max(ys)) - y0
    mask = Image.new("L", (width * SUPERSAMPLE, height * SUPERSAMPLE), 0)
    dx, dy = cx - x0, cy - y0
    outline = [((dx + x) * SUPERSAMPLE, (dy + y) * SUPERSAMPLE) for x, y in zip(xs, ys, strict=True)]
    ImageDraw.Draw(mask).polygon(outline, fill=255)
    return (x0, y0), mask.reduce(SUPERSAMPLE)


def _draw(
    color: str, shape: str, size: str, position: str, image_size: int, rng: UniformRNG | None
) -> tuple[Image.Image, tuple[float, float]]:
    """Draw one object; return the image and the object's center in pixels. Arguments are trusted."""
    rgb = tuple(min(255, max(0, round(_jittered(c, COLOR_JITTER, rng)))) for c in COLOR_RGB[color])
    fx, fy = POSITION_XY[position]
    cx = _jittered(fx, POSITION_JITTER, rng) * image_size
    cy = _jittered(fy, POSITION_JITTER, rng) * image_size
    half = SIZE_FRACTION[size] * _jittered(1.0, SIZE_JITTER, rng) * image_size / 2
    degrees = _jittered(0.0, ROTATION_JITTER, rng) if shape in ROTATED_SHAPES else 0.0
    cos, sin = half * math.cos(math.radians(degrees)), half * math.sin(math.radians(degrees))
    xs = [x * cos - y * sin for x, y in _UNIT_POLYGONS[shape]]  # the outline around the center, in pixels
    ys = [x * sin + y * cos for x, y in _UNIT_POLYGONS[shape]]

    # Jitter or a large object near an edge may push the outline out of the image: slide it back inside.
    cx = min(max(cx, MARGIN - min(xs)), image_size - MARGIN - max(xs))
    cy = min(max(cy, MARGIN - min(ys)), image_size - MARGIN - max(ys))

    image = Image.new("RGB", (image_size, image_size), BACKGROUND_RGB)
    corner, mask = _coverage_mask(cx, cy, xs, ys)
    image.paste(rgb, corner, mask)
    return image, (round(cx, 1), round(cy, 1))


def render(
    color: str,
    shape: str,
    size: str,
    position: str,
    image_size: int = 64,
    rng: UniformRNG | None = None,
) -> Image.Image:
    """Draw one Shapes-world object on the background, for images whose right answer is known.

    With `rng=None` the object is drawn exactly as specified (no jitter). With an rng (`random.Random` or
    `numpy.random.Generator`) its color, position, size and, for squares, triangles and stars, rotation vary
    a little, as in `ShapesWorld` samples. The object always lies fully inside the image.
    """
    for kind, word, valid in (
        ("color", color, COLORS),
        ("shape", shape, SHAPES),
        ("size", size, SIZES),
        ("position", position, POSITIONS),
    ):
        _check_word(kind, word, valid)
    image_size = check_int(image_size, "image_size", MIN_IMAGE_SIZE)
    return _draw(color, shape, size, position, image_size, rng)[0]


def caption(attrs: dict[str, Any], template: int = 0) -> str:
    """Describe an object in words; template 0 gives the canonical "a large red circle on the left"."""
    if not (isinstance(template, int) and 0 <= template < len(CAPTION_TEMPLATES)):
        raise InputError(
            f"template must index CAPTION_TEMPLATES (0..{len(CAPTION_TEMPLATES) - 1}), got {template!r}"
        )
    return CAPTION_TEMPLATES[template].format(
        size=_check_word("size", attrs["size"], SIZES),
        color=_check_word("color", attrs["color"], COLORS),
        shape=_check_word("shape", attrs["shape"], SHAPES),
        where=POSITION_PHRASES[_check_word("position", attrs["position"], POSITIONS)],
    )


# --- the course's vocabulary: the pairs no model sees, prompts, the captions trainers write -----------------

# Held out of training: one pair per color, every shape at least once.
HELD_OUT = (
    ("red", "triangle"),
    ("orange", "star"),
    ("yellow", "heart"),
    ("green", "circle"),
    ("blue", "square"),
    ("purple", "star"),
)
PROMPT_PREFIXES = ("a", "a photo of a", "a picture of a", "an image of a", "a drawing of a")
ZERO_SHOT_TEMPLATE = "a photo of a {}"


def partial_caption(attributes: dict, rng: random.Random) -> str:
    """A short description naming only some attributes, e.g. 'a photo of a red shape' or 'a large star'."""
    color, shape, size = attributes["color"], attributes["shape"], attributes["size"]
    where = POSITION_PHRASES[attributes["position"]]
    phrase = rng.choice(
        (
            f"{color} {shape}",
            f"{color} shape",
            shape,
            f"{size} {shape}",
            f"{size} {color} {shape}",
            f"{color} {shape} {where}",
        )
    )
    return f"{rng.choice(PROMPT_PREFIXES)} {phrase}"


def training_caption(canonical: str, attributes: dict, rng: random.Random) -> str:
    """Half the time the world's own caption, otherwise a partial one."""
    return canonical if rng.random() < 0.5 else partial_caption(attributes, rng)


def course_texts() -> list[str]:
    """Every text the training can produce, plus the zero-shot prompts: the tiny CLIP's whole vocabulary."""
    texts = [ZERO_SHOT_TEMPLATE.format(f"{c} {s}") for c, s in ALL_COMBOS]
    for color, shape, size, position in itertools.product(COLORS, SHAPES, SIZES, POSITIONS):
        attributes = {"color": color, "shape": shape, "size": size, "position": position}
        texts += [caption(attributes, t) for t in range(len(CAPTION_TEMPLATES))]
    texts += [f"{prefix} shape" for prefix in PROMPT_PREFIXES]
    return texts


# ---------------------------------------------------------------------------------------------------------
# The Shapes world


@dataclass(frozen=True)
class ShapesItem:
    """One Shapes-world example: `world[i]`."""

    image: Image.Image
    caption: str
    attributes: dict[str, Any]


@dataclass
class ShapesBatch:
    """Examples side by side: `images[k]` is described by `captions[k]` and `attributes[k]`.

    `attributes[k]` holds the words `color`, `shape`, `size`, `position`, and `xy`, the object's center in
    pixels, for checks that need more than words.
    """

    images: list[Image.Image]
    captions: list[str]
    attributes: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.images)

    def to_tensor(self) -> torch.Tensor:
        """The images as a float tensor [N, 3, H, W] in [0, 1], ready for a model."""
        return pil_to_tensor(self.images)


class ShapesWorld:
    """An unlimited, deterministic dataset of captioned shapes.

    seed: picks the world; different seeds give different, independent items.
    image_size: width and height in pixels (at least 16).
    combos: the (color, shape) pairs to draw from; default: all 30 (`ALL_COMBOS`).
    exclude: pairs to hold out, e.g. train on `ShapesWorld(exclude=held)` and test compositional zero-shot
        classification on `ShapesWorld(seed=1, combos=held)`.
    """

    def __init__(
        self,
        seed: int = 0,
        image_size: int = 64,
        combos: Iterable[tuple[str, str]] | None = None,
        exclude: Iterable[tuple[str, str]] | None = None,
    ):
        self.seed = check_int(seed, "seed", 0)
        self.image_size = check_int(image_size, "image_size", MIN_IMAGE_SIZE)
        self.combos = _resolve_combos(combos, exclude)

    def __repr__(self) -> str:
        return f"ShapesWorld(seed={self.seed}, image_size={self.image_size}, {len(self.combos)} combos)"

    def __getitem__(self, i: int) -> ShapesItem:
        """Item i, the same whether asked for alone or inside any `sample`."""
        i = check_int(i, "index", 0)
        # Each item gets its own RNG, seeded from (seed, i) alone: no state flows from one item to the next.
        rng = random.Random(f"{self.seed}:{i}")
        color, shape = rng.choice(self.combos)
        attributes: dict[str, Any] = {
            "color": color,
            "shape": shape,
            "size": rng.choice(SIZES),
            "position": rng.choice(POSITIONS),
        }
        text = caption(attributes, rng.randrange(len(CAPTION_TEMPLATES)))
        image, xy = _draw(color, shape, attributes["size"], attributes["position"], self.image_size, rng)
        attributes["xy"] = xy
        return ShapesItem(image, text, attributes)

    def sample(self, n: int, start: int = 0) -> ShapesBatch:
        """Items start, start + 1, ..., start + n - 1, as a batch."""
        n = check_int(n, "n", 1)
        start = check_int(start, "start", 0)
        items = [self[i] for i in range(start, start + n)]
        return ShapesBatch(
            images=[item.image for item in items],
            captions=[item.caption for item in items],
            attributes=[item.attributes for item in items],
        )


# ---------------------------------------------------------------------------------------------------------
# Real photos bundled with scikit-image


@dataclass(frozen=True)
class Photo:
    """A real photograph: `label` is a short noun for prompts such as f"a photo of a {label}"."""

    name: str
    label: str
    image: Image.Image
    source: str


# name: (file inside the scikit-image wheel, label). These files ship in the wheel itself; other
# skimage.data images are downloaded on first use and would break offline lessons.
_PHOTO_FILES = {
    "astronaut": ("astronaut.png", "astronaut"),
    "brick": ("brick.png", "brick wall"),
    "camera": ("camera.png", "photographer"),
    "chelsea": ("chelsea.png", "cat"),
    "clock": ("clock_motion.png", "clock"),
    "coffee": ("coffee.png", "cup of coffee"),
    "coins": ("coins.png", "coin"),
    "horse": ("horse.png", "horse"),
    "hubble_deep_field": ("hubble_deep_field.jpg", "galaxy"),
    "immunohistochemistry": ("ihc.png", "tissue sample"),
    "moon": ("moon.png", "moon"),
    "retina": ("retina.jpg", "retina"),
    "rocket": ("rocket.jpg", "rocket"),
}


@functools.cache
def _bundled_photos() -> tuple[Photo, ...]:
    try:
        folder = importlib.resources.files("skimage") / "data"
    except ModuleNotFoundError as error:
        raise MissingPackageError(
            "photos() reads the photos that ship with scikit-image, which is not installed: "
            "run `pip install scikit-image`"
        ) from error
    return tuple(
        Photo(name, label, load_image(Path(str(folder / filename))), f"scikit-image: skimage.data.{name}()")
        for name, (filename, label) in sorted(_PHOTO_FILES.items())
    )


def photos() -> list[Photo]:
    """The bundled real photos, sorted by name; works offline. Each call returns fresh image copies."""
    return [replace(photo, image=photo.image.copy()) for photo in _bundled_photos()]
