"""CLIP for the lessons: one `ClipBundle` type, whichever model is behind it.

A bundle holds the model, its image preprocessing and its tokenizer, and offers the two calls every lesson
needs: `encode_images` and `encode_texts`, which return L2-normalized embeddings, so that a dot product *is*
the cosine similarity. They batch the work, run under `torch.inference_mode` (yet return ordinary tensors),
and accept what a learner has at hand (PIL images of any mode, paths, numpy arrays, or an already
preprocessed tensor).

The **tiny** CLIP is open_clip's own `CLIP` class with a small configuration, trained on the Shapes world by
`python -m mmlesson train clip` and shipped in `mmlesson/weights/`. It reads text with the real CLIP BPE
tokenizer, but keeps embedding rows only for the word pieces of the course's vocabulary (34 of CLIP's
49,408): the full table would be 79% of the model's parameters and almost all of it never trained.
`CompactTokenizer` maps CLIP's token ids onto those rows; any other word piece becomes "unknown".

The **full** CLIP is open_clip's ViT-B-32 trained on LAION-2B, its weights fetched once through
`mmlesson.course.assets` (pinned sha256, mirrors, a cache an instructor can share), in float16 on a GPU.
Any other open_clip model and tag, or a local checkpoint file, loads the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image
from torchvision.transforms import CenterCrop, InterpolationMode, Resize

from mmlesson import runtime
from mmlesson.checks import check_finite_pixels, check_int
from mmlesson.course import assets
from mmlesson.course.assets import WEIGHTS_DIR, shipped_weights
from mmlesson.errors import InputError, MMLessonError
from mmlesson.images import load_image, pil_to_tensor

# The names lessons use; see API.md.
__all__ = [
    "ClipBundle",
    "CompactTokenizer",
    "load_clip",
    "load_tiny_clip",
    "load_full_clip",
    "bundle_from_model",
]

TINY_CLIP_NAME = "mmlesson-tiny-clip"
FULL_CLIP = ("ViT-B-32", "laion2b_s34b_b79k")  # open_clip model name and pretrained tag
FULL_CLIP_ASSET = "clip-vit-b-32-laion2b"  # its weights in the asset registry
CLIP_VOCAB_SIZE = 49408  # rows in CLIP's BPE vocabulary; the start and end tokens are the last two


def tiny_clip_config(vocab_size: int, width: int = 128, layers: int = 4, context_length: int = 24) -> dict:
    """An open_clip model config for 64x64 images: a ViT with 8x8 patches and a small text transformer."""
    return {
        "embed_dim": width,
        "vision_cfg": {"image_size": 64, "patch_size": 8, "width": width, "layers": layers, "head_width": 32},
        "text_cfg": {
            "context_length": context_length,
            "vocab_size": vocab_size,
            "width": width,
            "heads": width // 32,
            "layers": layers,
        },
    }


class CompactTokenizer:
    """CLIP's BPE tokenizer, with token ids renumbered onto a small embedding table.

    Row 0 is padding (as in CLIP), rows 1..K the kept word pieces in CLIP's order, then "unknown", then the
    start and end tokens. The end token keeps the largest id, so open_clip's text pooling (at the argmax
    token) still reads the sequence's summary from the end token.
    """

    def __init__(self, bpe_ids: Sequence[int], context_length: int):
        self.bpe = open_clip.SimpleTokenizer(context_length=context_length)
        self.bpe_ids = sorted(set(int(i) for i in bpe_ids))
        self.context_length = context_length
        self.unknown_id = len(self.bpe_ids) + 1
        self.vocab_size = len(self.bpe_ids) + 4
        table = torch.full((CLIP_VOCAB_SIZE,), self.unknown_id, dtype=torch.long)
        table[0] = 0
        table[torch.tensor(self.bpe_ids, dtype=torch.long)] = torch.arange(1, len(self.bpe_ids) + 1)
        table[self.bpe.sot_token_id] = self.vocab_size - 2
        table[self.bpe.eot_token_id] = self.vocab_size - 1
        self.table = table

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """[N, context_length] token ids (long), truncated to the context length like CLIP's tokenizer."""
        return self.table[self.bpe(texts, context_length=self.context_length)]

    def encode(self, text: str) -> list[int]:
        """CLIP's BPE ids of `text` (without start and end tokens), as `SimpleTokenizer.encode` gives."""
        return self.bpe.encode(text)

    def unknown_words(self, text: str) -> list[str]:
        """The words of `text` that contain a word piece this model has no embedding for."""
        known = set(self.bpe_ids)
        return [w for w in text.lower().split() if any(i not in known for i in self.bpe.encode(w))]


ImageInput = Image.Image | str | Path | np.ndarray


