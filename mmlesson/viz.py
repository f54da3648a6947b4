"""The plots every lesson reuses: image grids, similarity heatmaps, top-k bars and training curves.

Every function builds its figure with ``matplotlib.figure.Figure(...)`` directly, never with ``pyplot``, and
returns it. In a notebook the returned Figure is rendered once, as the cell's result (a pyplot figure would
be shown a second time by the inline backend); figures made in a loop do not pile up in pyplot's global
state; and nothing needs a display, so the same code runs headless in CI. Save one with
``fig.savefig("plot.png")``. A plain Figure is drawn as a picture only once Jupyter's inline backend is on;
`CourseFigure` also knows how to render itself as PNG, so a lesson needs no ``%matplotlib inline``.

The functions accept what lessons naturally hold. Images: PIL images, numpy arrays (H x W x 3, uint8 or float
in [0, 1]) or torch tensors ([3, H, W], or a batch [N, 3, H, W], float in [0, 1]). Scores: torch tensors
(on any device, with or without gradients), numpy arrays or nested lists.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.ticker import PercentFormatter
from PIL import Image

from mmlesson.errors import InputError

# The names lessons use; see API.md.
__all__ = [
    "CourseFigure",
    "image_grid",
    "similarity_heatmap",
    "topk_bars",
    "loss_curve",
    "interactive",
]

ImageLike = Any  # a PIL image, a numpy array (H, W, 3) or a torch tensor [3, H, W]
ScoresLike = Any  # a torch tensor, a numpy array or nested lists of numbers

# Float images a little outside [0, 1] (a decoder's overshoot) are clipped; far outside means another
# scale (0-255 or [-1, 1]), which clipping would silently turn into a white or dark picture: refuse those.
_FLOAT_IMAGE_SLACK = 0.5
_CAPTION_FONTSIZE = 7


class CourseFigure(Figure):
    """A Figure that Jupyter can show by itself (``_repr_png_``), whatever the matplotlib backend."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def _to_hwc(image: ImageLike) -> np.ndarray:
    """Turn one image into the H x W x 3 array (uint8, or float in [0, 1]) that ``imshow`` draws."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise InputError(f"a torch image must have shape [3, H, W], got {list(image.shape)}")
        image = image.detach().cpu().permute(1, 2, 0)
        image = (image if image.dtype == torch.uint8 else image.float()).numpy()
    if not isinstance(image, np.ndarray):
        raise InputError(
            f"an image must be a PIL image, numpy array or torch tensor, got {type(image).__name__}"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"a numpy image must have shape (H, W, 3), got {image.shape}")
    if image.dtype == np.uint8:
        return image
    low, high = float(image.min()), float(image.max())
    if low < -_FLOAT_IMAGE_SLACK or high > 1 + _FLOAT_IMAGE_SLACK:
        raise InputError(
            f"a {image.dtype} image must be uint8 (0-255) or hold values in [0, 1], "
            f"got values in [{low:.3g}, {high:.3g}]: "
            "convert 0-255 images with .astype(np.uint8), map [-1, 1] images with (x + 1) / 2"
        )
    return np.clip(image.astype(np.float32), 0.0, 1.0)  # imshow would clip too, but log a warning per image


def _to_image_list(images: ImageLike | Sequence[ImageLike]) -> list[np.ndarray]:
    """Turn one image, a batch (tensor [N, 3, H, W] or array (N, H, W, 3)) or a list into H x W x 3 arrays."""
    one_array = isinstance(images, torch.Tensor | np.ndarray) and images.ndim == 3
    if one_array or isinstance(images, Image.Image):
        images = [images]
    arrays = [_to_hwc(image) for image in images]
    if not arrays:
        raise InputError("expected at least one image, got an empty list")
    return arrays


def _to_numpy(scores: ScoresLike, name: str) -> np.ndarray:
    """Turn scores into a float numpy array, detaching tensors from the autograd graph and the GPU."""
    if isinstance(scores, torch.Tensor):
        return scores.detach().cpu().float().numpy()
    try:
        return np.asarray(scores, dtype=float)
    except (TypeError, ValueError) as error:
        raise InputError(f"{name} must be a tensor, array or rectangular nested list of numbers") from error


def _to_matrix(scores: ScoresLike, name: str, shape: str) -> np.ndarray:
    """Turn scores into a 2-D float array; ``shape`` (e.g. "[N images, M texts]") goes into the error."""
    matrix = _to_numpy(scores, name)
    if matrix.ndim != 2:
        raise InputError(f"{name} must be 2-D {shape}, got shape {list(matrix.shape)}")
    return matrix


def _check_length(items: Sequence | None, expected: int, what: str, per: str) -> None:
    """Raise a ValueError naming both sides when ``items`` (if given) does not hold one entry per ``per``."""
    if items is not None and len(items) != expected:
        raise InputError(f"expected {expected} {what} (one per {per}), got {len(items)}")


def image_grid(
    images: ImageLike | Sequence[ImageLike],
    captions: Sequence[str] | None = None,
    ncols: int = 8,
    title: str | None = None,
    size: float = 1.6,
) -> Figure:
    """Show images in a grid, ``size`` inches each, with an optional caption under each one.

    Captions are wrapped to the image's width so that long ones ("a large red circle on the left") stay
    readable instead of running into their neighbours.
    """
    arrays = _to_image_list(images)
    _check_length(captions, len(arrays), "captions", "image")
    if ncols < 1:
        raise InputError(f"ncols must be at least 1, got {ncols}")
    ncols = min(ncols, len(arrays))
    nrows = math.ceil(len(arrays) / ncols)
    chars_per_line = max(8, int(size * 72 / (0.6 * _CAPTION_FONTSIZE)))
    wrapped = [textwrap.fill(str(c), chars_per_line) for c in captions] if captions is not None else None
    caption_height = 0.14 * max((w.count("\n") + 1 for w in wrapped), default=0) if wrapped else 0.0
    fig = CourseFigure(
        figsize=(ncols * size, nrows * (size + caption_height) + 0.4 * bool(title)), layout="compressed"
    )
    for index, array in enumerate(arrays):
        ax = fig.add_subplot(nrows, ncols, index + 1)
        ax.imshow(array)
        _hide_frame(ax)
        if wrapped:
            ax.set_xlabel(wrapped[index], fontsize=_CAPTION_FONTSIZE)
    if title:
        fig.suptitle(title)
    return fig


def _hide_frame(ax: Axes) -> None:
    """Hide ticks and spines but keep the x label, which the layout makes room for, as a caption."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)


