"""Zero-shot classification: a classifier made of sentences instead of training data.

For each class name, CLIP embeds one or more prompts ("a photo of a cat", "a drawing of a cat", ...); the
normalized embeddings of one class are averaged and normalized again (the prompt ensembling of the CLIP
paper, section 3.1.4). The result is a matrix W [D, C] that works exactly like the last layer of a trained
classifier: logits = image_embeddings @ W, and a softmax at the model's own learned temperature gives the
probabilities.
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import torch

from mmlesson.clip import ClipBundle
from mmlesson.errors import InputError

# The names lessons use; see API.md.
__all__ = [
    "PHOTO_TEMPLATES",
    "SHAPES_TEMPLATES",
    "build_classifier",
    "classify",
]

# Prompt sets. Photos: a few of the CLIP paper's ImageNet templates. Shapes: phrasings the tiny CLIP saw
# in training (mmlesson.data.PROMPT_PREFIXES), so ensembling them averages over known wordings.
PHOTO_TEMPLATES = (
    "a photo of a {}.",
    "a bad photo of a {}.",
    "a close-up photo of a {}.",
    "a photo of the large {}.",
    "a photo of the small {}.",
    "a drawing of a {}.",
    "a low resolution photo of a {}.",
    "itap of a {}.",
)
SHAPES_TEMPLATES = ("a {}", "a photo of a {}", "a picture of a {}", "an image of a {}", "a drawing of a {}")


def _check_classnames(classnames: Sequence[str]) -> list[str]:
    """The class names, stripped: a list of distinct, non-empty strings."""
    if isinstance(classnames, str):
        raise InputError(f"the class names must be a list, not one string: did you mean [{classnames!r}]?")
    names = [name.strip() if isinstance(name, str) else name for name in classnames]
    if not names:
        raise InputError("no class names (labels) given: list at least one, e.g. ['cat', 'dog']")
    bad = [k for k, name in enumerate(names) if not isinstance(name, str) or not name]
    if bad:
        raise InputError(
            f"class names must be non-empty strings; see position(s) {bad}: {[names[k] for k in bad]}"
        )
    seen: dict[str, int] = {}
    for k, name in enumerate(names):
        if name.lower() in seen:
            raise InputError(
                f"class name {name!r} appears twice (positions {seen[name.lower()]} and {k}): two identical "
                "classes would split the probability between them. Remove one."
            )
        seen[name.lower()] = k
    return names


def _check_templates(templates: Sequence[str] | None) -> list[str]:
    """The templates as a list; each must have exactly one empty field `{}`, where the class name goes."""
    templates = (
        ["{}"] if templates is None else ([templates] if isinstance(templates, str) else list(templates))
    )
    if not templates:
        raise InputError("templates is empty: pass None to use the bare class names, or a list of prompts")
    for template in templates:
        if not isinstance(template, str) or _fields(template) != [""]:
            raise InputError(
                f"the template {template!r} must hold exactly one '{{}}' where the class name goes and no "
                "other {...} field, e.g. 'a photo of a {}' (write a brace that is part of the text twice: "
                "'{{' or '}}')"
            )
    return templates


def _fields(template: str) -> list[str] | None:
    """The names of the template's `str.format` fields ('' for `{}`), or None if it cannot be parsed."""
    try:
        return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError:  # a single '{' or '}'
        return None


def build_classifier(
    clip: ClipBundle, classnames: Sequence[str], templates: Sequence[str] | None = None
) -> torch.Tensor:
    """The zero-shot weights [D, C]: per class, the normalized mean of its prompts' normalized embeddings."""
    names = _check_classnames(classnames)
    templates = _check_templates(templates)
    prompts = [template.format(name) for name in names for template in templates]
    embeddings = clip.encode_texts(prompts).view(len(names), len(templates), -1)
    class_embeddings = torch.nn.functional.normalize(embeddings.mean(dim=1), dim=-1)
    return class_embeddings.T.contiguous()


def classify(
    clip: ClipBundle,
    images,
    classnames: Sequence[str],
    templates: Sequence[str] | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Probabilities [N, C] that each image shows each class (rows sum to 1)."""
    weights = build_classifier(clip, classnames, templates)
    scale = clip.model.logit_scale.exp().item()
    logits = scale * clip.encode_images(images, batch_size=batch_size) @ weights
    return logits.softmax(dim=-1)
