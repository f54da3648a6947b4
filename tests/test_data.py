"""Tests for mmlesson.data: the Shapes world, the bundled photos and load_image."""

import colorsys
import io
import random
import socket
import sys

import numpy as np
import pytest
from PIL import Image, ImageFile

from mmlesson import data, images, judge
from mmlesson.data import (
    ALL_COMBOS,
    BACKGROUND_RGB,
    CAPTION_TEMPLATES,
    COLOR_RGB,
    COLORS,
    POSITION_PHRASES,
    POSITIONS,
    SHAPES,
    SIZES,
    ShapesWorld,
    caption,
    load_image,
    photos,
    render,
)


@pytest.fixture(scope="module")
def batch():
    """A large sample shared by the tests that check statistics and pixels."""
    return ShapesWorld(seed=3).sample(1500)


def pixels(image):
    return np.asarray(image).astype(int)


def object_mask(image):
    """Pixels that clearly differ from the background: the drawn object."""
    return np.abs(pixels(image) - BACKGROUND_RGB).max(axis=-1) > 40


def hue(rgb):
    return colorsys.rgb_to_hsv(*(np.asarray(rgb) / 255))[0] * 360


def nearest_color(rgb):
    def distance(name):
        d = abs(hue(rgb) - hue(COLOR_RGB[name])) % 360
        return min(d, 360 - d)

    return min(COLORS, key=distance)


# ---------------------------------------------------------------------------------------------------------
# Determinism


def same_images(a, b):
    return all(np.array_equal(pixels(x), pixels(y)) for x, y in zip(a, b, strict=True))


def test_same_seed_gives_identical_pixels_and_captions():
    a, b = ShapesWorld(seed=7).sample(40), ShapesWorld(seed=7).sample(40)
    assert same_images(a.images, b.images)
    assert a.captions == b.captions and a.attributes == b.attributes


def test_different_seeds_differ():
    a, b = ShapesWorld(seed=0).sample(40), ShapesWorld(seed=1).sample(40)
    assert a.captions != b.captions
    assert sum(not np.array_equal(pixels(x), pixels(y)) for x, y in zip(a.images, b.images, strict=True)) > 30


def test_item_is_independent_of_how_and_when_it_is_asked_for():
    world = ShapesWorld(seed=5)
    ten = world.sample(10)
    world.sample(25, start=100)  # unrelated calls in between must not matter
    for i in reversed(range(10)):
        alone, window = world[i], world.sample(3, start=i)
        assert alone.caption == window.captions[0] == ten.captions[i]
        assert alone.attributes == window.attributes[0] == ten.attributes[i]
        assert same_images([alone.image, window.images[0]], [ten.images[i]] * 2)


def test_combos_order_does_not_change_items():
    held = [("red", "star"), ("blue", "heart"), ("green", "circle")]
    a = ShapesWorld(seed=2, combos=set(held)).sample(30)
    b = ShapesWorld(seed=2, combos=list(reversed(held)) + held).sample(30)
    assert a.captions == b.captions and same_images(a.images, b.images)


def test_attributes_do_not_depend_on_image_size():
    small, large = ShapesWorld(image_size=32).sample(20), ShapesWorld(image_size=96).sample(20)
    assert small.captions == large.captions
    assert {im.size for im in small.images} == {(32, 32)} and {im.size for im in large.images} == {(96, 96)}


# ---------------------------------------------------------------------------------------------------------
# Vocabulary and captions


def test_vocabulary_is_exact():
    assert COLORS == ("red", "orange", "yellow", "green", "blue", "purple")
    assert SHAPES == ("circle", "square", "triangle", "star", "heart")
    assert SIZES == ("small", "large") and POSITIONS == ("left", "right", "top", "bottom", "center")
    assert set(COLOR_RGB) == set(COLORS) and len(ALL_COMBOS) == 30 == len(set(ALL_COMBOS))


def test_every_word_and_template_appears(batch):
    for key, words in (("color", COLORS), ("shape", SHAPES), ("size", SIZES), ("position", POSITIONS)):
        assert {a[key] for a in batch.attributes} == set(words), key
    assert {(a["color"], a["shape"]) for a in batch.attributes} == set(ALL_COMBOS)
    templates = {
        t for a in batch.attributes for t in range(len(CAPTION_TEMPLATES)) if caption(a, t) in batch.captions
    }
    assert templates == set(range(len(CAPTION_TEMPLATES)))