def similarity_heatmap(
    similarity: ScoresLike,
    images: ImageLike | Sequence[ImageLike] | None = None,
    texts: Sequence[str] | None = None,
    title: str | None = None,
    annotate: bool | None = None,
) -> Figure:
    """Draw CLIP's similarity matrix: one row per image, one column per text, brighter = more alike.

    With ``images`` each row starts with its thumbnail and with ``texts`` each column is labelled, so the
    learner reads "this picture matches that caption" straight off the diagonal. The values are written in
    the cells when ``annotate`` is True, or by default when the matrix has at most 100 cells.
    """
    matrix = _to_matrix(similarity, "similarity", "[N images, M texts]")
    n, m = matrix.shape
    thumbnails = _to_image_list(images) if images is not None else None
    _check_length(thumbnails, n, "images", "row of similarity")
    _check_length(texts, m, "texts", "column of similarity")
    labels = (
        [textwrap.fill(str(t), 28) for t in texts] if texts is not None else [f"text {j}" for j in range(m)]
    )
    cell = min(0.6, 12 / max(n, m))  # inches; big matrices shrink their cells to stay on screen
    label_height = 0.05 * max(len(line) for label in labels for line in label.split("\n"))
    fig = CourseFigure(
        figsize=(m * cell + cell * bool(thumbnails) + 2.0, n * cell + label_height + 0.5 + 0.4 * bool(title)),
        layout="constrained",
    )
    ax = fig.add_subplot()
    heat = ax.imshow(matrix, cmap="viridis")
    # The colorbar lives in an inset so that it is exactly as tall as the (square-celled) matrix.
    inches = m * cell
    fig.colorbar(heat, cax=ax.inset_axes([1 + 0.12 / inches, 0, 0.15 / inches, 1]), label="similarity")
    ax.xaxis.tick_top()
    ax.set_xticks(range(m), labels, rotation=45, ha="left", rotation_mode="anchor", fontsize=8)
    if thumbnails:
        _add_row_thumbnails(ax, thumbnails, m)
    else:
        ax.set_yticks(range(n), [f"image {i}" for i in range(n)], fontsize=8)
    if annotate or (annotate is None and n * m <= 100):
        _write_values(ax, heat, matrix, fontsize=min(8.0, 16 * cell))
    if title:
        fig.suptitle(title)
    return fig


def _add_row_thumbnails(ax: Axes, thumbnails: list[np.ndarray], ncols: int) -> None:
    """Put each image in a cell-sized inset left of its row: insets follow the axes through any layout."""
    ax.set_yticks([])
    n, margin = len(thumbnails), 0.05  # the margin (in cells) keeps neighbouring thumbnails apart
    side = 1 - 2 * margin
    for row, thumbnail in enumerate(thumbnails):
        inset = ax.inset_axes([(margin - 1) / ncols, 1 - (row + 1 - margin) / n, side / ncols, side / n])
        inset.imshow(thumbnail)
        inset.set_axis_off()


def _write_values(ax: Axes, heat: AxesImage, matrix: np.ndarray, fontsize: float) -> None:
    """Write each value in its cell, white on dark colours and black on light ones so it stays legible."""
    for (row, col), value in np.ndenumerate(matrix):
        red, green, blue, _ = heat.cmap(heat.norm(value))
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # perceived brightness (ITU-R BT.601)
        ax.text(
            col,
            row,
            f"{value:.2f}",
            ha="center",
            va="center",
            fontsize=fontsize,
            color="white" if dark else "black",
        )


