"""Data for the course: the Shapes world, a few bundled real photos, and one image loader.

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

`photos()` returns real photographs that ship inside the scikit-image wheel (no download needed), and
`load_image()` turns anything a learner may pass (a path, a PIL image of any mode, a numpy array) into an
RGB PIL image, with an error message that says what to do when it cannot (an `ImageError`). It also refuses
images that are cheap to decode but ruinous to resize for a model, such as a 3 KB PNG of 1,000,000 x 1
pixels: a model resizes the shorter side to its input size, which would make that one 64,000,000 pixels wide.
"""

from __future__ import annotations

import colorsys
import functools
import importlib.resources
import itertools
import math
import numbers
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from mmlesson.errors import InputError, MissingFileError, MissingPackageError, MMLessonError

# The names lessons use; see API.md.
__all__ = [
    "COLORS",
    "SHAPES",
    "SIZES",
    "POSITIONS",
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
    "color_map",
    "color_shares",
    "dominant_color",
    "ShapesItem",
    "ShapesBatch",
    "ShapesWorld",
    "Photo",
    "photos",
    "ImageError",
    "load_image",
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
# Validation helpers: every message names the bad value and says what would be accepted.


def check_int(name: str, value: Any, minimum: int) -> int:
    """Return `value` as an int, or raise TypeError/ValueError saying which integers are allowed."""
    wanted = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name} must be {wanted}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise InputError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


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
    image_size = check_int("image_size", image_size, MIN_IMAGE_SIZE)
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
# Reading an image back: the independent check of generated images (no model involved)

SATURATION_MIN = 0.35  # below this a pixel is background gray, an edge blended into it, or near-white
VALUE_MIN = 0.25  # below this a pixel is too dark for its hue to mean much


def _hue(rgb: tuple[int, int, int]) -> float:
    return colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0]


COLOR_HUES = {name: _hue(rgb) for name, rgb in COLOR_RGB.items()}  # in turns: 0..1


def color_map(image: Image.Image | np.ndarray) -> np.ndarray:
    """[H, W]: for each pixel the index in COLORS of the palette color whose hue is nearest, or -1 where the
    pixel is not colored (saturation or brightness too low: the light-gray background, edges blended into
    it, dark smudges). Measured from the pixels alone, so it can check what any model generated."""
    hsv = np.asarray(load_image(image).convert("HSV"), dtype=np.float32) / 255
    palette = np.array([COLOR_HUES[name] for name in COLORS])
    distance = np.abs(hsv[..., :1] - palette)
    nearest = np.minimum(distance, 1 - distance).argmin(axis=-1)  # hue is an angle: 0.98 is near 0.02
    colored = (hsv[..., 1] >= SATURATION_MIN) & (hsv[..., 2] >= VALUE_MIN)
    return np.where(colored, nearest, -1)


def color_shares(image: Image.Image | np.ndarray) -> dict[str, float]:
    """The share of an image's pixels that `color_map` assigns to each palette color."""
    labels = color_map(image)
    counts = np.bincount(labels[labels >= 0], minlength=len(COLORS)) / labels.size
    return dict(zip(COLORS, counts.tolist()))


def dominant_color(image: Image.Image | np.ndarray, min_share: float = 0.01) -> str | None:
    """The palette color most of an image's colored pixels are nearest to, measured from the pixels alone;
    None when under `min_share` of the image is colored at all (a blank or gray picture)."""
    shares = color_shares(image)
    best = max(shares, key=shares.get)
    return best if shares[best] >= min_share else None


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
        import torch  # imported here: it takes seconds, and drawing shapes does not need it

        pixels = torch.from_numpy(np.stack([np.asarray(image) for image in self.images]))
        return pixels.permute(0, 3, 1, 2).float().div(255).contiguous()


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
        self.seed = check_int("seed", seed, 0)
        self.image_size = check_int("image_size", image_size, MIN_IMAGE_SIZE)
        self.combos = _resolve_combos(combos, exclude)

    def __repr__(self) -> str:
        return f"ShapesWorld(seed={self.seed}, image_size={self.image_size}, {len(self.combos)} combos)"

    def __getitem__(self, i: int) -> ShapesItem:
        """Item i, the same whether asked for alone or inside any `sample`."""
        i = check_int("index", i, 0)
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
        n = check_int("n", n, 1)
        start = check_int("start", start, 0)
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


# ---------------------------------------------------------------------------------------------------------
# Loading images