def test_captions_contain_the_attribute_words(batch):
    for text, a in zip(batch.captions, batch.attributes, strict=True):
        for word in (a["color"], a["shape"], a["size"], POSITION_PHRASES[a["position"]]):
            assert word in text, (word, text)


def test_canonical_caption_and_paraphrases():
    attrs = {"color": "red", "shape": "circle", "size": "large", "position": "left"}
    assert caption(attrs) == caption(attrs, 0) == "a large red circle on the left"
    paraphrases = {caption(attrs, t) for t in range(len(CAPTION_TEMPLATES))}
    assert len(CAPTION_TEMPLATES) >= 4 and len(paraphrases) == len(CAPTION_TEMPLATES)
    assert caption({**attrs, "position": "center"}, 3) == "in the center: a large red circle"


@pytest.mark.parametrize("template", [-1, len(CAPTION_TEMPLATES), "0"])
def test_caption_rejects_bad_template(template):
    with pytest.raises(ValueError, match="template must index CAPTION_TEMPLATES"):
        caption({"color": "red", "shape": "circle", "size": "large", "position": "left"}, template)


def test_caption_rejects_unknown_words():
    with pytest.raises(ValueError, match="unknown position 'middle'; choose one of: left, right"):
        caption({"color": "red", "shape": "circle", "size": "large", "position": "middle"})


# ---------------------------------------------------------------------------------------------------------
# Attributes agree with pixels


def test_color_read_back_from_pixels_by_hue(batch):
    for image, a in zip(batch.images, batch.attributes, strict=True):
        mean = pixels(image)[object_mask(image)].mean(axis=0)
        assert nearest_color(mean) == a["color"], a


def test_position_read_back_from_pixels(batch):
    for image, a in zip(batch.images, batch.attributes, strict=True):
        ys, xs = np.nonzero(object_mask(image))
        x, y = xs.mean() / image.width, ys.mean() / image.height
        expected = {
            "left": x < 0.45,
            "right": x > 0.55,
            "top": y < 0.45,
            "bottom": y > 0.55,
            "center": 0.4 < x < 0.6 and 0.38 < y < 0.62,
        }
        assert expected[a["position"]], (a, x, y)
        assert abs(xs.mean() - a["xy"][0]) < 6 and abs(ys.mean() - a["xy"][1]) < 6, a


def test_large_objects_cover_more_pixels_than_small_ones(batch):
    for shape in SHAPES:
        areas = {size: [] for size in SIZES}
        for image, a in zip(batch.images, batch.attributes, strict=True):
            if a["shape"] == shape:
                areas[a["size"]].append(object_mask(image).sum())
        assert min(areas["large"]) > 1.5 * max(areas["small"]), shape


def test_object_always_lies_inside_the_image():
    for size in (16, 64):
        for image in ShapesWorld(seed=11, image_size=size).sample(400).images:
            a = pixels(image)
            border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
            assert (border == BACKGROUND_RGB).all()


def test_render_without_rng_is_exact_and_centered():
    for shape in SHAPES:
        image = render("blue", shape, "large", "center")
        assert image.mode == "RGB" and image.size == (64, 64)
        assert image.getpixel((32, 32)) == COLOR_RGB["blue"], shape
        assert image.getpixel((1, 1)) == BACKGROUND_RGB
        assert np.array_equal(pixels(image), pixels(render("blue", shape, "large", "center")))


def test_render_with_an_rng_jitters():
    a = render("green", "star", "small", "right", rng=random.Random(0))
    b = render("green", "star", "small", "right", rng=np.random.default_rng(0))
    exact = render("green", "star", "small", "right")
    assert not np.array_equal(pixels(a), pixels(exact)) and not np.array_equal(pixels(b), pixels(exact))


def test_shapes_are_told_apart_by_their_fill_ratio():
    """A crude but real check that each shape has its own silhouette: area / bounding-box area."""
    fill = {}
    for shape in SHAPES:
        mask = object_mask(render("red", shape, "large", "center", image_size=128))
        ys, xs = np.nonzero(mask)
        fill[shape] = mask.sum() / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1))
    assert fill["square"] > 0.95
    assert 0.74 < fill["circle"] < 0.82  # pi / 4
    assert 0.45 < fill["triangle"] < 0.55
    assert fill["star"] < 0.45
    assert 0.55 < fill["heart"] < 0.72


