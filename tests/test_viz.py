"""Tests for mmlesson.viz: each plot shows what it is given, accepts what lessons hold, says what is wrong."""

import io

import matplotlib

matplotlib.use("Agg")  # headless, before anything imports pyplot

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from mmlesson import viz

RNG = np.random.default_rng(0)


def pil_images(n: int, size: int = 16) -> list[Image.Image]:
    return [Image.new("RGB", (size, size), (40 * i % 256, 80, 200)) for i in range(n)]


def image_axes(axes) -> list:
    """The axes that show a picture (imshow), as opposed to bars, colorbars or heatmaps."""
    return [ax for ax in axes if ax.images]


def all_text(fig: Figure) -> str:
    """Every string drawn in the figure, with wrapping undone so captions can be searched for whole."""
    return " ".join(" ".join(t.get_text().split()) for t in fig.findobj(Text))


def heatmap_axes(fig: Figure):
    """The heatmap's own axes: the figure-level axes holding the similarity image."""
    (ax,) = image_axes(fig.axes)
    return ax


# ---------------------------------------------------------------- image_grid


@pytest.mark.parametrize(
    "images",
    [
        pil_images(5),
        [np.full((16, 12, 3), 200, np.uint8)] * 5,
        [RNG.random((16, 16, 3))] * 5,
        torch.rand(5, 3, 16, 16),
        torch.rand(5, 3, 16, 16, requires_grad=True),
        torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8),
        RNG.random((5, 16, 16, 3)),
        RNG.uniform(-0.2, 1.2, (5, 16, 16, 3)),
        [
            pil_images(1)[0],
            np.zeros((8, 8, 3), np.uint8),
            torch.ones(3, 8, 8),
            RNG.random((8, 8, 3)),
            *pil_images(1),
        ],
    ],
    ids=[
        "pil",
        "uint8",
        "float",
        "torch",
        "torch-grad",
        "torch-uint8",
        "numpy-batch",
        "overshoot-clipped",
        "mixed",
    ],
)
def test_image_grid_shows_one_axes_per_image_whatever_the_input_type(images, caplog):
    fig = viz.image_grid(images, ncols=2)
    assert not caplog.records, "imshow should get data in range, without warnings"
    assert isinstance(fig, Figure)
    shown = image_axes(fig.axes)
    assert len(shown) == len(fig.axes) == 5
    for ax in shown:
        array = ax.images[0].get_array()
        assert array.ndim == 3 and array.shape[2] == 3
        assert 0 <= array.min() and array.max() <= (1 if array.dtype.kind == "f" else 255)


def test_image_grid_accepts_a_single_image():
    for one in (pil_images(1)[0], torch.rand(3, 8, 8), np.zeros((8, 8, 3), np.uint8)):
        assert len(image_axes(viz.image_grid(one).axes)) == 1


def test_image_grid_writes_every_caption_and_the_title():
    captions = [f"a large {c} circle on the left of the picture" for c in ("red", "green", "blue")]
    fig = viz.image_grid(pil_images(3), captions, title="Shapes world", size=1.0)
    text = all_text(fig)
    assert all(caption in text for caption in captions)
    assert "Shapes world" in text
    assert any("\n" in t.get_text() for t in fig.findobj(Text)), "long captions should be wrapped"


@pytest.mark.parametrize(("n", "ncols", "geometry"), [(3, 8, (1, 3)), (100, 8, (13, 8)), (1, 8, (1, 1))])
def test_image_grid_caps_columns_at_the_number_of_images(n, ncols, geometry):
    fig = viz.image_grid(pil_images(n, size=4), ncols=ncols)
    assert len(image_axes(fig.axes)) == n
    assert fig.axes[0].get_subplotspec().get_gridspec().get_geometry() == geometry


# ---------------------------------------------------------------- similarity_heatmap


def test_heatmap_labels_columns_with_texts_and_writes_values_in_cells():
    similarity = RNG.random((3, 5))
    texts = [f"a photo of thing {j}" for j in range(5)]
    fig = viz.similarity_heatmap(similarity, texts=texts, title="CLIP")
    ax = heatmap_axes(fig)
    assert [label.get_text() for label in ax.get_xticklabels()] == texts
    assert len(ax.get_yticklabels()) == 3
    assert np.allclose(ax.images[0].get_array(), similarity)
    assert len(ax.texts) == 15
    for cell in ax.texts:
        col, row = cell.get_position()
        assert cell.get_text() == f"{similarity[round(row), round(col)]:.2f}"
    assert "CLIP" in all_text(fig)


def test_heatmap_has_a_colorbar_as_tall_as_the_matrix():
    fig = viz.similarity_heatmap(RNG.random((4, 6)))
    fig.draw_without_rendering()
    ax = heatmap_axes(fig)
    (colorbar_ax,) = [child for child in ax.child_axes if not child.images]
    heat, bar = ax.get_window_extent(), colorbar_ax.get_window_extent()
    assert bar.x0 > heat.x1
    assert bar.y0 == pytest.approx(heat.y0, abs=1) and bar.y1 == pytest.approx(heat.y1, abs=1)