# A model resizes an image so that its shorter side is the model's input size S, then crops the center: the
# resized copy has about S * S * (long side / short side) pixels. PIL's decompression-bomb guard counts the
# decoded pixels only, so a 3 KB PNG of 1,000,000 x 1 pixels passes it (3 MB decoded) and then resizes to
# 64 x 64,000,000 pixels (12 GB) for a 64-pixel model. Photos are at most about 4:1 and panoramas about 10:1.
MAX_ASPECT_RATIO = 50
# The most pixels an image may have once its shorter side is resized to `resize_to` (50 MB as 8-bit RGB,
# 200 MB as floats). At the usual input sizes (64, 224, 336) the aspect ratio limit comes first; this one
# bounds models with large inputs.
MAX_RESIZED_PIXELS = 2**24

_WHITE = (255, 255, 255)
_HIGH_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageError(MMLessonError, ValueError):
    """An image that cannot be used: unreadable, damaged, not an image, empty, or too thin to resize.

    Also a ValueError, which `load_image` raised for these before: code that catches that still works.
    """


def _check_proportions(size: tuple[int, int], what: str, resize_to: int | None) -> None:
    """Refuse an image that is empty, or whose resizing for a model would take unreasonable memory.

    Checked on the size alone (for a file: from its header, before decoding), so it costs nothing.
    """
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{what} is empty ({width} x {height} pixels); an image needs at least one pixel")
    short, long = sorted((width, height))
    if long > MAX_ASPECT_RATIO * short:
        raise ImageError(
            f"{what} is {width} x {height} pixels: its long side is over {MAX_ASPECT_RATIO} times its short "
            f"side (aspect ratio {long / short:,.0f}:1). Such thin images are refused: resizing one for a "
            f"model (shorter side to the model's input size) multiplies its pixels by that ratio, to "
            f"gigabytes for the thinnest. Crop the part you need first, e.g. image.crop((left, top, right, "
            f"bottom))"
        )
    if resize_to is not None and resize_to * math.ceil(long * resize_to / short) > MAX_RESIZED_PIXELS:
        resized = resize_to * math.ceil(long * resize_to / short)
        raise ImageError(
            f"{what} is {width} x {height} pixels; resized so that its shorter side is {resize_to} (the "
            f"model's input size) it would have {resized:,} pixels, more than the {MAX_RESIZED_PIXELS:,} "
            f"allowed: crop it closer to a square first, e.g. image.crop((left, top, right, bottom))"
        )


def _on_white(image: Image.Image) -> Image.Image:
    """Composite a transparent image onto white: transparent pixels would otherwise show arbitrary colors."""
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (*_WHITE, 255)), rgba).convert("RGB")


def _to_uint8(array: np.ndarray, what: str) -> np.ndarray:
    """Map an array's values to 0..255.

    Booleans become 0/255, uint16 is 16-bit, other integers are 8-bit if they fit in 0..255 and 16-bit if
    they fit in 0..65535, floats are read as 0..1 (or as 0..255 if some value exceeds 1). NaN and infinite
    values are refused: converted, they would become arbitrary pixels and every result computed from them
    would be quietly wrong.
    """
    if array.size == 0:
        raise ImageError(f"{what} is empty; an image needs at least one pixel")
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    low, high = array.min(), array.max()
    if np.issubdtype(array.dtype, np.integer):
        if low >= 0 and high <= 255 and not np.issubdtype(array.dtype, np.uint16):
            return array.astype(np.uint8)
        if low >= 0 and high <= 65535:
            return (array / 257).round().astype(np.uint8)
        raise ImageError(f"{what} holds values {low}..{high}; integer images must lie in 0..255 or 0..65535")
    if np.issubdtype(array.dtype, np.floating):
        if not (np.isfinite(low) and np.isfinite(high)):  # min and max are NaN or infinite if any value is
            raise ImageError(
                f"{what} holds NaN or infinite values; float images must lie in [0, 1] (or 0..255): find "
                f"where they came from (a division by zero?), or replace them, e.g. np.nan_to_num(a)"
            )
        if not (low >= 0 and high <= 255):
            raise ImageError(
                f"{what} holds values {low}..{high}; float images must lie in [0, 1] (or 0..255), e.g. "
                f"rescale with (a - a.min()) / (a.max() - a.min())"
            )
        return (array * (255 if high <= 1 else 1)).round().astype(np.uint8)
    raise InputError(f"{what} has dtype {array.dtype}; use uint8, uint16, bool or float")


