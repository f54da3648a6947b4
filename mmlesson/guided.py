"""CLIP-guided generation, the "z + quantize" method of VQGAN+CLIP: optimize a VQGAN latent until CLIP
finds the decoded image close to the prompt.

Each step: quantize the latent to codebook entries with a straight-through gradient, decode it, clamp the
pixels to [0, 1] (straight-through too, so pixels at the edge still get gradient), cut many random crops
("cutouts") out of the image, jitter them, embed them with CLIP, and move the latent so that the cutouts'
embeddings approach the prompts with positive weights and leave those with negative weights. Cutouts and
jitter are what keep the result an *image*: optimized against one fixed view, CLIP is fooled by pixel
patterns no person would call a red circle.

Prompts are written `"a red circle:1 | blurry:-0.5"`: texts separated by `|`, each with an optional weight.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from mmlesson.checks import check_finite_pixels, check_int, check_seed
from mmlesson.clip import ClipBundle, ImageInput, OutOfMemoryAdvice, load_clip
from mmlesson.course.assets import written_atomically
from mmlesson.errors import InputError, MMLessonError
from mmlesson.images import tensor_to_pil
from mmlesson.schedule import learning_rate, set_learning_rate
from mmlesson.vqgan import VQGAN, load_vqgan

# The names lessons use; see API.md.
__all__ = [
    "Prompt",
    "Generation",
    "parse_prompts",
    "spherical_distance",
    "make_cutouts",
    "generate",
    "save_animation",
]

_WEIGHT = re.compile(r"^(?P<text>.*):(?P<weight>\S*)\s*$", re.DOTALL)
# Only the ratios of the weights matter (Adam rescales the gradient), and at 100:1 one prompt already
# drowns the other; larger weights add nothing but overflow (1e308 makes the loss inf, then NaN, the image
# black), and weights below 0.01 in size round to nothing beside a weight of 1.
WEIGHT_RANGE = (0.01, 100.0)


@dataclass(frozen=True)
class Prompt:
    text: str
    weight: float = 1.0


@dataclass
class Generation:
    """What `generate` made: the final image, frames along the way, and the loss of every step."""

    image: Image.Image
    frames: list[Image.Image]
    losses: list[float]
    prompts: list[Prompt]


def parse_prompts(spec: str) -> list[Prompt]:
    """`"a red circle:1 | blurry:-0.5"` -> [Prompt("a red circle", 1.0), Prompt("blurry", -0.5)].

    A weight is what follows the last colon when that is one word ("a red circle:2"); a colon followed by
    words is part of the text ("at the top: a red star"). At least one prompt must have a positive weight,
    and every weight lies between 0.01 and 100 in size (see `WEIGHT_RANGE`).
    """
    if not isinstance(spec, str):
        raise InputError(f'the prompt must be a string, e.g. "a red circle", got {type(spec).__name__}')
    if not spec.strip():
        raise InputError('the prompt is empty: describe the image, e.g. "a red circle"')
    prompts = [_parse_one(part) for part in spec.split("|")]
    if not any(p.weight > 0 for p in prompts):
        raise InputError(
            f"{spec!r} has only negative or zero weights: add a prompt to move towards, e.g. 'a red circle | "
            "blurry:-0.5'"
        )
    return prompts


def _parse_one(part: str) -> Prompt:
    match = _WEIGHT.match(part)
    text, weight = (match["text"], match["weight"]) if match else (part, "1")
    if not text.strip():
        raise InputError(f"an empty prompt between '|' separators in {part!r}: remove the extra '|'")
    try:
        value = float(weight)
    except ValueError:
        example = f"{text.strip()}:0.5"
        raise InputError(
            f"cannot read the weight {weight!r} of {text.strip()!r}: write a number, e.g. {example!r}"
        ) from None
    smallest, largest = WEIGHT_RANGE
    if not (math.isfinite(value) and smallest <= abs(value) <= largest):
        raise InputError(
            f"the weight of {text.strip()!r} must be between {smallest} and {largest:g} in size (negative to "
            f"push away), got {weight!r}: only the ratio of the weights matters, e.g. "
            f"'{text.strip()}:2 | blurry:-0.5'"
        )
    return Prompt(text.strip(), value)


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance between unit vectors, [A, B] (VQGAN+CLIP's loss; 0 when equal)."""
    return (a[:, None] - b[None]).norm(dim=-1).div(2).clamp(max=1).arcsin().square().mul(2)


