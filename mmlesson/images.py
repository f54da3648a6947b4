"""Images in and out: what a learner may pass, turned into an RGB image, and the two conversions every
model needs (PIL images -> a float tensor [N, 3, H, W] in [0, 1], and back).

`load_image()` turns anything a learner may pass (a path, a PIL image of any mode, a numpy array) into an
RGB PIL image, with an error message that says what to do when it cannot (an `ImageError`). It also refuses
images that are cheap to decode but ruinous to resize for a model, such as a 3 KB PNG of 1,000,000 x 1
pixels: a model resizes the shorter side to its input size, which would make that one 64,000,000 pixels wide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from mmlesson.checks import check_int
from mmlesson.errors import InputError, MissingFileError, MMLessonError

if TYPE_CHECKING:
    import torch

# The names lessons use; see API.md.
__all__ = ["ImageError", "load_image", "pil_to_tensor", "tensor_to_pil", "square"]


def pil_to_tensor(images: Sequence[Image.Image]) -> torch.Tensor:
    """RGB images of one size -> a float tensor [N, 3, H, W] in [0, 1], as torchvision's ToTensor makes
    for each image, but for the whole batch at once (each torch call has a fixed cost)."""
    import torch  # imported here: it takes seconds, and drawing or loading images does not need it

    pixels = torch.from_numpy(np.stack([np.asarray(image) for image in images]))
    return pixels.permute(0, 3, 1, 2).contiguous().float().div(255)


def tensor_to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """Images [N, 3, H, W] in [0, 1] -> PIL images (values outside [0, 1] are clamped)."""
    arrays = (pixels.detach().cpu().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(array) for array in arrays]


def square(image: Image.Image, size: int) -> Image.Image:
    """Resize (shorter side = size, bicubic) and center-crop to size x size, as CLIP's preprocessing does."""
    from torchvision.transforms import CenterCrop, InterpolationMode, Resize

    if image.size == (size, size):
        return image
    return CenterCrop(size)(Resize(size, interpolation=InterpolationMode.BICUBIC)(image))


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
        resize_to = check_int(resize_to, "resize_to", 1)
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