def _array_to_rgb(array: np.ndarray, what: str, resize_to: int | None = None) -> Image.Image:
    """An (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array as an RGB image; 4 channels are RGBA."""
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        hint = (
            " (channels first? use a.transpose(1, 2, 0))"
            if array.ndim == 3 and array.shape[0] in (1, 3, 4)
            else ""
        )
        raise ImageError(
            f"{what} has shape {array.shape}; expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4){hint}"
        )
    _check_proportions((array.shape[1], array.shape[0]), what, resize_to)
    image = Image.fromarray(np.ascontiguousarray(_to_uint8(array, what)))
    return _on_white(image) if image.mode == "RGBA" else image.convert("RGB")


def _pil_to_rgb(image: Image.Image, what: str) -> Image.Image:
    if image.mode in _HIGH_BIT_MODES:
        return _array_to_rgb(np.asarray(image), what)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        return _on_white(image)
    return image.convert("RGB")


def _open_file(path: Path, resize_to: int | None) -> Image.Image:
    """Decode an image file. A file this process may not read is told apart from a damaged one: the first
    needs a permission changed, the second a new copy."""
    try:
        return _decode_file(path, resize_to)
    except PermissionError as error:
        raise ImageError(
            f"{path} cannot be read: permission denied ({error.strerror or error}). Give yourself read "
            f"access (chmod u+r on the file, u+x on the folders above it), or copy it to a folder of yours"
        ) from None


def _decode_file(path: Path, resize_to: int | None) -> Image.Image:
    if not path.exists():
        raise MissingFileError(
            f"no file at {path}: check the spelling, and that relative paths start from the working directory"
        )
    if path.is_dir():
        raise ImageError(
            f"{path} is a directory; pass one image file, e.g. one of sorted(Path(folder).glob('*.png'))"
        )
    if path.stat().st_size == 0:
        raise ImageError(f"{path} is empty (0 bytes); download or export the image again")
    try:
        with Image.open(path) as image:
            _check_proportions(image.size, str(path), resize_to)  # the header's size, before decoding
            image.load()  # decode now, so a truncated file fails here and the file is closed on return
            return _pil_to_rgb(image, str(path))
    except PermissionError:
        raise  # not a damaged file: _open_file says what to do
    except Image.DecompressionBombError as error:
        raise ImageError(
            f"{path} is too large to open safely ({error}); save a smaller copy first. If you trust the "
            f"file: set PIL.Image.MAX_IMAGE_PIXELS = None, open it, call .thumbnail((2048, 2048)), save it"
        ) from error
    except UnidentifiedImageError as error:
        raise ImageError(
            f"{path} is not an image file that PIL can read; pass a PNG, JPEG, GIF, BMP, TIFF or WebP"
        ) from error
    except (OSError, SyntaxError) as error:
        raise ImageError(
            f"{path} could not be decoded ({error}): it may be truncated or corrupt; get it again"
        ) from error


def load_image(item: Image.Image | str | Path | np.ndarray, resize_to: int | None = None) -> Image.Image:
    """Turn anything a learner may pass into a new RGB PIL image.

    item: a PIL image of any mode (transparency is composited onto white, 16-bit and float images are
    scaled to 8 bits), a file path (str or Path, `~` allowed), or a numpy array (H, W), (H, W, 1), (H, W, 3)
    or (H, W, 4) of uint8, uint16, bool, or float in [0, 1] (NaN and infinite values are refused).
    resize_to: the input size of the model the image is for, which resizes the shorter side to it; an image
    whose resized copy would exceed MAX_RESIZED_PIXELS is refused.

    Whatever `resize_to` is, an image more than MAX_ASPECT_RATIO (50) times longer than wide is refused: it
    may be tiny to decode, yet resizing it for any model takes gigabytes. A file's size is read from its
    header, so such a file is refused before it is decoded. Raises `ImageError` (a ValueError) for an image
    that cannot be used, FileNotFoundError for a missing file, TypeError for an object that is no image.
    """
    if resize_to is not None:
        resize_to = check_int("resize_to", resize_to, 1)
    if isinstance(item, Image.Image):
        what = f"the {item.mode} image of size {item.size}"
        _check_proportions(item.size, what, resize_to)
        return _pil_to_rgb(item, what)
    if isinstance(item, (str, Path)):
        if isinstance(item, str) and item.startswith(("http://", "https://")):
            raise ImageError(f"load_image reads local files; download {item} first and pass the file's path")
        return _open_file(Path(item).expanduser(), resize_to)
    if isinstance(item, np.ndarray):
        return _array_to_rgb(item, f"the array of shape {item.shape} and dtype {item.dtype}", resize_to)
    hint = (
        "; for a torch tensor [3, H, W] pass t.permute(1, 2, 0).cpu().numpy()"
        if hasattr(item, "permute")
        else ""
    )
    raise InputError(
        f"load_image takes a PIL image, a file path or a numpy array, got {type(item).__name__}{hint}"
    )