def make_cutouts(image: torch.Tensor, count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """`count` random square crops of `image` [1, 3, H, W], each resized to `size`, flipped or not, noised.

    Crop sides are drawn between half and all of the image's shorter side, positions anywhere inside. A
    resize is linear in the pixels, so each crop is two matrix products, `rows @ image @ columns.T`, and all
    crops are made in one batched product, forwards and backwards (see `resize_matrices`); a horizontal flip
    is the column matrix upside down. Flips and a little noise mean no single pixel pattern can satisfy
    CLIP for every cutout.
    """
    height, width = image.shape[-2:]

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=image.device)

    side = min(height, width) * (0.5 + 0.5 * uniform(count))
    left, top = (width - side) * uniform(count), (height - side) * uniform(count)
    rows = resize_matrices(top, side, height, size)
    columns = resize_matrices(left, side, width, size)
    columns = torch.where(uniform(count, 1, 1) < 0.5, columns.flip(1), columns)
    cutouts = rows[:, None] @ image @ columns[:, None].transpose(-1, -2)
    noise = torch.randn(cutouts.shape, generator=generator, device=image.device)
    return cutouts + 0.05 * uniform(count, 1, 1, 1) * noise


def resize_matrices(start: torch.Tensor, side: torch.Tensor, length: int, size: int) -> torch.Tensor:
    """[count, size, length] matrices that resize the spans `start .. start + side` of a `length`-pixel
    line to `size` pixels: row i holds the weights of the input pixels averaged into output pixel i.

    The weights are a triangle ("tent") around the output pixel's centre: bilinear interpolation when
    enlarging, widened to the span one output pixel covers when shrinking, so nothing aliases.
    """
    step = (side / size)[:, None]  # input pixels per output pixel
    centres = start[:, None] + (torch.arange(size, device=start.device) + 0.5) * step
    pixels = torch.arange(length, device=start.device) + 0.5
    scale = step.clamp(min=1)[:, :, None]
    weights = (1 - (centres[:, :, None] - pixels).abs() / scale).clamp(min=0)
    return weights / weights.sum(dim=-1, keepdim=True).clamp(min=1e-12)


def generate(
    prompt: str,
    steps: int = 150,
    seed: int = 0,
    profile: str | None = None,
    size: int | None = None,
    cutouts: int = 16,
    lr: float = 0.15,
    init_image: ImageInput | torch.Tensor | None = None,
    image_prompts: ImageInput | Sequence[ImageInput] = (),
    frame_every: int = 10,
    callback: Callable[[int, Image.Image, float], None] | None = None,
    clip: ClipBundle | None = None,
    vqgan: VQGAN | None = None,
) -> Generation:
    """Generate an image for `prompt` (see `parse_prompts`), reproducibly for a `seed` (0 to 2**64 - 1).

    Pass `clip` and `vqgan` to reuse loaded models; otherwise those of `profile` are loaded. `image_prompts`
    (one image or a list) pull towards images (weight 1 each); `init_image` starts from an image instead
    of random tokens. A frame is kept, and `callback(step, image, loss)` called (e.g. to show the image
    live), at step 0, every `frame_every` steps (a positive integer), and at the last step.
    """
    loop = _Loop(steps, lr, frame_every, callback)
    check_int(cutouts, "cutouts")
    seed = check_seed(seed)
    prompts = parse_prompts(prompt)
    image_prompts = [image_prompts] if isinstance(image_prompts, ImageInput) else list(image_prompts)
    if isinstance(init_image, torch.Tensor):
        check_finite_pixels(init_image, "init_image")
    clip = clip or load_clip(profile)
    vqgan = vqgan or load_vqgan(profile, device=clip.device)
    size = vqgan.check_size(vqgan.resolution if size is None else check_int(size, "size"))
    with OutOfMemoryAdvice(_memory_advice(size, cutouts)):
        # The generator lives on the models' device: no copies of random numbers at every step.
        generator = torch.Generator(clip.device).manual_seed(seed)
        objective = _Objective(clip, *_targets(clip, prompts, image_prompts), cutouts, generator)
        latents = _initial_latents(vqgan, size, init_image, generator)
        image, frames, losses = loop.run(vqgan, objective, latents)
    return Generation(image, frames, losses, prompts)


def _memory_advice(size: int, cutouts: int) -> str:
    return (
        f"at {size}x{size} px with {cutouts} cutouts: try fewer cutouts "
        f"(e.g. cutouts={max(1, cutouts // 2)}) or a smaller size (e.g. size={size // 2})."
    )


