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
    "sweep-empty": (lambda: viz.batch_size_curves([]), "non-empty list of dicts"),
    "sweep-key": (lambda: viz.batch_size_curves([{"batch_size": 8}]), "eval_loss"),
    "compare-none": (lambda: viz.compare_curves({}), "at least one curve"),
    "compare-2d": (
        lambda: viz.compare_curves({"a": np.zeros((2, 2))}),
        r"curves\['a'\] must be a non-empty 1-D",
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


# ------------------------------------------------------------- confusion_matrix, few_shot_curve, with_label


def test_confusion_matrix_writes_each_count_and_marks_the_mistakes_in_red():
    counts = torch.tensor([[5, 1, 0], [0, 4, 2], [0, 0, 6]])
    fig = viz.confusion_matrix(counts, ["circle", "square", "star"], title="noisy")
    (ax,) = fig.axes
    assert ax.images[0].get_array().tolist() == counts.tolist()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["circle", "square", "star"]
    written = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    expected = {(0, 0): "5", (0, 1): "1", (1, 1): "4", (1, 2): "2", (2, 2): "6"}
    assert {cell: t.get_text() for cell, t in written.items()} == expected, "zeros are left blank"
    assert [cell for cell, t in written.items() if t.get_color() == "red"] == [(0, 1), (1, 2)]
    assert "noisy" in all_text(fig)
    with pytest.raises(ValueError, match=r"square"):
        viz.confusion_matrix(np.zeros((2, 3)), ["a", "b"])
    with pytest.raises(ValueError, match=r"expected 2 classnames"):
        viz.confusion_matrix(np.zeros((2, 2)), ["a"])


def test_few_shot_curve_plots_the_mean_of_the_draws_their_range_and_the_zero_shot_line():
    fig = viz.few_shot_curve({4: [0.9, 0.94, 0.98], 1: [0.5, 0.6, 0.7]}, zero_shot=0.95)
    (ax,) = fig.axes
    mean, zero_shot = ax.lines
    assert list(mean.get_xdata()) == [1, 4] and mean.get_ydata() == pytest.approx([0.6, 0.94])
    assert list(zero_shot.get_ydata()) == [0.95, 0.95]
    (band,) = ax.collections
    assert band.get_paths()[0].vertices[:, 1].min() == pytest.approx(0.5)
    assert band.get_paths()[0].vertices[:, 1].max() == pytest.approx(0.98)
    assert "mean of 3 draws" in all_text(fig)
    with pytest.raises(ValueError, match=r"an int >= 1"):
        viz.few_shot_curve({0: [0.5]})
    with pytest.raises(ValueError, match=r"one accuracy per draw"):
        viz.few_shot_curve({1: []})


def test_with_label_writes_dark_text_on_a_white_label_and_leaves_the_image_alone():
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    labeled = viz.with_label(image, "blue", font_fraction=0.25)
    assert image.getpixel((5, 60)) == (200, 30, 30), "the original is not drawn on"
    pixels = np.asarray(labeled)
    corner = pixels[40:, :40]
    assert (corner == 255).all(axis=-1).any() and (corner < 80).all(axis=-1).any(), "white label, dark text"
    assert (pixels[:20] == (200, 30, 30)).all(), "the top of the image is untouched"
    assert np.asarray(viz.with_label(np.asarray(image) / 255.0, "x")).dtype == np.uint8
    with pytest.raises(ValueError, match=r"font_fraction"):
        viz.with_label(image, "x", font_fraction=0)


def test_recall_curves_draw_each_group_over_a_dashed_perfect_ranking():
    ks = [1, 2, 3]
    curves = {"seen": [0.2, 0.5, 0.9], "held out": torch.tensor([0.1, 0.4, 1.0])}
    fig = viz.recall_curves(ks, curves, perfect=[0.3, 0.6, 1])
    lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["perfect ranking", "seen", "held out"]
    assert lines[0].get_linestyle() == "--" and list(lines[2].get_ydata()) == pytest.approx([0.1, 0.4, 1.0])
    with pytest.raises(ValueError, match=r"expected 3 recall values for 'seen' \(one per k\), got 2"):
        viz.recall_curves(ks, {"seen": [0.2, 0.5]})


def test_speed_recall_curves_label_each_point_with_its_setting_and_mark_exact_search():
    rows = {"IVF": [(1, 0.5, 0.6), (8, 2.0, 0.9)], "HNSW": [(64, 1.0, 0.95)]}
    fig = viz.speed_recall_curves(rows, exact_ms=70.0, title="1,000 vectors")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["IVF", "HNSW"] and ax.get_xscale() == "log"
    text = all_text(fig)
    assert {"1", "8", "64"} <= set(text.split()) and "exact search" in text and "1,000 vectors" in text
    assert ax.xaxis.get_major_formatter()(0.6) == "0.6"  # plain numbers on the log axis, not 6x10^-1
    with pytest.raises(ValueError, match=r"curves\['IVF'\] must be a non-empty list"):
        viz.speed_recall_curves({"IVF": [(1, 0.5)]})


# ---------------------------------------------------------------- lesson 4: tokens, crops, VQ toy, spreads


def test_token_grid_writes_each_token_in_its_square_over_the_faded_image():
    tokens = torch.arange(16).reshape(4, 4) * 7
    fig = viz.token_grid(torch.rand(3, 32, 32), tokens, title="its tokens")
    left, right = fig.axes
    assert left.images and right.images and right.images[0].get_alpha() < 1
    written = {text.get_text(): text.get_position() for text in right.texts}
    assert set(written) == {str(t) for t in tokens.flatten().tolist()}
    assert written["35"] == pytest.approx((1.5 * 8 - 0.5, 1.5 * 8 - 0.5))  # row 1, column 1 of 8 px squares
    assert len(right.lines) == 6 and "its tokens" in all_text(fig)


def test_token_crops_outline_each_place_of_the_token_and_stay_whole_at_the_border():
    pixels = torch.ones(2, 3, 32, 32)
    grids = torch.zeros(2, 4, 4, dtype=torch.long)
    grids[0, 0, 0] = grids[1, 2, 3] = grids[1, 3, 3] = 5
    crops = viz.token_crops(pixels, grids, 5, n=2)
    assert len(crops) == 2 and all(crop.shape == (3, 24, 24) for crop in crops)
    first = crops[0]  # the corner square: the crop is shifted inwards, the square at its top left
    assert first[:, 0, :8].eq(0).all() and first[:, 7, :8].eq(0).all() and first[:, :8, 7].eq(0).all()
    assert first[:, 3, 3].eq(1).all() and first[:, 12, 12].eq(1).all(), "only the outline is drawn"
    assert pixels.eq(1).all(), "the images themselves are left untouched"
    only_last_row = torch.zeros(2, 4, 4, dtype=torch.bool)
    only_last_row[:, 3] = True
    assert len(viz.token_crops(pixels, grids, 5, where=only_last_row)) == 1


def test_token_places_shows_a_row_of_places_per_token():
    grids = torch.randint(0, 3, (6, 4, 4))
    fig = viz.token_places(torch.rand(6, 3, 32, 32), grids, [0, 2], per_token=3)
    assert len(image_axes(fig.axes)) == 6
    assert all_text(fig).count("token 0") == 3 and all_text(fig).count("token 2") == 3


def test_vq_scatter_marks_dead_entries_apart_from_the_entries_in_use():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    latents = torch.tensor([[0.1, 0.0], [0.9, 1.1], [1.0, 0.9]])
    fig = viz.vq_scatter(torch.rand(10, 2), latents, torch.tensor([0, 1, 1]), codebook, start=codebook * 0)
    _, latent_ax = fig.axes
    by_label = {c.get_label(): c.get_offsets() for c in latent_ax.collections}
    assert by_label["entries in use"].tolist() == [[0.0, 0.0], [1.0, 1.0]]
    assert by_label["entries never chosen"].tolist() == [[5.0, 5.0]]
    assert len(by_label["codebook at the start"]) == 3


def test_spread_curve_draws_every_draw_faintly_under_their_mean():
    series = np.array([[30.0, 20.0, 10.0], [20.0, 24.0, 12.0]])
    ax = viz.spread_curve([5, 20, 50], series, "tokens replaced (%)", "PSNR (dB)").axes[0]
    *draws, mean = ax.lines
    assert len(draws) == 2 and all(line.get_alpha() < 0.5 for line in draws)
    assert mean.get_ydata() == pytest.approx([25.0, 22.0, 11.0])
    assert ax.get_xlabel() == "tokens replaced (%)" and "2 draws" in ax.get_legend().get_texts()[0].get_text()


LESSON_4_FIGURES = {
    "token_grid": lambda: viz.token_grid(pil_images(1, size=16)[0], torch.zeros(2, 2, dtype=torch.long)),
    "token_places": lambda: viz.token_places(torch.rand(2, 3, 24, 24), torch.zeros(2, 3, 3), [0], 2),
    "vq_scatter": lambda: viz.vq_scatter(np.zeros((4, 2)), np.ones((4, 2)), [0, 0, 1, 1], np.eye(2)),
    "spread_curve": lambda: viz.spread_curve([1, 2], [[1.0, 2.0]], "x", "y", title="spread"),
}


@pytest.mark.parametrize("make", LESSON_4_FIGURES.values(), ids=LESSON_4_FIGURES.keys())
def test_lesson_4_figures_render_headless_without_touching_pyplot(make):
    open_before = plt.get_fignums()
    assert make()._repr_png_().startswith(b"\x89PNG")
    assert plt.get_fignums() == open_before


LESSON_4_BAD_INPUTS = {
    "token-grid-1d": (lambda: viz.token_grid(torch.rand(3, 8, 8), torch.zeros(4)), r"one grid \[h, w\]"),
    "crops-count": (
        lambda: viz.token_crops(torch.rand(2, 3, 24, 24), torch.zeros(3, 3, 3), 0),
        r"images \[N, 3, S, S\] and their token grids \[N, h, w\]",
    ),
    "crops-fraction": (
        lambda: viz.token_crops(torch.rand(1, 3, 20, 20), torch.zeros(1, 3, 3), 0),
        "whole number of token squares",
    ),
    "scatter-3d-points": (
        lambda: viz.vq_scatter(np.zeros((4, 3)), np.zeros((4, 2)), [0] * 4, np.eye(2)),
        r"2-D points \[n, 2\]",
    ),
    "scatter-indices": (
        lambda: viz.vq_scatter(np.zeros((4, 2)), np.zeros((4, 2)), [0] * 3, np.eye(2)),
        r"expected 4 indices \(one per latent\), got 3",
    ),
    "spread-columns": (lambda: viz.spread_curve([1, 2, 3], [[1.0, 2.0]], "x", "y"), "one column per x value"),
}


@pytest.mark.parametrize(("call", "match"), LESSON_4_BAD_INPUTS.values(), ids=LESSON_4_BAD_INPUTS.keys())
def test_lesson_4_figures_say_what_input_they_expected(call, match):
    with pytest.raises(ValueError, match=match):
        call()


SWEEP_RUN = {
    "zero_shot_color_shape_all": 0.5,
    "zero_shot_color_shape_held_out": 0.4,
    "zero_shot_color": 1.0,
    "zero_shot_shape": 0.5,
    "eval_loss": 1.2,
}
LESSON_8_FIGURES = {
    "batch_size_curves": lambda: viz.batch_size_curves(
        [SWEEP_RUN | {"batch_size": 64}, SWEEP_RUN | {"batch_size": 8, "eval_loss": 2.0}]
    ),
    "compare_curves": lambda: viz.compare_curves(
        {"1 worker": [4.2, 4.0, 3.9], "2 workers": torch.tensor([4.2, 4.0, 3.9]), "no gather": np.ones(3)}
    ),
}


@pytest.mark.parametrize("make", LESSON_8_FIGURES.values(), ids=LESSON_8_FIGURES.keys())
def test_lesson_8_figures_render_headless_without_touching_pyplot(make):
    open_before = plt.get_fignums()
    assert make()._repr_png_().startswith(b"\x89PNG")
    assert plt.get_fignums() == open_before


def test_batch_size_curves_sorts_the_runs_and_labels_the_sizes():
    runs = [SWEEP_RUN | {"batch_size": 64}, SWEEP_RUN | {"batch_size": 8, "eval_loss": 2.0}]
    fig = viz.batch_size_curves(runs)
    accuracy_ax, loss_ax = fig.axes
    assert list(loss_ax.lines[0].get_xdata()) == [8, 64] and list(loss_ax.lines[0].get_ydata()) == [2.0, 1.2]
    assert [t.get_text() for t in loss_ax.get_xticklabels()] == ["8", "64"]
    assert len(accuracy_ax.lines) == 4


def test_compare_curves_keeps_identical_curves_visible():
    fig = viz.compare_curves({"a": [1.0, 2.0], "b": [1.0, 2.0]})
    first, second = fig.axes[0].lines
    assert first.get_marker() != second.get_marker() and first.get_linewidth() > second.get_linewidth()


def test_softmax_row_draws_the_softmax_at_the_scale_with_the_right_text_in_orange():
    figure = viz.CourseFigure()
    ax = figure.subplots()
    cosines = torch.tensor([0.2, 0.9, 0.1])
    viz.softmax_row(ax, cosines, ["a", "b", "c"], right=1, scale=10)
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx((10 * cosines).softmax(dim=0).tolist(), abs=1e-6)
    assert [bar.get_facecolor() for bar in ax.patches][1] == matplotlib.colors.to_rgba("tab:orange")
    assert ax.get_title() == "scale 10"
    with pytest.raises(ValueError, match="expected 3 names"):
        viz.softmax_row(ax, cosines, ["a", "b"], right=0, scale=1)


def test_loss_against_scale_draws_each_model_log_n_and_the_learned_scale():
    figure = viz.CourseFigure()
    ax = figure.subplots()
    scales = torch.logspace(-1, 2, 5)
    viz.loss_against_scale(ax, scales, {"untrained": [2.0] * 5, "trained": [1.0] * 5}, 8, learned_scale=14.3)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["untrained", "trained", "log N", "learned scale"]
    assert ax.get_lines()[2].get_ydata()[0] == pytest.approx(np.log(8))
    assert ax.get_lines()[3].get_xdata()[0] == 14.3 and ax.get_xscale() == "log"
