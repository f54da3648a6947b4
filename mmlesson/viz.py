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
from matplotlib.ticker import FuncFormatter, PercentFormatter
from PIL import Image, ImageDraw, ImageFont

from mmlesson.errors import InputError

# The names lessons use; see API.md.
__all__ = [
    "CourseFigure",
    "image_grid",
    "similarity_heatmap",
    "topk_bars",
    "loss_curve",
    "interactive",
    "token_grid",
    "token_crops",
    "token_places",
    "vq_scatter",
    "spread_curve",
    "confusion_matrix",
    "few_shot_curve",
    "with_label",
    "recall_curves",
    "speed_recall_curves",
    "batch_size_curves",
    "compare_curves",
    "softmax_row",
    "loss_against_scale",
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


def confusion_matrix(counts: ScoresLike, classnames: Sequence[str], title: str | None = None) -> Figure:
    """Draw a confusion matrix: one row per true class, one column per predicted class, a count in each cell.

    A perfect classifier fills only the diagonal, so the counts off it (the mistakes) are written in red and
    empty cells stay blank: the eye goes straight to which classes are taken for which.
    """
    matrix = _to_matrix(counts, "counts", "[C true classes, C predicted classes]")
    n = matrix.shape[0]
    if matrix.shape[1] != n:
        raise InputError(f"counts must be square (true x predicted classes), got shape {list(matrix.shape)}")
    _check_length(classnames, n, "classnames", "row of counts")
    side = min(8.5, 2.0 + 0.22 * n)
    fontsize = 7 if n > 12 else 9
    fig = CourseFigure(figsize=(side, side), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), [str(name) for name in classnames], rotation=90, fontsize=fontsize)
    ax.set_yticks(range(n), [str(name) for name in classnames], fontsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for row, col in zip(*np.nonzero(matrix), strict=True):
        value = matrix[row, col]
        color = "red" if row != col else ("white" if value > matrix.max() / 2 else "black")
        ax.text(col, row, f"{value:g}", ha="center", va="center", fontsize=fontsize - 1, color=color)
    if title:
        ax.set_title(title)
    return fig


def few_shot_curve(
    accuracies: Mapping[int, ScoresLike],
    zero_shot: float | None = None,
    label: str = "linear probe",
    ylabel: str = "test accuracy",
) -> Figure:
    """Accuracy against k, the labeled examples per class: the mean over repeated draws, their range shaded.

    ``accuracies`` maps each k to the accuracy of every draw of k examples. Few-shot results depend on which
    examples were drawn, so the band (worst to best draw) shows how much of a gap between two k is luck;
    ``zero_shot``, which needs no labeled example, is drawn as a horizontal line to compare against.
    """
    ks = sorted(accuracies)
    if not ks or any(not isinstance(k, int) or k < 1 for k in ks):
        raise InputError(f"accuracies must map each k (an int >= 1) to its draws' accuracies, got keys {ks}")
    draws = [_to_numpy(accuracies[k], f"accuracies[{k}]") for k in ks]
    if any(d.ndim != 1 or d.size == 0 for d in draws):
        raise InputError("each accuracies[k] must be a non-empty 1-D sequence: one accuracy per draw")
    sizes = {d.size for d in draws}
    fig = CourseFigure(figsize=(5.5, 3.4), layout="constrained")
    ax = fig.add_subplot()
    ax.fill_between(ks, [d.min() for d in draws], [d.max() for d in draws], alpha=0.2)
    mean_of = f"mean of {sizes.pop()} draws" if len(sizes) == 1 else "mean of the draws"
    ax.plot(ks, [d.mean() for d in draws], marker="o", label=f"{label} ({mean_of})")
    if zero_shot is not None:
        ax.axhline(zero_shot, color="tab:orange", linestyle="--", label="zero-shot, no labeled images")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("labeled examples per class (k)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def with_label(image: ImageLike, text: str, font_fraction: float = 0.18) -> Image.Image:
    """A copy of ``image`` with ``text`` in black on a white label at its bottom left.

    This is how a typographic attack is made: a written word that a CLIP which learned to read may trust
    more than the picture. The font size is a fraction of the image's height, so a label reads the same on
    a 64-pixel shape and on a photo.
    """
    if not 0 < font_fraction <= 1:
        raise InputError(f"font_fraction must be in (0, 1], got {font_fraction}")
    array = _to_hwc(image)
    labeled = Image.fromarray(array if array.dtype == np.uint8 else (array * 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(labeled)
    font = ImageFont.load_default(size=max(8, int(font_fraction * labeled.height)))
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    width, height = right - left, bottom - top
    margin = max(2, labeled.height // 40)
    x, y = 2 * margin, labeled.height - height - 2 * margin  # the top-left corner of the text
    draw.rectangle((x - margin, y - margin, x + width + margin, y + height + margin), fill="white")
    draw.text((x - left, y - top), text, fill="black", font=font)
    return labeled


def recall_curves(
    ks: Sequence[int], curves: Mapping[str, ScoresLike], perfect: ScoresLike | None = None
) -> Figure:
    """recall@k against k, one line per group of queries, over the dashed line of a perfect ranking.

    recall@k alone does not say whether a ranking is good: a query with 19 right answers cannot reach
    recall 1 before k = 19. A perfect ranking (every right answer first) is the fair yardstick, so it is
    drawn underneath, and a curve that hides it is as good as a ranking can be.
    """
    ks = list(ks)
    fig = CourseFigure(figsize=(5.5, 3.4), layout="constrained")
    ax = fig.add_subplot()
    named = {"perfect ranking": perfect} if perfect is not None else {}
    for name, values in {**named, **curves}.items():
        recall = _to_numpy(values, f"recall values of {name!r}")
        _check_length(recall, len(ks), f"recall values for {name!r}", "k")
        style = {"color": "gray", "linestyle": "--"} if name in named else {}
        ax.plot(ks, recall, label=name, **style)
    ax.set_xlabel("k (results looked at)")
    ax.set_ylabel("recall@k")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def speed_recall_curves(
    curves: Mapping[str, Sequence[tuple[Any, float, float]]],
    exact_ms: float | None = None,
    title: str | None = None,
) -> Figure:
    """Recall against milliseconds per query of approximate indexes: a line per index, a point per setting.

    Each point is (setting, milliseconds, recall) and is labelled with its setting (nprobe, ef_search), so
    the plot reads as a menu of how much recall each extra millisecond buys. Time is on a log scale, since
    settings usually double; exact search, if given, is the point at recall 1 that they all trade against.
    """
    fig = CourseFigure(figsize=(5.5, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for name, points in curves.items():
        if not points or any(len(point) != 3 for point in points):
            raise InputError(f"curves[{name!r}] must be a non-empty list of (setting, milliseconds, recall)")
        milliseconds, recalls = [float(p[1]) for p in points], [float(p[2]) for p in points]
        ax.plot(milliseconds, recalls, marker="o", label=name)
        for setting, ms, recall in points:
            ax.annotate(str(setting), (ms, recall), textcoords="offset points", xytext=(4, -10), fontsize=8)
    if exact_ms is not None:
        ax.scatter([exact_ms], [1.0], color="black", zorder=3, label="exact search")
    ax.set_xscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:g}")  # 0.6 and 10, not 6x10^-1 and 10^1
    ax.xaxis.set_major_formatter(plain)
    times = [float(p[1]) for points in curves.values() for p in points] + [exact_ms or 0.0]
    if max(times) < 10 * min(t for t in times if t > 0):  # within one decade: label the 2, 3, ... ticks too
        ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("milliseconds per query (log scale)")
    ax.set_ylabel("recall@10 against exact search")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return fig


def token_grid(image: ImageLike, tokens: ScoresLike, title: str | None = None) -> Figure:
    """An image beside the same image faded under its token grid, each token's index written in its square.

    A VQGAN keeps nothing of an image but these integers, one per square of the picture: seeing them laid over
    the squares they stand for makes the grid concrete (and shows the flat background taking many tokens).
    """
    picture = _to_hwc(image)
    grid = _to_numpy(tokens, "tokens")
    if grid.ndim != 2:
        raise InputError(f"tokens must be one grid [h, w] of token indices, got shape {list(grid.shape)}")
    rows, cols = grid.shape
    cell_height, cell_width = picture.shape[0] / rows, picture.shape[1] / cols
    fig = CourseFigure(figsize=(8, 3.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.imshow(picture)
    left.set_title("image")
    right.imshow(picture, alpha=0.35)
    for line in range(1, rows):
        right.axhline(line * cell_height - 0.5, color="gray", linewidth=0.5)
    for line in range(1, cols):
        right.axvline(line * cell_width - 0.5, color="gray", linewidth=0.5)
    fontsize = 7 if max(rows, cols) <= 8 else 4
    for (row, col), value in np.ndenumerate(grid):
        x, y = (col + 0.5) * cell_width - 0.5, (row + 0.5) * cell_height - 0.5
        right.text(x, y, str(int(value)), ha="center", va="center", fontsize=fontsize)
    right.set_title(title or f"its {rows}x{cols} tokens")
    for ax in (left, right):
        _hide_frame(ax)
    return fig


def token_crops(
    pixels: torch.Tensor, grids: torch.Tensor, token: int, n: int = 6, where: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Up to ``n`` crops [3, 3f, 3f] around squares whose token is ``token``, the square outlined in black.

    A token has no fixed picture of its own (VQGAN's decoder reads all tokens together), so what it stands
    for shows best in the places it is used: its square and one square of surroundings on each side.
    ``pixels`` [N, 3, S, S] in [0, 1] are the images as the model saw them, ``grids`` [N, h, w] their tokens;
    ``where`` (bool [N, h, w]) keeps only some squares, e.g. those the shape covers. Squares are taken in
    order (image, row, column); a crop at the border is shifted inwards to stay whole.
    """
    pixels, grids = _check_token_grids(pixels, grids)
    side = pixels.shape[-1] // grids.shape[-1]  # pixels per token square
    found = grids == token if where is None else (grids == token) & torch.as_tensor(where, dtype=torch.bool)
    crops = []
    for image, row, col in found.nonzero()[:n].tolist():
        top = min(max(0, (row - 1) * side), pixels.shape[-2] - 3 * side)
        left = min(max(0, (col - 1) * side), pixels.shape[-1] - 3 * side)
        crop = pixels[image, :, top : top + 3 * side, left : left + 3 * side].clone()
        y, x = row * side - top, col * side - left
        crop[:, [y, y + side - 1], x : x + side] = 0.0  # top and bottom edges of the square
        crop[:, y : y + side, [x, x + side - 1]] = 0.0  # left and right edges
        crops.append(crop)
    return crops


def _check_token_grids(pixels: torch.Tensor, grids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N, 3, S, S] and their token grids [N, h, w], on the CPU, or an error saying what is wrong."""
    pixels, grids = torch.as_tensor(pixels).detach().cpu().float(), torch.as_tensor(grids).cpu()
    if pixels.ndim != 4 or pixels.shape[1] != 3 or grids.ndim != 3 or len(pixels) != len(grids):
        raise InputError(
            f"expected images [N, 3, S, S] and their token grids [N, h, w], got {list(pixels.shape)} and "
            f"{list(grids.shape)}"
        )
    size, grid = pixels.shape[-1], grids.shape[-1]
    if pixels.shape[-2] != size or grids.shape[-2] != grid or grid < 3 or size % grid:
        raise InputError(
            f"expected square images whose side ({size} px) is a whole number of token squares, and a grid "
            f"of at least 3x3 tokens, got images {list(pixels.shape[-2:])} and grids {list(grids.shape[-2:])}"
        )
    return pixels, grids


def token_places(
    pixels: torch.Tensor, grids: torch.Tensor, tokens: Sequence[int], per_token: int = 6, size: float = 0.8
) -> Figure:
    """One row per token: ``per_token`` places where it is used (see `token_crops`), captioned with the token.

    A token used fewer than ``per_token`` times fills less than its row (and shifts the rows after it).
    """
    crops, captions = [], []
    for token in tokens:
        found = token_crops(pixels, grids, int(token), per_token)
        crops += found
        captions += [f"token {int(token)}"] * len(found)
    return image_grid(crops, captions, ncols=per_token, size=size)


def vq_scatter(
    points: ScoresLike,
    latents: ScoresLike,
    indices: ScoresLike,
    codebook: ScoresLike,
    start: ScoresLike | None = None,
) -> Figure:
    """A 2-D vector-quantization toy after training: its data, and its latent space with the codebook.

    The encoder outputs are colored by the entry they are quantized to; entries in use are black stars,
    entries never chosen red ones, and the codebook's starting points gray crosses: dead codes are the
    entries that never left their start, because an entry no output picks gets no gradient.
    """
    points, latents = _to_numpy(points, "points"), _to_numpy(latents, "latents")
    indices, codebook = _to_numpy(indices, "indices").astype(int), _to_numpy(codebook, "codebook")
    shapes = [list(array.shape) for array in (points, latents, codebook)]
    if any(len(shape) != 2 or shape[1] != 2 for shape in shapes):
        raise InputError(f"points, latents and codebook must be 2-D points [n, 2], got shapes {shapes}")
    _check_length(indices, len(latents), "indices", "latent")
    used = np.bincount(indices, minlength=len(codebook)) > 0
    fig = CourseFigure(figsize=(9, 3.6), layout="constrained")
    data_ax, latent_ax = fig.subplots(1, 2)
    data_ax.scatter(*points.T, s=3, alpha=0.4)
    data_ax.set_title("the data")
    latent_ax.scatter(*latents.T, s=3, alpha=0.3, c=indices, cmap="tab20", label="encoder outputs")
    if start is not None:
        start = _to_numpy(start, "start")
        latent_ax.scatter(*start.T, marker="x", color="gray", label="codebook at the start")
    latent_ax.scatter(*codebook[used].T, marker="*", s=120, color="black", label="entries in use")
    latent_ax.scatter(*codebook[~used].T, marker="*", s=120, color="red", label="entries never chosen")
    latent_ax.set_title("latent space after training")
    latent_ax.legend(fontsize=7, loc="best")
    return fig


def spread_curve(
    x: ScoresLike, series: ScoresLike, xlabel: str, ylabel: str, title: str | None = None
) -> Figure:
    """Each row of ``series`` [R, len(x)] (one random draw) as a faint line, and their mean as a bold one.

    A single random draw can go against the trend; drawing every draw under their mean shows both how the
    measurement moves on average and how much one draw varies, so a learner does not read noise as a trend.
    """
    xs, rows = _to_numpy(x, "x"), _to_matrix(series, "series", "[R draws, len(x) points]")
    if xs.ndim != 1 or rows.shape[1] != len(xs):
        raise InputError(f"series must have one column per x value ({xs.size}), got shape {list(rows.shape)}")
    fig = CourseFigure(figsize=(5.0, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for row in rows:
        ax.plot(xs, row, color="tab:blue", alpha=0.15, linewidth=0.8)
    mean = rows.mean(axis=0)
    ax.plot(xs, mean, color="tab:blue", marker="o", linewidth=2, label=f"mean of {len(rows)} draws")
    _label_axes(ax, xlabel, ylabel, title)
    return fig


_SWEEP_ACCURACIES = {
    "zero_shot_color_shape_all": "color x shape (all pairs)",
    "zero_shot_color_shape_held_out": "color x shape (held-out pairs)",
    "zero_shot_color": "color",
    "zero_shot_shape": "shape",
}


def batch_size_curves(
    runs: Sequence[Mapping[str, float]], accuracies: Mapping[str, str] | None = None, title: str | None = None
) -> Figure:
    """Zero-shot accuracies (left) and evaluation loss (right) against the batch size of each run.

    A batch-size experiment must be read on both at once: accuracy says what a model can do, the loss
    (measured at one batch size for every model) how well it tells pairs apart. Batch sizes double from run
    to run, so the x axis is logarithmic and its ticks are the sizes themselves.
    """
    accuracies = dict(accuracies or _SWEEP_ACCURACIES)
    needed = {"batch_size", "eval_loss", *accuracies}
    if not runs or any(needed - set(run) for run in runs):
        raise InputError(f"runs must be a non-empty list of dicts, each with the keys {sorted(needed)}")
    runs = sorted(runs, key=lambda run: run["batch_size"])
    sizes = [run["batch_size"] for run in runs]
    fig = CourseFigure(figsize=(9.0, 3.4), layout="constrained")
    acc_ax, loss_ax = fig.subplots(1, 2)
    for key, name in accuracies.items():
        acc_ax.plot(sizes, [run[key] for run in runs], marker="o", label=name)
    acc_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    acc_ax.set_ylim(0, 1.05)
    acc_ax.set_ylabel("zero-shot accuracy")
    acc_ax.legend(fontsize=7)
    loss_ax.plot(sizes, [run["eval_loss"] for run in runs], marker="o", color="tab:red")
    loss_ax.set_ylabel("loss on unseen pairs")
    for ax in (acc_ax, loss_ax):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(size) for size in sizes])
        ax.minorticks_off()
        ax.set_xlabel("batch size (pairs per step)")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def compare_curves(
    curves: Mapping[str, ScoresLike], xlabel: str = "step", ylabel: str = "loss", title: str | None = None
) -> Figure:
    """Several curves on one axes, each with its own marker and dash, so that identical curves stay visible.

    Runs that should agree (one process and two) lie on top of each other: plain lines would let the last one
    hide the others. Here each later curve is drawn thinner, dashed and with a smaller marker than the one
    before, so a curve that coincides with another still shows inside it.
    """
    if not curves:
        raise InputError("curves must name at least one curve: {'name': values, ...}")
    styles = [("-", "o", 9, 3.0), ("--", "s", 6, 2.0), (":", "^", 4, 1.5), ("-.", "x", 4, 1.0)]
    fig = CourseFigure(figsize=(5.5, 3.4), layout="constrained")
    ax = fig.add_subplot()
    for index, (name, values) in enumerate(curves.items()):
        curve = _to_numpy(values, f"curves[{name!r}]")
        if curve.ndim != 1 or curve.size == 0:
            raise InputError(
                f"curves[{name!r}] must be a non-empty 1-D sequence of numbers, got shape {list(curve.shape)}"
            )
        dash, marker, size, width = styles[index % len(styles)]
        ax.plot(curve, linestyle=dash, marker=marker, markersize=size, linewidth=width, label=name)
    _label_axes(ax, xlabel, ylabel, title)
    return fig


def softmax_row(ax: Axes, cosines: ScoresLike, names: Sequence[str], right: int, scale: float) -> None:
    """Bars on `ax`: the softmax of one row of cosines at `scale` (lesson 1's temperature), the right text
    in orange. The title shows the scale as a slider does (3 significant digits)."""
    row = _to_numpy(cosines, "cosines").astype(np.float64)
    _check_length(names, len(row), "names", "cosine")
    probabilities = np.exp(scale * row - (scale * row).max())
    probabilities /= probabilities.sum()
    colors = ["tab:orange" if k == right else "tab:blue" for k in range(len(row))]
    ax.bar(range(len(row)), probabilities, color=colors)
    ax.set_xticks(range(len(row)), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_title(f"scale {scale:.3g}", fontsize=9)


def loss_against_scale(
    ax: Axes, scales: ScoresLike, losses: Mapping[str, ScoresLike], batch_size: int, learned_scale: float
) -> None:
    """Lines on `ax`: each model's loss of one batch as the logit scale varies (log axis), with log N (what
    a model that knows nothing pays) and the scale the model learned."""
    x = _to_numpy(scales, "scales")
    for label, values in losses.items():
        ax.plot(x, _to_numpy(values, f"losses[{label!r}]"), label=label)
    ax.axhline(math.log(batch_size), color="gray", linestyle="--", label="log N")
    ax.axvline(learned_scale, color="tab:green", linestyle=":", label="learned scale")
    ax.set(xscale="log", xlabel="scale t", ylabel="loss of the batch")
    ax.set_title("the loss as the scale varies", fontsize=9)
    ax.legend(fontsize=7)


def _label_axes(ax, xlabel: str, ylabel: str, title: str | None) -> None:
    """The finishing touches every line plot of the course shares: axis labels, a light grid, the legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