def test_to_tensor_matches_images():
    b = ShapesWorld(image_size=32).sample(5)
    t = b.to_tensor()
    assert tuple(t.shape) == (5, 3, 32, 32) and str(t.dtype) == "torch.float32" and len(b) == 5
    assert 0 <= t.min() and t.max() <= 1
    assert np.allclose(t[2].permute(1, 2, 0).numpy() * 255, pixels(b.images[2]), atol=1e-3)


# ---------------------------------------------------------------------------------------------------------
# combos and exclude


def test_exclude_is_never_drawn():
    held = [("red", "circle"), ("blue", "star"), ("yellow", "heart"), ("purple", "triangle")]
    train = ShapesWorld(exclude=held).sample(3000)
    drawn = {(a["color"], a["shape"]) for a in train.attributes}
    assert drawn == set(ALL_COMBOS) - set(held)
    test = ShapesWorld(seed=1, combos=held).sample(200)
    assert {(a["color"], a["shape"]) for a in test.attributes} == set(held)


def test_combos_accepts_lists_and_drops_duplicates():
    world = ShapesWorld(combos=[["red", "star"], ("red", "star")], exclude=[])
    assert world.combos == (("red", "star"),)
    assert "1 combos" in repr(world)


# ---------------------------------------------------------------------------------------------------------
# Bad input says what to do


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"combos": [("pink", "circle")]}, ValueError, r"unknown color 'pink'; choose one of: red, orange"),
        ({"combos": [("red", "oval")]}, ValueError, r"unknown shape 'oval'; choose one of: circle, square"),
        ({"exclude": [("red", "oval")]}, ValueError, r"unknown shape 'oval'"),
        ({"combos": [("red",)]}, TypeError, r"combos must hold \(color, shape\) pairs.*got \('red',\)"),
        ({"combos": [("red", "star", "big")]}, TypeError, r"combos must hold \(color, shape\) pairs"),
        ({"combos": ("red", "circle")}, TypeError, r"got 'red'.*wrap it in a list"),
        ({"combos": "red circle"}, TypeError, r"combos must be a list of \(color, shape\) pairs"),
        ({"exclude": 5}, TypeError, r"exclude must be a list"),
        ({"exclude": ALL_COMBOS}, ValueError, r"no \(color, shape\) pair is left"),
        ({"combos": [("red", "star")], "exclude": [("red", "star")]}, ValueError, r"keep at least one pair"),
        ({"combos": []}, ValueError, r"no \(color, shape\) pair is left"),
        ({"image_size": 8}, ValueError, r"image_size must be an integer >= 16, got 8"),
        ({"image_size": 64.0}, TypeError, r"image_size must be an integer >= 16, got 64.0 \(float\)"),
        ({"image_size": "64"}, TypeError, r"image_size must be an integer >= 16"),
        ({"seed": 1.5}, TypeError, r"seed must be a non-negative integer, got 1.5 \(float\)"),
        ({"seed": None}, TypeError, r"seed must be a non-negative integer, got None"),
        ({"seed": -1}, ValueError, r"seed must be a non-negative integer, got -1"),
    ],
)
def test_world_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        ShapesWorld(**kwargs)


@pytest.mark.parametrize(
    ("n", "error"), [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError), ("4", TypeError)]
)
def test_sample_rejects_bad_n(n, error):
    with pytest.raises(error, match=r"n must be a positive integer, got"):
        ShapesWorld().sample(n)


def test_sample_rejects_bad_start_and_index():
    with pytest.raises(ValueError, match=r"start must be a non-negative integer, got -1"):
        ShapesWorld().sample(2, start=-1)
    with pytest.raises(TypeError, match=r"start must be a non-negative integer, got 1.5"):
        ShapesWorld().sample(2, start=1.5)
    with pytest.raises(ValueError, match=r"index must be a non-negative integer, got -1"):
        ShapesWorld()[-1]


def test_numpy_integers_are_accepted():
    world = ShapesWorld(seed=np.int64(4), image_size=np.int32(32))
    assert len(world.sample(np.int64(3), start=np.uint8(2))) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("teal", "circle", "small", "left"), r"unknown color 'teal'"),
        (("red", "circle", "medium", "left"), r"unknown size 'medium'; choose one of: small, large"),
        (("red", "circle", "small", "middle"), r"unknown position 'middle'"),
    ],
)
def test_render_rejects_unknown_words(args, message):
    with pytest.raises(ValueError, match=message):
        render(*args)


def test_render_rejects_tiny_images():
    with pytest.raises(ValueError, match=r"image_size must be an integer >= 16, got 10"):
        render("red", "circle", "small", "left", image_size=10)


