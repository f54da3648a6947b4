"""Odd input to the calls that generate and embed (guided, DALL-E, CLIP, zero-shot, judge): one table.

Each row is a call a learner might make with an odd argument, and what it must give: a refusal whose
message names the argument and says what to pass (`Refused`), a warning (`Warns`), or a correct result
(`Gives`). The rows hold what issue 16's hostile-user review found and what earlier tests had tried:
before adding a check, look here for what has been tried, and add a row for each new odd input.

The models are small and untrained: how input is handled does not depend on the weights.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from mmlesson import data, guided, judge, zeroshot
from mmlesson.errors import MMLessonError
from mmlesson.train_dalle import new_tiny_dalle
from mmlesson.vqgan import VQGAN, load_tiny_vqgan, tiny_vqgan_config

ROOT = Path(__file__).resolve().parents[1]
CAPTION = "a large red circle on the left"
NAN, INF = float("nan"), float("inf")
ATTRIBUTES = {"color": "red", "position": "center", "shape": "square"}

# -- what a row expects -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refused:
    """The call raises an error that is an instance of every class in `errors`, with a message matching
    the regular expression `message`. The course's refusals are MMLessonErrors that are also the
    ValueError (or TypeError) Python's own functions raise for bad arguments."""

    message: str
    errors: tuple[type[BaseException], ...] = (MMLessonError, ValueError)


@dataclass(frozen=True)
class Warns:
    """The call warns with a message matching `message`, and its result passes `check`."""

    message: str
    check: Callable[[Any], bool] = lambda result: True


@dataclass(frozen=True)
class Gives:
    """The call succeeds with a result that passes `check` (`what` says what that means)."""

    what: str
    check: Callable[[Any], bool]


TYPE = (MMLessonError, TypeError)  # a refusal of a value of the wrong kind
GPU = (MMLessonError,)  # a failure while running, not a bad argument

WEIGHT_RANGE = r"the weight of 'a red circle' must be between 0\.01 and 100"
SEED = r"seed must be a non-negative integer"
SEED_RANGE = r"seed must be a non-negative integer up to 2\*\*64 - 1"
TEMPERATURE = r"temperature must be a number > 0.*top_k=1"
TINY_TEMPERATURE = r"is too small: below 0\.001 sampling always takes the most likely code.*top_k=1"
TOP_K = r"top_k must be None .* from 1 to 512"
TEMPLATE = r"exactly one '\{\}' where the class name goes"
POSITIVE = "must be a positive integer"


def table(module: str, *rows: tuple[str, Callable[[SimpleNamespace], Any], Refused | Warns | Gives]):
    """pytest parameters of rows (name, call, outcome); a call takes the namespace of the `m` fixture."""
    return [pytest.param(call, outcome, id=f"{module}-{name}") for name, call, outcome in rows]


# -- the calls ----------------------------------------------------------------------------------------------


def guide(m: SimpleNamespace, prompt: Any = "a circle", **settings: Any) -> guided.Generation:
    """guided.generate at the cheapest settings (1 step, 2 cutouts, the small models), as overridden."""
    return guided.generate(prompt, **{"steps": 1, "cutouts": 2, "clip": m.clip, "vqgan": m.vqgan, **settings})


def draw(m: SimpleNamespace, caption: Any = CAPTION, **settings: Any) -> list[Image.Image]:
    return m.dalle.generate(caption, **settings)


def red_image() -> Image.Image:
    return Image.new("RGB", (40, 50), (200, 30, 30))


def saved(m: SimpleNamespace, name: str, content: bytes | None = None) -> Path:
    """A file in the test's folder: the red image, or `content`."""
    path = m.tmp_path / name
    path.write_bytes(content) if content is not None else red_image().save(path)
    return path


def alone_and_in_a_list(m: SimpleNamespace, image: Any) -> tuple[list[float], list[float]]:
    """The losses of generating with one image prompt given alone, and given in a list."""
    return guide(m, image_prompts=image, steps=2).losses, guide(m, image_prompts=[image], steps=2).losses


def pixels_with(m: SimpleNamespace, value: float, image: int) -> torch.Tensor:
    """Two preprocessed images [2, 3, S, S], one value of image `image` set to `value`."""
    pixels = torch.rand(2, 3, m.clip.image_size, m.clip.image_size)
    pixels[image, 1, 5, 5] = value
    return pixels


def in_mode(mode: str) -> Image.Image:
    image = data.render("red", "star", "large", "left")
    return image.convert("L").convert("I;16") if mode == "I;16" else image.convert(mode)