def topk_bars(
    probs: ScoresLike,
    classnames: Sequence[str],
    images: ImageLike | Sequence[ImageLike] | None = None,
    k: int = 5,
    title: str | None = None,
) -> Figure:
    """For each image, a bar chart of its ``k`` most probable classes, the image beside its bars.

    ``probs`` has one row per image and one column per class, shape [N, C]; a 1-D vector [C] is read as a
    single image. ``k`` is capped at C. Zero-shot predictions are judged by eye this way: is the right class
    on top, and how sure is the model?
    """
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    probs = _to_numpy(probs, "probs")
    matrix = _to_matrix(probs[None] if probs.ndim == 1 else probs, "probs", "[N images, C classes]")
    n, c = matrix.shape
    _check_length(classnames, c, "classnames", "column of probs")
    thumbnails = _to_image_list(images) if images is not None else None
    _check_length(thumbnails, n, "images", "row of probs")
    k = min(k, c)
    fig = CourseFigure(
        figsize=(6.0 if thumbnails else 4.5, n * max(1.4, 0.3 * k) + 0.4 * bool(title)), layout="constrained"
    )
    grid = fig.add_gridspec(n, 2, width_ratios=[1, 2.2]) if thumbnails else fig.add_gridspec(n, 1)
    for row, scores in enumerate(matrix):
        if thumbnails:
            image_ax = fig.add_subplot(grid[row, 0])
            image_ax.imshow(thumbnails[row])
            image_ax.set_axis_off()
        _draw_topk(fig.add_subplot(grid[row, -1]), scores, classnames, k)
    if title:
        fig.suptitle(title)
    return fig


def _draw_topk(ax: Axes, scores: np.ndarray, classnames: Sequence[str], k: int) -> None:
    """Draw one image's top-k classes as horizontal bars, the most probable at the top and in orange."""
    top = np.argsort(-scores, kind="stable")[:k]  # ties keep the classes' order
    bars = ax.barh(range(k), scores[top], color=["tab:orange"] + ["tab:blue"] * (k - 1))
    ax.set_yticks(range(k), [str(classnames[i]) for i in top], fontsize=8)
    ax.invert_yaxis()
    ax.bar_label(bars, labels=[f"{p:.1%}" for p in scores[top]], padding=2, fontsize=7)
    ax.set_xlim(0, 1.2)  # room for the percentage written after a bar that reaches 100%
    ax.set_xticks([0, 0.5, 1])
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.tick_params(axis="x", labelsize=7)


def loss_curve(
    values: ScoresLike | Mapping[str, ScoresLike],
    xlabel: str = "step",
    ylabel: str = "loss",
    title: str | None = None,
    smooth: float = 0.0,
) -> Figure:
    """Plot a training curve, or several named ones (``{"train": ..., "val": ...}``) on the same axes.

    ``smooth`` in [0, 1) is the weight of an exponential moving average, as in TensorBoard: noisy
    mini-batch losses hide the trend, so the smoothed line is drawn over a faint copy of the raw values.
    """
    if not 0 <= smooth < 1:
        raise InputError(f"smooth must be in [0, 1), got {smooth}")
    curves = values if isinstance(values, Mapping) else {ylabel: values}
    fig = CourseFigure(figsize=(5.0, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for name, curve in curves.items():
        label = f"values[{name!r}]" if isinstance(values, Mapping) else "values"
        raw = _to_numpy(curve, label)
        if raw.ndim != 1 or raw.size == 0:
            raise InputError(
                f"{label} must be a non-empty 1-D sequence of numbers, got shape {list(raw.shape)}"
            )
        if smooth:
            (line,) = ax.plot(raw, alpha=0.25)
            ax.plot(_ema(raw, smooth), color=line.get_color(), label=name)
        else:
            ax.plot(raw, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if isinstance(values, Mapping):
        ax.legend()
    if title:
        ax.set_title(title)
    return fig


def _ema(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average that starts at the first value, so the curve's start is not pulled to 0."""
    smoothed = np.empty_like(values)
    smoothed[0] = values[0]
    for step in range(1, len(values)):
        smoothed[step] = weight * smoothed[step - 1] + (1 - weight) * values[step]
    return smoothed


def interactive(function, **controls):
    """ipywidgets' `interactive(function, **controls)`, whose saved plain text says what it is.

    A notebook opened without running (or read on GitHub) shows a widget's plain-text form; for
    ipywidgets' own class that is its repr, `interactive(children=(FloatLogSlider(...`. This one reads as
    a sentence naming its controls, and behaves exactly like ipywidgets.interactive when the cell runs.
    """
    import ipywidgets

    class Interactive(ipywidgets.interactive):
        def __repr__(self) -> str:
            names = ", ".join(control.description or name for name, control in controls.items())
            return f"[An interactive figure with controls: {names}. Run the notebook to use it.]"

    return Interactive(function, **controls)
