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


# Odd arguments of build_classifier and classify (class names, templates, images): the table in
# tests/test_bad_input_generation.py.