# ---------------------------------------------------------------------------------------------------------
# Bundled photos


def test_photos_work_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("photos() tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    data._bundled_photos.cache_clear()
    found = photos()
    names = [p.name for p in found]
    assert names == sorted(names) and len(names) >= 10
    assert {"astronaut", "chelsea", "coffee", "rocket", "horse", "camera"} <= set(names)
    for photo in found:
        assert photo.image.mode == "RGB" and min(photo.image.size) >= 100, photo.name
        assert photo.label and photo.label == photo.label.strip().lower(), photo.name
        assert "skimage" in photo.source
    assert {p.name: p.label for p in found}["chelsea"] == "cat"
    horse = pixels(next(p.image for p in found if p.name == "horse"))
    assert np.isin(horse, (0, 255)).mean() > 0.95  # a black silhouette on white, with smooth edges


def test_photos_returns_copies():
    first = photos()
    first[0].image.paste((255, 0, 0), (0, 0, 50, 50))
    assert photos()[0].image.getpixel((10, 10)) != (255, 0, 0)


def test_photos_without_scikit_image(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    data._bundled_photos.cache_clear()
    try:
        with pytest.raises(ModuleNotFoundError, match=r"pip install scikit-image"):
            photos()
    finally:
        data._bundled_photos.cache_clear()


# ---------------------------------------------------------------------------------------------------------
# load_image


def rgba_with_a_hole():
    a = np.zeros((8, 8, 4), np.uint8)
    a[..., 0], a[..., 3] = 200, 255
    a[0, 0, 3] = 0  # one fully transparent pixel, which must come out white
    return Image.fromarray(a)


def palette_with_transparency():
    image = Image.new("P", (8, 8), 1)
    image.putpalette([10, 20, 30, 200, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.info["transparency"] = 0
    return image


@pytest.mark.parametrize(
    ("image", "corner", "middle"),
    [
        (Image.new("RGB", (8, 8), (1, 2, 3)), (1, 2, 3), (1, 2, 3)),
        (Image.new("L", (8, 8), 90), (90, 90, 90), (90, 90, 90)),
        (Image.new("LA", (8, 8), (90, 0)), (255, 255, 255), (255, 255, 255)),
        (rgba_with_a_hole(), (255, 255, 255), (200, 0, 0)),
        (palette_with_transparency(), (255, 255, 255), (200, 0, 0)),
        (Image.fromarray(np.full((8, 8), 65535, np.uint16)), (255, 255, 255), (255, 255, 255)),
        (Image.new("I", (8, 8), 128), (128, 128, 128), (128, 128, 128)),
        (Image.new("I", (8, 8), 65535), (255, 255, 255), (255, 255, 255)),
        (Image.new("F", (8, 8), 0.5), (128, 128, 128), (128, 128, 128)),
        (Image.new("CMYK", (8, 8), (0, 0, 0, 0)), (255, 255, 255), (255, 255, 255)),
        (Image.new("1", (8, 8), 1), (255, 255, 255), (255, 255, 255)),
    ],
    ids=["RGB", "L", "LA", "RGBA", "P+transparency", "I;16", "I-8bit", "I-16bit", "F", "CMYK", "1"],
)
def test_load_image_converts_every_mode(image, corner, middle):
    before = image.copy()
    out = load_image(image)
    assert out.mode == "RGB" and out.size == image.size
    assert out.getpixel((0, 0)) == corner and out.getpixel((4, 4)) == middle
    assert out is not image and np.array_equal(np.asarray(before), np.asarray(image))


@pytest.mark.parametrize(
    ("array", "pixel"),
    [
        (np.full((6, 5), 7, np.uint8), (7, 7, 7)),
        (np.full((6, 5, 1), 7, np.uint8), (7, 7, 7)),
        (np.full((6, 5, 3), (1, 2, 3), np.uint8), (1, 2, 3)),
        (np.full((6, 5, 4), (1, 2, 3, 0), np.uint8), (255, 255, 255)),
        (np.full((6, 5, 4), (1, 2, 3, 255), np.uint8), (1, 2, 3)),
        (np.full((6, 5), 65535, np.uint16), (255, 255, 255)),
        (np.full((6, 5), 200, ">u2"), (1, 1, 1)),  # big-endian 16-bit stays 16-bit
        (np.full((6, 5), 200, np.int64), (200, 200, 200)),
        (np.ones((6, 5), bool), (255, 255, 255)),
        (np.full((6, 5, 3), 1.0, np.float32), (255, 255, 255)),
        (np.full((6, 5, 3), 0.5), (128, 128, 128)),
        (np.full((6, 5, 3), 0.5)[:, ::-1], (128, 128, 128)),  # not contiguous
    ],
)
def test_load_image_converts_arrays(array, pixel):
    out = load_image(array)
    assert out.mode == "RGB" and out.size == (5, 6) and out.getpixel((2, 3)) == pixel


@pytest.mark.parametrize(
    ("array", "error", "message"),
    [
        (np.zeros((3, 8, 8), np.uint8), ValueError, r"shape \(3, 8, 8\).*channels first"),
        (np.zeros((8, 8, 2), np.uint8), ValueError, r"shape \(8, 8, 2\); expected \(H, W\)"),
        (np.zeros(8, np.uint8), ValueError, r"shape \(8,\)"),
        (np.full((4, 4), 300.0), ValueError, r"float images must lie in \[0, 1\]"),
        (np.full((4, 4), np.nan), ValueError, r"NaN or infinite values; float images must lie in \[0, 1\]"),
        (np.array([[0.5, -np.inf]], np.float16), ValueError, r"NaN or infinite values"),
        (np.full((4, 4), -1, np.int32), ValueError, r"integer images must lie in 0..255 or 0..65535"),
        (np.zeros((4, 4), complex), TypeError, r"dtype complex128; use uint8, uint16, bool or float"),
        (np.zeros((0, 4)), ValueError, r"is empty"),
        (np.zeros((0, 0, 3), dtype=np.uint8), ValueError, r"is empty"),
    ],
)
def test_load_image_rejects_bad_arrays(array, error, message):
    with pytest.raises(error, match=message):
        load_image(array)


@pytest.mark.parametrize("item", [[[0, 1], [1, 0]], 3, None, b"\x89PNG"])
def test_load_image_rejects_other_types(item):
    with pytest.raises(TypeError, match=r"load_image takes a PIL image, a file path or a numpy array"):
        load_image(item)


def write(image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def test_load_image_reads_files(tmp_path, monkeypatch):
    rgba = write(rgba_with_a_hole(), tmp_path / "rgba.png")
    assert load_image(rgba).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(str(rgba)).getpixel((3, 3)) == (200, 0, 0)
    palette = write(palette_with_transparency(), tmp_path / "palette.png")
    assert load_image(palette).getpixel((0, 0)) == (255, 255, 255)
    deep = write(Image.fromarray(np.full((8, 8), 65535, np.uint16)), tmp_path / "deep.png")
    assert load_image(deep).getpixel((1, 1)) == (255, 255, 255)
    gray = write(Image.new("L", (8, 8), 60), tmp_path / "gray.jpg")
    assert load_image(gray).mode == "RGB"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_image("~/gray.jpg").size == (8, 8)


def encoded(fmt):
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "error", "message"),
    [
        ("notes.png", b"these are not pixels\n", ValueError, r"notes.png is not an image file"),
        ("empty.png", b"", ValueError, r"empty.png is empty \(0 bytes\)"),
        ("cut.jpg", encoded("JPEG")[:600], ValueError, r"cut.jpg could not be decoded.*truncated"),
        ("cut.png", encoded("PNG")[:3000], ValueError, r"cut.png could not be decoded.*truncated"),
    ],
)
def test_load_image_rejects_bad_files(tmp_path, name, content, error, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(error, match=message):
        load_image(path)


def test_load_image_rejects_missing_files_directories_and_urls(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no file at .*nowhere.png: check the spelling"):
        load_image(tmp_path / "nowhere.png")
    with pytest.raises(ValueError, match=r"is a directory; pass one image file"):
        load_image(tmp_path)
    with pytest.raises(ValueError, match=r"reads local files; download https://example.org/cat.jpg first"):
        load_image("https://example.org/cat.jpg")


def test_load_image_rejects_decompression_bombs(tmp_path, monkeypatch):
    path = write(Image.new("RGB", (64, 64)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ValueError, match=r"bomb.png is too large to open safely.*thumbnail"):
        load_image(path)


def test_load_image_refuses_images_too_thin_to_resize(tmp_path, monkeypatch):
    assert load_image(np.zeros((2, 100), np.uint8)).size == (100, 2)  # 50:1 is still allowed
    for item in (np.zeros((2, 101), np.uint8), Image.new("RGB", (1, 51)), Image.new("I;16", (5000, 1))):
        with pytest.raises(images.ImageError, match=r"over 50 times its short side.*crop"):
            load_image(item)
    thin = write(Image.new("RGB", (1_000_000, 1)), tmp_path / "thin.png")  # 3 KB, 12 GB once resized

    def decode(self):
        raise AssertionError("the file was decoded before its size was checked")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)
    with pytest.raises(images.ImageError, match=r"thin.png is 1000000 x 1 pixels.*1,000,000:1"):
        load_image(thin)
    monkeypatch.setattr(images, "MAX_ASPECT_RATIO", 10**7)  # the limit is read when an image is loaded
    with pytest.raises(AssertionError, match="decoded"):
        load_image(thin)


def test_load_image_resize_to_bounds_the_resized_pixels():
    square, wide = np.zeros((100, 100, 3), np.uint8), np.zeros((100, 1000, 3), np.uint8)
    assert load_image(square, resize_to=4096).size == (100, 100)  # 4096 x 4096: the budget exactly
    assert load_image(wide, resize_to=np.int64(1000)).size == (1000, 100)  # 1000 x 10000
    with pytest.raises(images.ImageError, match=r"4097.*16,785,409 pixels, more than the 16,777,216"):
        load_image(square, resize_to=4097)
    with pytest.raises(images.ImageError, match=r"shorter side is 2000.*40,000,000 pixels"):
        load_image(wide, resize_to=2000)
    for bad, error in [(0, ValueError), (-5, ValueError), (2.5, TypeError), (True, TypeError)]:
        with pytest.raises(error, match="resize_to must be a positive integer"):
            load_image(square, resize_to=bad)


def test_load_image_errors_are_learner_errors(tmp_path):
    from mmlesson.errors import MMLessonError

    (tmp_path / "empty.png").write_bytes(b"")
    for item in (tmp_path, tmp_path / "empty.png", np.full((2, 2), np.nan), Image.new("RGB", (0, 3))):
        with pytest.raises(images.ImageError) as caught:
            load_image(item)
        assert isinstance(caught.value, MMLessonError) and isinstance(caught.value, ValueError)


def test_load_image_says_when_a_file_may_not_be_read(tmp_path, monkeypatch):
    """A file this process may not read is not "truncated or corrupt". (The real check, with chmod 000 and
    user nobody, is in test_bad_input_search_data.py: root reads any file whatever its mode.)"""
    path = write(Image.new("RGB", (4, 4)), tmp_path / "locked.png")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", refuse)
    with pytest.raises(images.ImageError, match=r"locked.png cannot be read: permission denied.*chmod u\+r"):
        load_image(path)


def test_dominant_color_reads_every_rendered_object_back():
    batch = data.ShapesWorld(seed=5).sample(300)
    assert [judge.dominant_color(image) for image in batch.images] == [a["color"] for a in batch.attributes]


def test_dominant_color_is_none_for_gray_pictures_and_wraps_hue_around():
    assert judge.dominant_color(Image.new("RGB", (32, 32), data.BACKGROUND_RGB)) is None
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 1)).repeat(3, axis=2).astype(np.uint8)
    assert judge.dominant_color(noise) is None  # grays of every brightness have no hue
    assert judge.dominant_color(Image.new("RGB", (32, 32), (230, 20, 60))) == "red"  # hue 0.97 is near 0


def test_color_shares_count_colored_pixels_only():
    image = Image.new("RGB", (40, 10), data.BACKGROUND_RGB)
    image.paste(data.COLOR_RGB["blue"], (0, 0, 10, 10))
    image.paste(data.COLOR_RGB["yellow"], (10, 0, 30, 10))
    shares = judge.color_shares(image)
    assert shares["blue"] == pytest.approx(0.25) and shares["yellow"] == pytest.approx(0.5)
    assert sum(shares.values()) == pytest.approx(0.75) and judge.dominant_color(image) == "yellow"


def test_color_map_marks_the_object_where_it_was_drawn():
    batch = data.ShapesWorld(seed=6).sample(50)
    for image, attrs in zip(batch.images, batch.attributes):
        labels = judge.color_map(image)
        assert set(np.unique(labels)) == {-1, data.COLORS.index(attrs["color"])}
        rows, columns = np.nonzero(labels >= 0)  # mass vs box centre; positions lie 14 px apart
        assert abs(columns.mean() + 0.5 - attrs["xy"][0]) < 6 and abs(rows.mean() + 0.5 - attrs["xy"][1]) < 6