def odd_images() -> list[Image.Image]:
    return [
        data.render("red", "star", "large", "left", image_size=200).convert("P"),
        data.render("blue", "circle", "small", "top", image_size=48).convert("LA"),
    ]


def out_of_memory(*args: Any, **kwargs: Any) -> None:
    # torch.cuda.OutOfMemoryError is torch.OutOfMemoryError since torch 2.5; the course supports 2.2 on.
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def guide_out_of_memory_in(name: str) -> Callable[[SimpleNamespace], Any]:
    """guided.generate with 8 cutouts, its helper `name` running out of GPU memory."""

    def call(m: SimpleNamespace) -> Any:
        m.monkeypatch.setattr(guided, name, out_of_memory)
        return guide(m, cutouts=8)

    return call


def draw_out_of_memory(m: SimpleNamespace) -> Any:
    m.monkeypatch.setattr(m.dalle.gpt, "forward", out_of_memory)
    return draw(m, n=100, batch_size=32)


def encode_out_of_memory(m: SimpleNamespace) -> Any:
    m.monkeypatch.setattr(m.clip.model, "encode_image", out_of_memory)
    return m.clip.encode_images([red_image()] * 3, batch_size=16)


def guide_with_a_nan_loss(m: SimpleNamespace) -> Any:
    """A distance that is NaN (yet has a gradient), as a model that blew up would give."""
    m.monkeypatch.setattr(guided, "spherical_distance", lambda a, b: (a[:, None] - b[None]).sum(-1) * NAN)
    return guide(m, steps=3)


def batch_sizes_for_5_images(m: SimpleNamespace) -> tuple[int, list[int]]:
    """(images made, the distinct numbers of sequences the GPT ran at once) for n=5, batch_size=2."""
    sizes, forward = [], m.dalle.gpt.forward
    spy = lambda idx, past=None: sizes.append(len(idx)) or forward(idx, past)  # noqa: E731
    m.monkeypatch.setattr(m.dalle.gpt, "forward", spy)
    return len(draw(m, n=5, batch_size=2)), sorted(set(sizes))


