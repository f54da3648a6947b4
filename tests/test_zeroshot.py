"""Zero-shot classifiers: the prompt-ensembling arithmetic, and every odd list of class names."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmlesson import data, zeroshot


@pytest.fixture(scope="module")
def images():
    return data.ShapesWorld(seed=4).sample(6).images


def test_classifier_is_the_normalized_mean_of_normalized_prompt_embeddings(bundle):
    templates = ["a {}", "a photo of a {}"]
    weights = zeroshot.build_classifier(bundle, ["red circle", "blue star"], templates)
    assert weights.shape == (bundle.embed_dim, 2)
    red = bundle.encode_texts(["a red circle", "a photo of a red circle"]).mean(dim=0)
    assert torch.allclose(weights[:, 0], F.normalize(red, dim=0), atol=1e-5)
    assert torch.allclose(weights.norm(dim=0), torch.ones(2), atol=1e-5)


def test_without_templates_the_bare_names_are_the_prompts(bundle):
    weights = zeroshot.build_classifier(bundle, ["red circle"])
    assert torch.allclose(weights[:, 0], bundle.encode_texts(["red circle"])[0], atol=1e-5)


def test_probabilities(bundle, images):
    probs = zeroshot.classify(bundle, images, ["circle", "square", "star"], zeroshot.SHAPES_TEMPLATES)
    assert probs.shape == (6, 3)
    assert torch.allclose(probs.sum(dim=1), torch.ones(6), atol=1e-5)
    scale = bundle.model.logit_scale.exp().item()
    weights = zeroshot.build_classifier(bundle, ["circle", "square", "star"], zeroshot.SHAPES_TEMPLATES)
    expected = (scale * bundle.encode_images(images) @ weights).softmax(dim=1)
    assert torch.allclose(probs, expected, atol=1e-5)


def test_a_single_class_gets_all_the_probability(bundle, images):
    assert torch.allclose(zeroshot.classify(bundle, images, ["circle"]), torch.ones(6, 1))


def test_hundreds_of_classes_are_batched(bundle, images):
    names = [f"{c} {s} {n}" for c, s in data.ALL_COMBOS for n in range(10)]
    with pytest.warns(UserWarning, match="never seen these words"):  # digits are not Shapes-world words
        probs = zeroshot.classify(bundle, images[:2], names, zeroshot.SHAPES_TEMPLATES)
    assert probs.shape == (2, 300)


def test_images_of_any_mode_and_size(bundle):
    odd = [
        data.render("red", "star", "large", "left", image_size=200).convert("P"),
        data.render("blue", "circle", "small", "top", image_size=48).convert("LA"),
    ]
    assert zeroshot.classify(bundle, odd, ["star", "circle"]).shape == (2, 2)


def test_an_unreadable_file_is_named(bundle, images, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(ValueError, match=r"image 1: .*broken\.jpg"):
        zeroshot.classify(bundle, [images[0], broken], ["star", "circle"])


@pytest.mark.parametrize(
    "classnames, error, message",
    [
        ([], ValueError, "empty"),
        (["circle", "star", "Circle"], ValueError, "'Circle' appears twice.*positions 0 and 2"),
        (["circle", ""], ValueError, "non-empty strings"),
        (["circle", None], ValueError, "non-empty strings"),
        ("circle", TypeError, r"did you mean \['circle'\]"),
    ],
)
def test_bad_class_names(bundle, classnames, error, message):
    with pytest.raises(error, match=message):
        zeroshot.build_classifier(bundle, classnames)


@pytest.mark.parametrize("templates", [["a photo of a"], ["a {} and a {}"], []])
def test_bad_templates(bundle, templates):
    with pytest.raises(ValueError, match="template"):
        zeroshot.build_classifier(bundle, ["circle"], templates)