@dataclass
class _Loop:
    """The optimization: Adam on the latents, a decaying learning rate, frames and losses recorded.

    `frame_every=0` is refused rather than read as "no frames": the first and last frames are always kept,
    and a `frame_every` as large as `steps` keeps only those.
    """

    steps: int
    lr: float
    frame_every: int
    callback: Callable[[int, Image.Image, float], None] | None

    def __post_init__(self) -> None:
        self.steps = check_int(self.steps, "steps")
        self.lr = _check_lr(self.lr)
        self.frame_every = check_int(
            self.frame_every,
            "frame_every",
            means=": a frame is kept every frame_every steps; frame_every=steps keeps only the first and "
            "the last",
        )
        if self.callback is not None and not callable(self.callback):
            raise InputError(
                "callback must be a function f(step, image, loss) or None, got "
                f"{type(self.callback).__name__}"
            )

    def run(
        self, vqgan: VQGAN, objective: _Objective, latents: torch.Tensor
    ) -> tuple[Image.Image, list[Image.Image], list[float]]:
        """The final image, the frames and the losses. A NaN or infinite loss stops the run: from then on
        every step would only paint the image black."""
        latents = latents.requires_grad_(True)
        optimizer = torch.optim.Adam([latents], lr=self.lr)
        frames, losses = [], []
        for step in range(self.steps):
            set_learning_rate(optimizer, learning_rate(step, self.steps, self.lr, floor=0.1))
            image = _decode(vqgan, latents)
            loss = objective(image)
            optimizer.zero_grad()
            loss.backward(inputs=[latents])
            optimizer.step()
            losses.append(_finite(loss.item(), step))
            if step % self.frame_every == 0 or step == self.steps - 1:
                frames.append(tensor_to_pil(image.detach())[0])
                if self.callback is not None:
                    self.callback(step, frames[-1], losses[-1])
        with torch.no_grad():
            return tensor_to_pil(_decode(vqgan, latents))[0], frames, losses


def _check_lr(lr: float) -> float:
    """A positive finite learning rate: Adam refuses negative ones in its own words, and 0 would silently
    leave the random start as the result."""
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not (math.isfinite(lr) and lr > 0):
        raise InputError(f"lr must be a number above 0, got {lr!r}: the default 0.15 suits most prompts")
    return float(lr)


def _finite(loss: float, step: int) -> float:
    if not math.isfinite(loss):
        raise MMLessonError(
            f"the loss became {loss} at step {step}: the image has stopped meaning anything. Try a smaller "
            "lr, or check the prompt weights and the init_image for NaN values."
        )
    return loss


@dataclass
class _Objective:
    """How far CLIP finds an image from the prompts: the weighted spherical distance of its cutouts'
    embeddings to the targets (negative weights push away)."""

    clip: ClipBundle
    targets: torch.Tensor
    weights: torch.Tensor
    cutouts: int
    generator: torch.Generator

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        views = self.clip.normalize_pixels(
            make_cutouts(image, self.cutouts, self.clip.image_size, self.generator)
        )
        embeddings = F.normalize(self.clip.model.encode_image(views.to(self.clip.dtype)).float(), dim=-1)
        return (spherical_distance(embeddings, self.targets).mean(dim=0) * self.weights).sum()


def save_animation(frames: Sequence[Image.Image], path: str | Path, seconds_per_frame: float = 0.1) -> Path:
    """Write the frames as a looping GIF, via a temporary file, so a failed write leaves nothing behind."""
    if not frames:
        raise InputError("no frames to animate: generate(...) with frame_every smaller than steps")
    path = Path(path)
    with written_atomically(path) as temporary:
        frames[0].save(
            temporary,
            format="GIF",
            save_all=True,
            append_images=list(frames[1:]),
            loop=0,
            duration=int(seconds_per_frame * 1000),
        )
    return path


def _targets(
    clip: ClipBundle, prompts: list[Prompt], image_prompts: Sequence[ImageInput]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The unit embeddings to move towards or away from, and their weights."""
    texts = clip.encode_texts([p.text for p in prompts])
    weights = [p.weight for p in prompts]
    if image_prompts:
        texts = torch.cat([texts, clip.encode_images(list(image_prompts))])
        weights += [1.0] * len(image_prompts)
    return texts.to(clip.device), torch.tensor(weights, device=clip.device)


def _initial_latents(
    vqgan: VQGAN, size: int, init_image: ImageInput | None, generator: torch.Generator
) -> torch.Tensor:
    with torch.no_grad():
        if init_image is not None:
            return vqgan.encode_latents(vqgan.pixels(init_image, size=size)).detach()
        grid = size // vqgan.factor
        tokens = torch.randint(
            vqgan.codebook_size, (1, grid, grid), generator=generator, device=generator.device
        )
        return vqgan.latents_from_indices(tokens).detach()


def _decode(vqgan: VQGAN, latents: torch.Tensor) -> torch.Tensor:
    """Straight-through quantize, decode, and clamp to [0, 1] with a straight-through gradient."""
    quantized, _, _ = vqgan.quantize_latents(latents)
    pixels = (vqgan.decode_latents(quantized) + 1) / 2
    return pixels + (pixels.clamp(0, 1) - pixels).detach()