def test_heatmap_puts_one_thumbnail_beside_each_row():
    n, m = 4, 7
    fig = viz.similarity_heatmap(torch.rand(n, m), images=pil_images(n), texts=list("abcdefg"))
    fig.draw_without_rendering()
    ax = heatmap_axes(fig)
    thumbnails = image_axes(ax.child_axes)
    assert len(thumbnails) == n
    heat = ax.get_window_extent()
    for row, thumbnail in enumerate(thumbnails):
        box = thumbnail.get_window_extent()
        _, row_center = ax.transData.transform((0, row))
        assert box.x1 <= heat.x0, "thumbnails sit left of the matrix"
        assert (box.y0 + box.y1) / 2 == pytest.approx(row_center, abs=1), f"thumbnail {row} is off its row"


@pytest.mark.parametrize(
    ("shape", "annotate", "expected_texts"),
    [((10, 10), None, 100), ((11, 10), None, 0), ((11, 10), True, 110), ((2, 3), False, 0)],
)
def test_heatmap_annotates_small_matrices_unless_told_otherwise(shape, annotate, expected_texts):
    fig = viz.similarity_heatmap(RNG.random(shape), annotate=annotate)
    assert len(heatmap_axes(fig).texts) == expected_texts


@pytest.mark.parametrize(
    "similarity",
    [
        torch.rand(2, 3, requires_grad=True) * 2,
        torch.rand(2, 3, dtype=torch.bfloat16),
        [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
        np.arange(6, dtype=np.float32).reshape(2, 3),
    ],
    ids=["torch-grad", "bfloat16", "nested-list", "numpy"],
)
def test_heatmap_accepts_tensors_arrays_and_lists(similarity):
    ax = heatmap_axes(viz.similarity_heatmap(similarity))
    assert ax.images[0].get_array().shape == (2, 3)


# ---------------------------------------------------------------- topk_bars


def test_topk_bars_shows_each_image_beside_its_sorted_top_classes():
    probs = torch.softmax(torch.randn(3, 6), dim=-1).requires_grad_()
    classnames = [f"class {c}" for c in range(6)]
    fig = viz.topk_bars(probs, classnames, images=torch.rand(3, 3, 8, 8), k=4)
    assert len(image_axes(fig.axes)) == 3
    bar_axes = [ax for ax in fig.axes if ax.patches]
    assert len(bar_axes) == 3
    for ax, row in zip(bar_axes, probs.detach().numpy(), strict=True):
        widths = [bar.get_width() for bar in ax.patches]
        top = np.argsort(-row)[:4]
        assert widths == pytest.approx(row[top].tolist())
        assert [label.get_text() for label in ax.get_yticklabels()] == [classnames[i] for i in top]
        assert [text.get_text() for text in ax.texts] == [f"{p:.1%}" for p in row[top]]
        image_ax = next(
            a for a in image_axes(fig.axes) if a.get_subplotspec().rowspan == ax.get_subplotspec().rowspan
        )
        assert image_ax.get_position().x1 < ax.get_position().x0, "the image sits left of its bars"


def test_topk_bars_caps_k_and_reads_a_vector_as_one_image():
    fig = viz.topk_bars(np.array([0.7, 0.2, 0.1]), ["cat", "dog", "car"], k=10, title="zero-shot")
    (ax,) = fig.axes
    assert len(ax.patches) == 3
    assert [t.get_text() for t in ax.texts] == ["70.0%", "20.0%", "10.0%"]
    assert "zero-shot" in all_text(fig)


# ---------------------------------------------------------------- loss_curve


def test_loss_curve_draws_the_values_and_a_smoothed_line_over_them():
    values = torch.linspace(3, 1, 50) + torch.rand(50)
    assert len(viz.loss_curve(values).axes[0].lines) == 1
    raw, smoothed = viz.loss_curve(values, smooth=0.9).axes[0].lines
    assert raw.get_ydata() == pytest.approx(values.tolist())
    assert smoothed.get_ydata()[0] == pytest.approx(values[0].item())
    assert np.std(np.diff(smoothed.get_ydata())) < np.std(np.diff(raw.get_ydata()))


def test_loss_curve_plots_named_curves_with_a_legend():
    ax = viz.loss_curve({"train": [3.0, 2.0, 1.0], "val": np.array([3.5, 2.5, 2.0])}, ylabel="loss").axes[0]
    assert len(ax.lines) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "val"]


# ---------------------------------------------------------------- shared behaviour


