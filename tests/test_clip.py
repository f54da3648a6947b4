"""ClipBundle: what lessons pass to encode_images / encode_texts, and what comes back."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch

import mmlesson
from mmlesson import data, train
from mmlesson.clip import CompactTokenizer, bundle_from_model
from mmlesson.errors import MMLessonError


@pytest.fixture(scope="module")
def shapes():
    return data.ShapesWorld(seed=3).sample(5)


def test_embeddings_are_normalized_float32_on_cpu(bundle, shapes):
    images = bundle.encode_images(shapes.images)
    texts = bundle.encode_texts(shapes.captions)
    for embeddings in (images, texts):
        assert embeddings.shape == (5, bundle.embed_dim)
        assert embeddings.dtype == torch.float32 and embeddings.device.type == "cpu"
        assert torch.allclose(embeddings.norm(dim=1), torch.ones(5), atol=1e-5)


def test_batching_does_not_change_results(bundle, shapes):
    whole = bundle.encode_images(shapes.images, batch_size=64)
    assert torch.allclose(bundle.encode_images(shapes.images, batch_size=2), whole, atol=1e-5)
    texts = bundle.encode_texts(shapes.captions)
    assert torch.allclose(bundle.encode_texts(shapes.captions, batch_size=1), texts, atol=1e-5)


def test_pil_path_array_and_tensor_inputs_agree(bundle, shapes, tmp_path):
    image = shapes.images[0]
    path = tmp_path / "shape.png"
    image.save(path)
    expected = bundle.encode_images([image])
    as_tensor = bundle.preprocess(image)
    for item in (image, path, str(path), np.asarray(image), as_tensor, as_tensor.unsqueeze(0)):
        assert torch.allclose(
            bundle.encode_images(item if isinstance(item, torch.Tensor) else [item]), expected, atol=1e-5
        )
    mixed = bundle.encode_images([image, path, np.asarray(image)])
    assert torch.allclose(mixed, expected.repeat(3, 1), atol=1e-5)


def test_preprocess_matches_the_training_pipeline(bundle, shapes):
    """The bundle's PIL preprocessing and the trainer's tensor normalization must feed the same pixels."""
    via_pil = torch.stack([bundle.preprocess(image) for image in shapes.images])
    via_training = train.normalize_pixels(shapes.to_tensor())
    assert torch.allclose(via_pil, via_training, atol=1e-5)


def test_preprocess_batch_gives_exactly_the_per_image_numbers(bundle, shapes):
    images = shapes.images[:6] + [data.load_image(photo.image) for photo in data.photos()[:4]]
    one_by_one = torch.stack([bundle.preprocess(image) for image in images])
    assert torch.equal(bundle.preprocess_batch(images), one_by_one)
    custom = dataclasses.replace(bundle, preprocess=lambda image: bundle.preprocess(image) * 2)
    assert torch.equal(custom.preprocess_batch(images), one_by_one * 2)  # any callable still works


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_other_image_modes_are_converted(bundle, shapes, mode):
    image = shapes.images[1]
    converted = image.convert("L").convert("I;16") if mode == "I;16" else image.convert(mode)
    assert bundle.encode_images([converted]).shape == (1, bundle.embed_dim)


def test_a_non_image_path_is_named(bundle, shapes, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match=r"image 1: .*notes\.png"):
        bundle.encode_images([shapes.images[0], bad])
    with pytest.raises(FileNotFoundError, match="image 0"):
        bundle.encode_images([tmp_path / "missing.png"])


@pytest.mark.parametrize(
    "pixels",
    [torch.zeros(2, 3, 32, 32), torch.zeros(2, 64, 64, 3), torch.zeros(2, 3, 64, 64, dtype=torch.uint8)],
)
def test_a_tensor_that_is_not_preprocessed_is_refused(bundle, pixels):
    with pytest.raises(ValueError, match="preprocess"):
        bundle.encode_images(pixels)


def test_empty_inputs_are_refused(bundle):
    with pytest.raises(ValueError, match="no images"):
        bundle.encode_images([])
    with pytest.raises(ValueError, match="no texts"):
        bundle.encode_texts([])
    with pytest.raises(ValueError, match="batch_size"):
        bundle.encode_texts(["a red circle"], batch_size=0)


def test_a_single_string_and_an_empty_string(bundle):
    assert bundle.encode_texts("a red circle").shape == (1, bundle.embed_dim)
    empty = bundle.encode_texts([""])  # the embedding of no words: start and end tokens only
    assert torch.isfinite(empty).all() and empty.shape == (1, bundle.embed_dim)


def test_non_strings_are_named(bundle):
    with pytest.raises(TypeError, match="text 1 is a int"):
        bundle.encode_texts(["a red circle", 3])


def test_long_texts_are_truncated_with_one_warning(bundle):
    long_text = "a red circle " * 20
    bundle._warned_truncation = False
    with pytest.warns(UserWarning, match="longer than this model's 24 tokens"):
        first = bundle.encode_texts([long_text])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = bundle.encode_texts([long_text])  # the second time: no warning
    assert torch.allclose(first, second)
    cut = bundle.tokenizer([long_text])[0]
    assert cut[-1].item() == bundle.tokenizer.vocab_size - 1  # truncated, and still ends with the end token


def test_unknown_words_are_reported(bundle):
    with pytest.warns(UserWarning, match="never seen these words.*dog"):
        bundle.encode_texts(["a photo of a dog"])


def test_compact_tokenizer_keeps_clip_order_and_ends_with_the_largest_id():
    tokenizer = CompactTokenizer(train.course_bpe_ids(), context_length=24)
    tokens = tokenizer(["a red circle", "a photo of a dog"])
    assert tokens.shape == (2, 24)
    assert tokens[0, 0].item() == tokenizer.vocab_size - 2  # start token
    assert tokens.argmax(dim=1).tolist() == [4, 6]  # the end token, where open_clip pools the text
    assert tokenizer.unknown_id in tokens[1].tolist() and tokenizer.unknown_id not in tokens[0].tolist()
    assert tokenizer.vocab_size < 100


def test_load_clip_rejects_unknown_profile_and_explains_full():
    with pytest.raises(MMLessonError, match="Unknown profile"):
        mmlesson.load_clip(profile="huge")
    with pytest.raises(MMLessonError, match="MMLESSON_PROFILE=tiny"):
        mmlesson.load_clip(profile="full")
    with pytest.raises(MMLessonError, match="Unknown device"):
        mmlesson.load_clip(profile="tiny", device="gpu")


def test_embeddings_can_feed_a_trainable_probe(bundle, shapes):
    """A linear probe on frozen embeddings must train: the result may not be an inference-mode tensor."""
    embeddings = bundle.encode_images(shapes.images)
    assert not embeddings.is_inference()
    probe = torch.nn.Linear(bundle.embed_dim, 2)
    probe(embeddings).sum().backward()
    assert probe.weight.grad is not None


def test_a_half_precision_model_takes_float32_pixels(shapes):
    """The full profile runs in float16 on a GPU; the pixels must follow the model's dtype."""
    model, tokenizer = train.new_tiny_clip(width=64, layers=1)
    half = bundle_from_model(model.half().eval(), tokenizer, "half-clip", torch.device("cpu"))
    images, texts = half.encode_images(shapes.images), half.encode_texts(shapes.captions)
    assert images.dtype == texts.dtype == torch.float32
    assert torch.allclose(images.norm(dim=1), torch.ones(len(shapes)), atol=1e-3)