@dataclass
class ClipBundle:
    """A CLIP model with everything needed to embed images and texts (see the module docstring)."""

    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[Sequence[str]], torch.Tensor]
    device: torch.device
    name: str
    context_length: int
    image_size: int
    preprocess_cfg: PreprocessCfg | None = None  # what open_clip made `preprocess` from, if it did
    _standard_preprocess: Callable | None = field(default=None, repr=False)  # that transform, if unchanged
    _warned_truncation: bool = field(default=False, repr=False)

    def __repr__(self) -> str:
        return f"ClipBundle(name={self.name!r}, device='{self.device}', image_size={self.image_size})"

    @property
    def embed_dim(self) -> int:
        return self.model.text_projection.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        """The model's parameter type: float16 for the full model on a GPU, else float32."""
        return next(self.model.parameters()).dtype

    def encode_images(self, images: ImageInput | Sequence[ImageInput] | torch.Tensor, batch_size: int = 64):
        """L2-normalized image embeddings, a float32 CPU tensor [N, D], computed in batches."""
        check_int(batch_size, "batch_size")
        if isinstance(images, torch.Tensor):
            pixels = self._check_pixels(images)
            batches = (pixels[start : start + batch_size] for start in range(0, len(pixels), batch_size))
        else:
            items = [images] if isinstance(images, ImageInput) else list(images)
            if not items:
                raise InputError("encode_images got no images: pass a list with at least one image")
            batches = (
                self._preprocess(items, start, batch_size) for start in range(0, len(items), batch_size)
            )
        with OutOfMemoryAdvice.for_batches("embedding images", batch_size):
            return _embed_batches(
                self.model.encode_image, (batch.to(self.dtype) for batch in batches), self.device
            )

    def encode_texts(self, texts: str | Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """L2-normalized text embeddings, a float32 CPU tensor [M, D], computed in batches."""
        check_int(batch_size, "batch_size")
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise InputError("encode_texts got no texts: pass a list with at least one string")
        for k, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(f"text {k} is a {type(text).__name__}, not a string: {text!r}")
        self._warn_about(texts)
        batches = (
            self.tokenizer(texts[start : start + batch_size]) for start in range(0, len(texts), batch_size)
        )
        with OutOfMemoryAdvice.for_batches("embedding texts", batch_size):
            return _embed_batches(self.model.encode_text, batches, self.device)

    def preprocess_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """`preprocess` applied to each RGB image, stacked [N, 3, S, S]: the same numbers, computed faster.

        open_clip's preprocessing resizes and crops a PIL image, then turns it into a float tensor and
        normalizes it. For small images those last two steps cost more than the resizing (every torch call
        has a fixed cost), so they run once on the whole batch, with the same arithmetic. A preprocessing
        this bundle cannot rebuild from its configuration is applied image by image.
        """
        resize = self._resize_and_crop()
        resized = [resize(image) for image in images] if resize else []
        same_size = len({image.size for image in resized}) == 1
        if not resized or not same_size or any(image.mode != "RGB" for image in resized):
            return torch.stack([self.preprocess(image) for image in images])
        return self.normalize_pixels(pil_to_tensor(resized))

    def normalize_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels [N, 3, S, S] in [0, 1], normalized as this model's preprocessing does: for images a
        program makes as tensors (guided generation), which never pass through `preprocess`."""
        if self.preprocess_cfg is None:
            raise InputError(f"{self.name} has a custom preprocessing: its mean and std are not known")
        return normalize_pixels(pixels, self.preprocess_cfg.mean, self.preprocess_cfg.std)

    def _resize_and_crop(self) -> Callable[[Image.Image], Image.Image] | None:
        """The PIL steps of open_clip's preprocessing, rebuilt from its configuration with torchvision's
        transforms; None where open_clip would use steps of its own (keep-ratio resizing, padding)."""
        cfg = self.preprocess_cfg
        if cfg is None or self.preprocess is not self._standard_preprocess:
            return None  # a preprocessing of the learner's own: only it knows what it does
        if cfg.interpolation not in ("bicubic", "bilinear") or not isinstance(cfg.size, int):
            return None
        interpolation = InterpolationMode(cfg.interpolation)
        if cfg.resize_mode == "squash":
            return Resize((cfg.size, cfg.size), interpolation=interpolation)
        if cfg.resize_mode == "shortest":
            resize, crop = Resize(cfg.size, interpolation=interpolation), CenterCrop(cfg.size)
            return lambda image: crop(resize(image))
        return None

    def _preprocess(self, items: list, start: int, batch_size: int) -> torch.Tensor:
        """Load and preprocess one batch of images; an unreadable item is named by its index."""
        images = []
        for k, item in enumerate(items[start : start + batch_size], start=start):
            try:
                images.append(load_image(item))
            except (ValueError, TypeError, OSError) as error:
                raise type(error)(f"image {k}: {error}") from None
        return self.preprocess_batch(images)

    def _check_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """A tensor input must already be preprocessed: [N, 3, S, S] (or one image [3, S, S]) at this size."""
        pixels = pixels.unsqueeze(0) if pixels.ndim == 3 else pixels
        size = self.image_size
        expected = (3, size, size)
        if pixels.ndim != 4 or tuple(pixels.shape[1:]) != expected or not pixels.is_floating_point():
            raise InputError(
                f"a tensor passed to encode_images must hold preprocessed images, float [N, 3, {size}, "
                f"{size}]; got {pixels.dtype} {tuple(pixels.shape)}. Pass PIL images or paths instead, "
                "or apply bundle.preprocess to each image first."
            )
        if len(pixels) == 0:
            raise InputError("encode_images got an empty tensor: there are no images to embed")
        return check_finite_pixels(pixels, "the tensor passed to encode_images")

    def _warn_about(self, texts: list[str]) -> None:
        """Warn (once per bundle) about truncated texts, and about words the tiny model never saw."""
        too_long = [t for t in texts if _n_tokens(self.tokenizer, t) > self.context_length]
        if too_long and not self._warned_truncation:
            self._warned_truncation = True
            warnings.warn(
                f"{len(too_long)} text(s) are longer than this model's {self.context_length} tokens and were "
                f"cut short, e.g. {too_long[0][:60]!r}. Shorter prompts keep every word.",
                stacklevel=3,
            )
        if isinstance(self.tokenizer, CompactTokenizer):
            unknown = sorted({w for t in texts for w in self.tokenizer.unknown_words(t)})
            if unknown:
                warnings.warn(
                    "The tiny CLIP has never seen these words and reads them as 'unknown': "
                    f"{', '.join(unknown)}. It knows the Shapes world's words "
                    "(mmlesson.data.COLORS, SHAPES, SIZES, POSITIONS).",
                    stacklevel=3,
                )


def _embed_batches(
    encoder: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[torch.Tensor], device: torch.device
) -> torch.Tensor:
    """Normalized embeddings of every batch, computed under inference mode.

    The chunks are joined *outside* inference mode, so the result is an ordinary tensor: a learner may train
    a linear probe on it (autograd refuses tensors created in inference mode).
    """
    with torch.inference_mode():
        chunks = [F.normalize(encoder(batch.to(device)).float(), dim=-1).cpu() for batch in batches]
    return torch.cat(chunks)


def _n_tokens(tokenizer: Any, text: str) -> int:
    """Tokens `text` needs with start and end; 0 when the tokenizer cannot say (no truncation warning)."""
    encode = getattr(tokenizer, "encode", None)
    return len(encode(text)) + 2 if callable(encode) else 0


class OutOfMemoryAdvice:
    """`with OutOfMemoryAdvice("at 64x64 px: try a smaller size"):` turns the GPU's out-of-memory error
    into an MMLessonError that says which argument to lower.

    torch's own message is about allocator settings, which no learner should touch. The GPU error's
    traceback is dropped: its frames hold the failed call's tensors, and a notebook keeps the last error,
    so the memory would stay taken and the retry with smaller settings would fail too. (So the tensors
    must live in a function called inside the `with`, not beside it.)
    """

    def __init__(self, advice: str) -> None:
        self.advice = advice

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: object) -> bool:
        if not isinstance(error, torch.cuda.OutOfMemoryError):  # torch.OutOfMemoryError since torch 2.5
            return False
        error.__traceback__ = None
        del traceback  # this frame is in the new error's traceback: it must not hold the old one
        raise MMLessonError(f"The GPU ran out of memory {self.advice}") from None

    @classmethod
    def for_batches(cls, task: str, batch_size: int) -> OutOfMemoryAdvice:
        """Advice for work done `batch_size` items at a time: a smaller batch, whatever the total."""
        if batch_size == 1:
            return cls(f"{task} one at a time: the model does not fit on this GPU; use device='cpu'.")
        return cls(
            f"{task} {batch_size} at a time: pass a smaller batch_size, e.g. batch_size={batch_size // 2}."
        )


def load_tiny_clip(device: torch.device, weights_dir: Path = WEIGHTS_DIR) -> ClipBundle:
    """The shipped tiny CLIP, loaded by open_clip's own factory from its registered config and weights."""
    manifest, weights = shipped_weights(TINY_CLIP_NAME, weights_dir)
    open_clip.add_model_config(weights_dir / f"{TINY_CLIP_NAME}.json")
    model = open_clip.create_model(TINY_CLIP_NAME, pretrained=str(weights), device=device)
    tokenizer = CompactTokenizer(manifest["tokenizer"]["bpe_ids"], manifest["tokenizer"]["context_length"])
    return bundle_from_model(model.eval(), tokenizer, TINY_CLIP_NAME, device)


def bundle_from_model(model: torch.nn.Module, tokenizer: Any, name: str, device: torch.device) -> ClipBundle:
    """Wrap an open_clip model (trained or loaded) so lessons can embed with it.

    The preprocessing is the one the model was trained with: open_clip's factory records it on the model
    (size, mean, std, interpolation); a model built directly from the CLIP class gets open_clip's defaults.
    """
    image_size = model.visual.image_size
    image_size = image_size[0] if isinstance(image_size, tuple) else image_size
    config = PreprocessCfg(**(getattr(model.visual, "preprocess_cfg", None) or {"size": image_size}))
    preprocess = image_transform_v2(config, is_train=False)
    context_length = getattr(tokenizer, "context_length", None) or model.context_length
    return ClipBundle(
        model, preprocess, tokenizer, torch.device(device), name, context_length, image_size,
        preprocess_cfg=config, _standard_preprocess=preprocess,
    )  # fmt: skip


def normalize_pixels(
    pixels: torch.Tensor,
    mean: Sequence[float] = open_clip.OPENAI_DATASET_MEAN,
    std: Sequence[float] = open_clip.OPENAI_DATASET_STD,
) -> torch.Tensor:
    """[N, 3, H, W] pixels in [0, 1] -> (pixels - mean) / std per channel, CLIP's input normalization
    (by default with the statistics of OpenAI's training images, as the course's models use)."""
    mean = torch.tensor(mean, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(std, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    return (pixels - mean) / std


def load_full_clip(device: torch.device, model_name: str = FULL_CLIP[0], pretrained: str = FULL_CLIP[1]):
    """A pretrained open_clip model: the course's ViT-B-32 through the asset cache, or any model and tag.

    The default weights come through `mmlesson.course.assets` (pinned sha256, mirrors, shared cache), so an
    instructor's `python -m mmlesson fetch --profile full` serves the whole room. Another open_clip tag is
    downloaded by open_clip itself; a path loads a local checkpoint. On a GPU the model runs in float16.
    """
    checkpoint = _checkpoint_for(model_name, pretrained)
    precision = "fp16" if device.type == "cuda" else "fp32"
    try:
        model = open_clip.create_model(model_name, pretrained=checkpoint, device=device, precision=precision)
    except RuntimeError as error:
        raise MMLessonError(_explain_open_clip_error(model_name, pretrained, error)) from None
    tokenizer = open_clip.get_tokenizer(model_name)
    return bundle_from_model(model.eval(), tokenizer, f"{model_name}/{Path(str(pretrained)).name}", device)


def _checkpoint_for(model_name: str, pretrained: str) -> str:
    """A local file for the course's default model (fetched and verified), else what open_clip should load."""
    if (model_name, pretrained) == FULL_CLIP:
        return str(assets.fetch(FULL_CLIP_ASSET))
    path = Path(str(pretrained)).expanduser()
    if path.suffix in (".safetensors", ".bin", ".pt", ".pth") and not path.is_file():
        raise MMLessonError(f"No checkpoint file at {path}: check the path, or pass an open_clip tag.")
    return str(path) if path.is_file() else pretrained


def _explain_open_clip_error(model_name: str, pretrained: str, error: RuntimeError) -> str:
    """Turn open_clip's errors into advice: unknown model, unknown tag, or no network for a download."""
    import difflib

    if model_name not in open_clip.list_models():
        close = difflib.get_close_matches(model_name, open_clip.list_models(), n=3)
        return (
            f"open_clip has no model called {model_name!r}. Did you mean: {', '.join(close) or 'ViT-B-32'}?"
        )
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if str(pretrained) not in tags:
        return f"{model_name} has no pretrained tag {pretrained!r}. Its tags: {', '.join(tags) or '(none)'}."
    return (
        f"open_clip could not download {model_name}/{pretrained} ({error}). Check the network, or use the "
        "course's default full model (python -m mmlesson fetch --profile full), or MMLESSON_PROFILE=tiny."
    )


def load_clip(
    profile: str | None = None,
    device: str | torch.device | None = None,
    model_name: str = FULL_CLIP[0],
    pretrained: str = FULL_CLIP[1],
) -> ClipBundle:
    """The CLIP of a profile: `tiny` (shipped with the course) or `full` (pretrained, ViT-B-32 by default).

    `model_name` and `pretrained` pick another open_clip model for the full profile: any pair listed by
    `open_clip.list_pretrained()`, or a model name and the path of a checkpoint file.
    """
    profile, target = runtime.profile_and_device(profile, device)
    if profile == "tiny":
        return load_tiny_clip(target)
    return load_full_clip(target, model_name, pretrained)