FIGURES = {
    "image_grid": lambda: viz.image_grid(pil_images(3), ["one", "two", "three"], title="grid"),
    "similarity_heatmap": lambda: viz.similarity_heatmap(torch.rand(3, 4), pil_images(3), list("abcd")),
    "topk_bars": lambda: viz.topk_bars(torch.rand(2, 5), list("abcde"), pil_images(2), k=3),
    "loss_curve": lambda: viz.loss_curve([3.0, 2.0, 1.5], smooth=0.5, title="loss"),
}


@pytest.mark.parametrize("make", FIGURES.values(), ids=FIGURES.keys())
def test_figures_render_to_png_headless_without_touching_pyplot(make):
    open_before = plt.get_fignums()
    fig = make()
    assert isinstance(fig, Figure)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
    assert plt.get_fignums() == open_before, "figures must not be registered with pyplot"


BAD_INPUTS = {
    "captions-vs-images": (lambda: viz.image_grid(pil_images(3), ["a", "b"]), r"expected 3 captions.*got 2"),
    "empty-images": (lambda: viz.image_grid([]), "at least one image"),
    "ncols-zero": (lambda: viz.image_grid(pil_images(2), ncols=0), "ncols must be at least 1"),
    "image-type": (lambda: viz.image_grid(["cat.png"]), "PIL image, numpy array or torch tensor, got str"),
    "torch-hwc": (lambda: viz.image_grid([torch.rand(8, 8, 3)]), r"shape \[3, H, W\], got \[8, 8, 3\]"),
    "numpy-gray": (lambda: viz.image_grid([np.zeros((8, 8))]), r"shape \(H, W, 3\)"),
    "float-0-255": (lambda: viz.image_grid([np.full((4, 4, 3), 255.0)]), r"uint8.*\[0, 1\]"),
    "texts-vs-columns": (
        lambda: viz.similarity_heatmap(np.zeros((2, 3)), texts=["a", "b"]),
        r"expected 3 texts \(one per column of similarity\), got 2",
    ),
    "images-vs-rows": (
        lambda: viz.similarity_heatmap(np.zeros((2, 3)), images=pil_images(3)),
        r"expected 2 images \(one per row of similarity\), got 3",
    ),
    "similarity-1d": (lambda: viz.similarity_heatmap(np.zeros(3)), r"2-D \[N images, M texts\].*\[3\]"),
    "similarity-3d": (lambda: viz.similarity_heatmap(torch.zeros(2, 3, 4)), r"2-D.*\[2, 3, 4\]"),
    "similarity-ragged": (lambda: viz.similarity_heatmap([[1, 2], [3]]), "rectangular"),
    "classnames-vs-probs": (
        lambda: viz.topk_bars(np.zeros((2, 3)), ["a", "b"]),
        r"expected 3 classnames \(one per column of probs\), got 2",
    ),
    "images-vs-probs": (
        lambda: viz.topk_bars(np.zeros((2, 3)), list("abc"), images=pil_images(1)),
        r"expected 2 images \(one per row of probs\), got 1",
    ),
    "probs-3d": (lambda: viz.topk_bars(np.zeros((1, 2, 3)), list("abc")), r"probs must be 2-D"),
    "k-zero": (lambda: viz.topk_bars(np.zeros((1, 3)), list("abc"), k=0), "k must be at least 1, got 0"),
    "smooth-one": (lambda: viz.loss_curve([1.0, 2.0], smooth=1.0), r"smooth must be in \[0, 1\)"),
    "curve-empty": (lambda: viz.loss_curve([]), "non-empty 1-D"),
    "curve-2d": (
        lambda: viz.loss_curve({"train": np.zeros((2, 2))}),
        r"values\['train'\] must be a non-empty 1-D.*\[2, 2\]",
    ),
}


@pytest.mark.parametrize(("call", "match"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_raises_a_value_error_saying_what_was_expected(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_figures_show_themselves_in_jupyter_without_the_inline_backend():
    fig = viz.image_grid([np.zeros((8, 8, 3), dtype=np.uint8)], ["black"])
    png = fig._repr_png_()
    assert png.startswith(b"\x89PNG") and len(png) > 500


def test_interactive_is_ipywidgets_interactive_whose_saved_text_is_a_sentence():
    import ipywidgets

    calls = []
    widget = viz.interactive(lambda n: calls.append(n), n=ipywidgets.IntSlider(value=2, description="count"))
    assert isinstance(widget, ipywidgets.interactive) and calls == [2]
    widget.kwargs_widgets[0].value = 3
    assert calls == [2, 3]
    assert repr(widget) == "[An interactive figure with controls: count. Run the notebook to use it.]"


def test_progress_bar_outside_a_notebook_is_tqdms_text_bar():
    from tqdm.notebook import tqdm as notebook_tqdm
    from tqdm.std import tqdm

    from mmlesson.runtime import progress_bar

    bar = progress_bar(range(3), disable=True)
    assert isinstance(bar, tqdm) and not isinstance(bar, notebook_tqdm) and list(bar) == [0, 1, 2]
