"""ClipBundle: what lessons pass to encode_images / encode_texts, and what comes back."""

from __future__ import annotations

import dataclasses
import gc
import warnings
import weakref

import numpy as np
import pytest
import torch

import mmlesson
from mmlesson import data, train_clip
from mmlesson.clip import CompactTokenizer, OutOfMemoryAdvice, bundle_from_model, normalize_pixels
from mmlesson.errors import InputError, MMLessonError
from mmlesson.images import load_image


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
    via_training = normalize_pixels(shapes.to_tensor())
    assert torch.allclose(via_pil, via_training, atol=1e-5)


def test_preprocess_batch_gives_exactly_the_per_image_numbers(bundle, shapes):
    images = shapes.images[:6] + [load_image(photo.image) for photo in data.photos()[:4]]
    one_by_one = torch.stack([bundle.preprocess(image) for image in images])
    assert torch.equal(bundle.preprocess_batch(images), one_by_one)
    custom = dataclasses.replace(bundle, preprocess=lambda image: bundle.preprocess(image) * 2)
    assert torch.equal(custom.preprocess_batch(images), one_by_one * 2)  # any callable still works


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


def test_compact_tokenizer_keeps_clip_order_and_ends_with_the_largest_id():
    tokenizer = CompactTokenizer(train_clip.course_bpe_ids(), context_length=24)
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
    model, tokenizer = train_clip.new_tiny_clip(width=64, layers=1)
    half = bundle_from_model(model.half().eval(), tokenizer, "half-clip", torch.device("cpu"))
    images, texts = half.encode_images(shapes.images), half.encode_texts(shapes.captions)
    assert images.dtype == texts.dtype == torch.float32
    assert torch.allclose(images.norm(dim=1), torch.ones(len(shapes)), atol=1e-3)


# Odd arguments of encode_images and encode_texts: the table in tests/test_bad_input_generation.py.


def test_input_errors_are_course_errors_that_python_code_catches_as_value_or_type_errors():
    error = InputError("seed must be a non-negative integer")
    assert isinstance(error, MMLessonError) and isinstance(error, ValueError) and isinstance(error, TypeError)


def test_out_of_memory_advice_says_what_to_lower_and_lets_go_of_the_failed_calls_tensors():
    """A notebook keeps the last error: if it held the failed call's tensors, a retry would fail too."""
    kept = []

    def run_out_of_memory() -> None:
        tensor = torch.zeros(1000)
        kept.append(weakref.ref(tensor))
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(MMLessonError, match="The GPU ran out of memory at 64x64 px: try size=32") as caught:
        with OutOfMemoryAdvice("at 64x64 px: try size=32"):
            run_out_of_memory()
    gc.collect()
    assert caught.value is not None and kept[0]() is None
    with pytest.raises(KeyError):  # any other error passes unchanged
        with OutOfMemoryAdvice("at 64x64 px: try size=32"):
            raise KeyError("size")