def isolated(code: str) -> Callable[[SimpleNamespace], None]:
    """`code` run in a fresh Python limited to 4 GiB of address space, for a call that would exhaust the
    memory if the check it tests were missing; its error is raised again here, same class and message."""
    script = (
        "import json, resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))\n"
        "try:\n"
        "    exec(sys.argv[1])\n"
        "except Exception as error:\n"
        "    print(json.dumps([type(error).__module__, type(error).__qualname__, str(error)]))\n"
    )

    def call(m: SimpleNamespace) -> None:
        done = subprocess.run(
            [sys.executable, "-c", script, code], cwd=ROOT, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        if done.stdout.strip():
            module, name, message = json.loads(done.stdout.strip().splitlines()[-1])
            raise getattr(importlib.import_module(module), name)(message)

    return call


def images(count: int) -> Gives:
    return Gives(f"{count} 64x64 images", lambda result: [i.size for i in result] == [(64, 64)] * count)


def embeddings(count: int) -> Gives:
    return Gives(f"{count} finite embedding(s)", lambda e: e.shape[0] == count and bool(e.isfinite().all()))


A_RUN = Gives("a generation", lambda generation: len(generation.losses) >= 1)
SAME_AS_IN_A_LIST = Gives("the same losses as the image in a list", lambda pair: pair[0] == pair[1])

# -- the table ----------------------------------------------------------------------------------------------

GUIDED = table(
    "guided",
    # prompts and their weights
    ("prompt_empty", lambda m: guide(m, ""), Refused("the prompt is empty")),
    ("prompt_blank", lambda m: guide(m, "   "), Refused("the prompt is empty")),
    ("prompt_not_a_string", lambda m: guide(m, 5), Refused("the prompt must be a string")),
    ("prompt_trailing_bar", lambda m: guide(m, "a red circle |"), Refused("empty prompt between")),
    ("weight_not_a_number", lambda m: guide(m, "a red circle:abc"), Refused("cannot read the weight 'abc'")),
    ("weight_two_dots", lambda m: guide(m, "a red circle:1..5"), Refused("cannot read the weight")),
    ("weights_only_negative", lambda m: guide(m, "blurry:-1"), Refused("only negative or zero weights")),
    ("weight_0", lambda m: guide(m, "a red circle:0"), Refused("the weight of 'a red circle'")),
    ("weight_nan", lambda m: guide(m, "a red circle:nan"), Refused("the weight of 'a red circle'")),
    ("weight_1e308", lambda m: guide(m, "a red circle:1e308"), Refused(WEIGHT_RANGE)),
    ("weight_101", lambda m: guide(m, "a red circle:101"), Refused(WEIGHT_RANGE)),
    ("weight_1e-300", lambda m: guide(m, "a red circle:1e-300"), Refused(WEIGHT_RANGE)),
    ("weight_-1e308", lambda m: guide(m, "a red circle | a square:-1e308"), Refused("'a square' must be")),
    ("weights_100_and_-0.01", lambda m: guide(m, "a red circle:100 | a square:-0.01"), A_RUN),
    # counts and rates
    ("steps_0", lambda m: guide(m, steps=0), Refused(f"steps {POSITIVE}")),
    ("steps_2.5", lambda m: guide(m, steps=2.5), Refused(f"steps {POSITIVE}")),
    ("cutouts_0", lambda m: guide(m, cutouts=0), Refused(f"cutouts {POSITIVE}")),
    ("frame_every_0", lambda m: guide(m, frame_every=0), Refused(f"frame_every {POSITIVE}")),
    ("frame_every_negative", lambda m: guide(m, frame_every=-2), Refused("frame_every=steps keeps only")),
    ("lr_0", lambda m: guide(m, lr=0), Refused("lr must be a number above 0")),
    ("lr_negative", lambda m: guide(m, lr=-0.1), Refused("lr must be a number above 0")),
    ("lr_nan", lambda m: guide(m, lr=NAN), Refused("lr must be a number above 0")),
    ("size_0", lambda m: guide(m, size=0), Refused(f"size {POSITIVE}")),
    ("size_negative", lambda m: guide(m, size=-64), Refused(f"size {POSITIVE}")),
    (
        "size_not_a_multiple_of_the_factor",
        lambda m: guide(m, size=62),
        Warns("not a multiple of the downsampling factor 4; using 60", lambda g: g.image.size == (60, 60)),
    ),
    ("callback_not_callable", lambda m: guide(m, callback="print"), Refused("callback must be a function")),
    # seeds
    ("seed_2**70", lambda m: guide(m, seed=2**70), Refused(SEED_RANGE)),
    ("seed_2**64", lambda m: guide(m, seed=2**64), Refused(SEED_RANGE)),
    ("seed_negative", lambda m: guide(m, seed=-1), Refused(SEED_RANGE)),
    ("seed_float", lambda m: guide(m, seed=1.5), Refused(SEED_RANGE, TYPE)),
    ("seed_bool", lambda m: guide(m, seed=True), Refused(SEED_RANGE, TYPE)),
    ("seed_2**64-1", lambda m: guide(m, seed=2**64 - 1), A_RUN),
    ("seed_numpy_int", lambda m: guide(m, seed=np.int64(3)), A_RUN),
    # images
    ("image_prompt_one_path", lambda m: alone_and_in_a_list(m, str(saved(m, "red.png"))), SAME_AS_IN_A_LIST),
    ("image_prompt_one_pil_image", lambda m: alone_and_in_a_list(m, red_image()), SAME_AS_IN_A_LIST),
    (
        "init_image_and_image_prompt_of_another_size",
        lambda m: guide(m, init_image=red_image(), image_prompts=[red_image()]),
        Gives("a 64x64 image", lambda generation: generation.image.size == (64, 64)),
    ),
    (
        "init_image_tensor_with_nan",
        lambda m: guide(m, init_image=torch.full((1, 3, 64, 64), NAN)),
        Refused(r"init_image holds 12288 NaN or infinite pixel values \(in image\(s\) \[0\]\)"),
    ),
    # what goes wrong while running
    ("loss_becomes_nan", guide_with_a_nan_loss, Refused("the loss became nan at step 0.*smaller lr", GPU)),
    (
        "gpu_out_of_memory_in_a_step",
        guide_out_of_memory_in("make_cutouts"),
        Refused("ran out of memory at 64x64 px with 8 cutouts.*cutouts=4.*size=32", GPU),
    ),
    (
        "gpu_out_of_memory_embedding_the_prompts",
        guide_out_of_memory_in("_targets"),
        Refused("ran out of memory at 64x64 px with 8 cutouts.*cutouts=4", GPU),
    ),
)

DALLE = table(
    "dalle",
    # captions
    (
        "caption_unknown_words",
        lambda m: draw(m, "a pink dog"),
        Refused(r"never saw: dog, pink\. It knows only"),
    ),
    ("caption_full_stop", lambda m: draw(m, "a red circle."), Refused(r"never saw: \.")),
    ("caption_empty", lambda m: draw(m, ""), Refused("empty: describe one object, e.g. 'a large red circle")),
    ("caption_blank", lambda m: draw(m, " \n"), Refused("empty: describe one object")),
    ("caption_too_long", lambda m: draw(m, "a red circle " * 4 + "a"), Refused("13 words and marks; .* 12")),
    ("caption_none_in_a_list", lambda m: draw(m, [None]), Refused("a caption must be a string", TYPE)),
    ("captions_empty_list", lambda m: draw(m, []), Refused("no captions")),
    ("captions_a_list", lambda m: draw(m, [CAPTION, "a red star"], n=3), images(6)),
    # how many
    ("n_0", lambda m: draw(m, n=0), Refused(f"n {POSITIVE}")),
    ("n_negative", lambda m: draw(m, n=-4), Refused(f"n {POSITIVE}")),
    ("n_float", lambda m: draw(m, n=2.0), Refused(f"n {POSITIVE}")),
    ("n_bool", lambda m: draw(m, n=True), Refused(f"n {POSITIVE}")),
    ("n_1001", lambda m: draw(m, n=1001), Refused(r"n=1001 images per caption .*at most 1000.*in a loop")),
    (
        "n_10**12",
        isolated(
            "import mmlesson; mmlesson.load_dalle('tiny', device='cpu').generate('a red circle', n=10**12)"
        ),
        Refused(r"n=1000000000000 images per caption .*at most 1000"),
    ),
    (
        "n_5_in_batches_of_2",
        batch_sizes_for_5_images,
        Gives("5 images made 2 (and 1) at a time", lambda made: made == (5, [1, 2])),
    ),
    ("batch_size_0", lambda m: draw(m, batch_size=0), Refused(f"batch_size {POSITIVE}")),
    # temperature
    ("temperature_0", lambda m: draw(m, temperature=0), Refused(TEMPERATURE)),
    ("temperature_negative", lambda m: draw(m, temperature=-1.0), Refused(TEMPERATURE)),
    ("temperature_nan", lambda m: draw(m, temperature=NAN), Refused(TEMPERATURE)),
    ("temperature_inf", lambda m: draw(m, temperature=INF), Refused(TEMPERATURE)),
    ("temperature_string", lambda m: draw(m, temperature="hot"), Refused(TEMPERATURE)),
    ("temperature_bool", lambda m: draw(m, temperature=True), Refused(TEMPERATURE)),
    ("temperature_1e-45", lambda m: draw(m, temperature=1e-45), Refused(TINY_TEMPERATURE)),
    ("temperature_1e-4", lambda m: draw(m, temperature=1e-4), Refused(TINY_TEMPERATURE)),
    ("temperature_0.001", lambda m: draw(m, temperature=1e-3), images(1)),
    ("temperature_1e308_draws_uniformly", lambda m: draw(m, temperature=1e308), images(1)),
    # top_k
    ("top_k_0", lambda m: draw(m, top_k=0), Refused(TOP_K)),
    ("top_k_negative", lambda m: draw(m, top_k=-3), Refused(TOP_K)),
    ("top_k_513", lambda m: draw(m, top_k=513), Refused(TOP_K)),
    ("top_k_10000", lambda m: draw(m, top_k=10_000), Refused(TOP_K)),
    ("top_k_float", lambda m: draw(m, top_k=2.5), Refused(TOP_K)),
    ("top_k_bool", lambda m: draw(m, top_k=True), Refused(TOP_K)),
    ("top_k_512", lambda m: draw(m, top_k=512), images(1)),
    ("top_k_numpy_int", lambda m: draw(m, top_k=np.int64(5)), images(1)),
    # seeds
    ("seed_negative", lambda m: draw(m, seed=-1), Refused(SEED)),
    ("seed_2**70", lambda m: draw(m, seed=2**70), Refused(SEED_RANGE)),
    ("seed_float", lambda m: draw(m, seed=1.5), Refused(SEED, TYPE)),
    ("seed_bool", lambda m: draw(m, seed=True), Refused(SEED, TYPE)),
    ("seed_2**64-1", lambda m: draw(m, seed=2**64 - 1), images(1)),
    ("sample_codes_seed_2**70", lambda m: m.dalle.sample_codes(CAPTION, seed=2**70), Refused(SEED_RANGE)),
    # the GPU
    (
        "gpu_out_of_memory",
        draw_out_of_memory,
        Refused(
            "out of memory sampling images 32 at a time: pass a smaller batch_size, e.g. batch_size=16", GPU
        ),
    ),
)

CLIP = table(
    "clip",
    # images
    ("images_empty_list", lambda m: m.clip.encode_images([]), Refused("no images")),
    (
        "images_empty_tensor",
        lambda m: m.clip.encode_images(torch.zeros(0, 3, 64, 64)),
        Refused("empty tensor"),
    ),
    (
        "images_tensor_too_small",
        lambda m: m.clip.encode_images(torch.zeros(2, 3, 32, 32)),
        Refused("preprocess"),
    ),
    (
        "images_tensor_channels_last",
        lambda m: m.clip.encode_images(torch.zeros(2, 64, 64, 3)),
        Refused("preprocess"),
    ),
    (
        "images_tensor_of_bytes",
        lambda m: m.clip.encode_images(torch.zeros(2, 3, 64, 64, dtype=torch.uint8)),
        Refused("preprocess"),
    ),
    (
        "images_tensor_with_nan",
        lambda m: m.clip.encode_images(pixels_with(m, NAN, image=1)),
        Refused(r"encode_images holds 1 NaN or infinite pixel values \(in image\(s\) \[1\]\)"),
    ),
    (
        "images_tensor_with_inf",
        lambda m: m.clip.encode_images(pixels_with(m, INF, 0)),
        Refused("NaN or infinite"),
    ),
    (
        "images_array_with_nan",
        lambda m: m.clip.encode_images([np.full((8, 8, 3), NAN, dtype=np.float32)]),
        Refused(r"image 0: the array of shape \(8, 8, 3\) and dtype float32", (ValueError,)),
    ),
    (
        "images_path_not_an_image",
        lambda m: m.clip.encode_images([red_image(), saved(m, "notes.png", b"not an image")]),
        Refused(r"image 1: .*notes\.png", (ValueError,)),
    ),
    (
        "images_path_missing",
        lambda m: m.clip.encode_images([m.tmp_path / "missing.png"]),
        Refused("image 0", (FileNotFoundError,)),
    ),
    ("images_batch_size_0", lambda m: m.clip.encode_images(red_image(), batch_size=0), Refused("batch_size")),
    (
        "images_batch_size_bool",
        lambda m: m.clip.encode_images(red_image(), batch_size=True),
        Refused("batch_size"),
    ),
    *[
        (f"images_mode_{mode}", lambda m, mode=mode: m.clip.encode_images([in_mode(mode)]), embeddings(1))
        for mode in ("L", "LA", "RGBA", "P", "I;16")
    ],
    ("images_one_image_not_in_a_list", lambda m: m.clip.encode_images(red_image()), embeddings(1)),
    (
        "images_gpu_out_of_memory",
        encode_out_of_memory,
        Refused(
            "out of memory embedding images 16 at a time: pass a smaller batch_size, e.g. batch_size=8", GPU
        ),
    ),
    # texts
    ("texts_empty_list", lambda m: m.clip.encode_texts([]), Refused("no texts")),
    (
        "texts_not_strings",
        lambda m: m.clip.encode_texts(["a red circle", 3]),
        Refused("text 1 is a int", TYPE),
    ),
    (
        "texts_batch_size_0",
        lambda m: m.clip.encode_texts("a red circle", batch_size=0),
        Refused("batch_size"),
    ),
    ("texts_one_string", lambda m: m.clip.encode_texts("a red circle"), embeddings(1)),
    ("texts_empty_string", lambda m: m.clip.encode_texts([""]), embeddings(1)),
    (
        "texts_unknown_words",
        lambda m: m.clip.encode_texts(["a photo of a dog"]),
        Warns("never seen these words.*dog"),
    ),
    (
        "texts_too_long",
        lambda m: dataclasses.replace(m.clip, _warned_truncation=False).encode_texts(["a red circle " * 20]),
        Warns("longer than this model's 24 tokens", embeddings(1).check),
    ),
)


def classifier(m: SimpleNamespace, classnames: Any, templates: Any = None) -> torch.Tensor:
    return zeroshot.build_classifier(m.clip, classnames, templates)


ZEROSHOT = table(
    "zeroshot",
    ("labels_empty", lambda m: classifier(m, []), Refused(r"no class names \(labels\) given")),
    ("labels_one_string", lambda m: classifier(m, "circle"), Refused(r"did you mean \['circle'\]", TYPE)),
    (
        "labels_twice",
        lambda m: classifier(m, ["circle", "star", "Circle"]),
        Refused("'Circle' appears twice.*0 and 2"),
    ),
    ("labels_empty_string", lambda m: classifier(m, ["circle", ""]), Refused("non-empty strings")),
    ("labels_none", lambda m: classifier(m, ["circle", None]), Refused("non-empty strings")),
    ("templates_empty_list", lambda m: classifier(m, ["circle"], []), Refused("templates is empty")),
    ("template_without_a_field", lambda m: classifier(m, ["circle"], ["a photo of a"]), Refused(TEMPLATE)),
    ("template_with_two_fields", lambda m: classifier(m, ["circle"], ["a {} and a {}"]), Refused(TEMPLATE)),
    (
        "template_with_a_named_field",
        lambda m: classifier(m, ["circle"], ["a {} {name}"]),
        Refused(r"'a \{\} \{name"),
    ),
    ("template_with_a_numbered_field", lambda m: classifier(m, ["circle"], ["a {0}"]), Refused(TEMPLATE)),
    ("template_with_a_lone_brace", lambda m: classifier(m, ["circle"], ["a {} }"]), Refused(TEMPLATE)),
    (
        "template_with_literal_braces",
        lambda m: classifier(m, ["circle"], ["{{a}} {}"]),  # the prompt is "{a} circle"
        Warns(r"never seen these words.*\{a\}", lambda weights: weights.shape[1] == 1),
    ),
    (
        "images_unreadable_file",
        lambda m: zeroshot.classify(
            m.clip, [red_image(), saved(m, "broken.jpg", b"\xff\xd8 cut")], ["star", "circle"]
        ),
        Refused(r"image 1: .*broken\.jpg", (ValueError,)),
    ),
    (
        "images_of_odd_modes_and_sizes",
        lambda m: zeroshot.classify(m.clip, odd_images(), ["star", "circle"]),
        Gives(
            "probabilities [2, 2]", lambda p: p.shape == (2, 2) and torch.allclose(p.sum(1), torch.ones(2))
        ),
    ),
)

JUDGE = table(
    "judge",
    (
        "attributes_fewer_than_images",
        lambda m: judge.match_attributes(m.clip, [red_image()] * 2, [ATTRIBUTES]),
        Refused("2 images but 1 attribute sets"),
    ),
    (
        "attributes_without_shape",
        lambda m: judge.match_attributes(m.clip, [red_image()], [{"color": "red", "position": "left"}]),
        Refused("attribute set 0 must be a dict with the keys color, position, shape"),
    ),
    (
        "attributes_complete",
        lambda m: judge.match_attributes(m.clip, [red_image()], [ATTRIBUTES]),
        Gives("a verdict per attribute", lambda verdict: verdict["color"] == [True]),
    ),
)

# -- the test -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_vqgan() -> VQGAN:
    torch.manual_seed(0)
    config = tiny_vqgan_config()
    config = {**config, "n_embed": 32, "ddconfig": {**config["ddconfig"], "ch_mult": [1, 2, 2]}}
    return VQGAN(config, "test-vqgan").eval()  # 64 px -> 16x16 tokens, fast


@pytest.fixture(scope="module")
def small_dalle():
    return new_tiny_dalle(load_tiny_vqgan().eval(), n_layer=1, n_head=2, n_embd=32, seed=0)


@pytest.fixture
def m(bundle, small_vqgan, small_dalle, tmp_path, monkeypatch) -> SimpleNamespace:
    """What a row's call may use: the small models, a folder, and monkeypatch."""
    return SimpleNamespace(
        clip=bundle, vqgan=small_vqgan, dalle=small_dalle, tmp_path=tmp_path, monkeypatch=monkeypatch
    )


@pytest.mark.parametrize(("call", "outcome"), GUIDED + DALLE + CLIP + ZEROSHOT + JUDGE)
def test_odd_input_gets_advice_or_a_correct_result(call, outcome, m):
    if isinstance(outcome, Refused):
        with pytest.raises(outcome.errors[0], match=outcome.message) as caught:
            call(m)
        assert all(isinstance(caught.value, error) for error in outcome.errors), type(caught.value).__mro__
    elif isinstance(outcome, Warns):
        with pytest.warns(UserWarning, match=outcome.message):
            result = call(m)
        assert outcome.check(result)
    else:
        result = call(m)
        assert outcome.check(result), f"expected {outcome.what}, got {result!r}"
