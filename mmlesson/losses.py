"""The two losses that train image-text models, written out so each line can be read against the math.

CLIP's loss (Radford et al., 2021) is a symmetric InfoNCE: in a batch of N matching (image, text) pairs,
the N x N matrix of cosine similarities, scaled by a learned temperature, should have its largest value of
every row and every column on the diagonal. So it is cross-entropy with the diagonal as the labels, taken
over rows (image -> text) and over columns (text -> image), and averaged.

SigLIP's loss (Zhai et al., 2023) asks a yes/no question of every cell instead: a sigmoid says "do these
two belong together?", true on the diagonal and false elsewhere, so no softmax over the batch is needed.

Both take the multiplier `logit_scale` (CLIP learns log(scale) and passes `scale.exp()`), as open_clip's
`ClipLoss` and `SigLipLoss` do; the tests check that the results agree with open_clip.

Across processes (lesson 8), every worker embeds its share of the global batch; `gather_with_grad` hands each
worker everyone's embeddings, so `global_contrastive_loss` contrasts each pair against the whole global batch,
as one process holding the whole batch would. With `local_loss=True` a worker computes only its own rows and
columns of the N x N matrix (open_clip's memory trick): the loss averaged over workers, and the gradients, are
the same.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from mmlesson.errors import InputError

# The names lessons use; see API.md.
__all__ = [
    "similarity_logits",
    "contrastive_loss",
    "sigmoid_loss",
    "gather_with_grad",
    "global_contrastive_loss",
]


def _check_pair(image_embeddings: torch.Tensor, text_embeddings: torch.Tensor) -> None:
    """The same number of images and texts, embedded in the same space."""
    if image_embeddings.ndim != 2 or text_embeddings.ndim != 2:
        raise InputError(
            "embeddings must be 2-D [batch, dim]; got image "
            f"{tuple(image_embeddings.shape)} and text {tuple(text_embeddings.shape)}"
        )
    if image_embeddings.shape != text_embeddings.shape:
        raise InputError(
            f"image and text embeddings must have the same shape (pair k is image k with text k); got "
            f"{tuple(image_embeddings.shape)} and {tuple(text_embeddings.shape)}"
        )
    if image_embeddings.shape[0] == 0:
        raise InputError("the batch is empty: a contrastive loss needs at least one (image, text) pair")


def similarity_logits(
    image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """The N x N matrix: cosine similarity of image i and text j, times the scale (1 / temperature).

    Computed in float32 whatever the input precision: a softmax over half-precision logits loses digits.
    """
    images = F.normalize(image_embeddings.float(), dim=-1)
    texts = F.normalize(text_embeddings.float(), dim=-1)
    return logit_scale * images @ texts.T


def contrastive_loss(
    image_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE loss for a batch of matching pairs (pair k = image k and text k)."""
    _check_pair(image_embeddings, text_embeddings)
    logits = similarity_logits(image_embeddings, text_embeddings, logit_scale)
    labels = torch.arange(len(logits), device=logits.device)  # the right text for image k is text k
    image_to_text = F.cross_entropy(logits, labels)  # each row: which text describes this image?
    text_to_image = F.cross_entropy(logits.T, labels)  # each column: which image does this text describe?
    return (image_to_text + text_to_image) / 2


def sigmoid_loss(
    image_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    logit_scale: torch.Tensor | float,
    logit_bias: torch.Tensor | float,
) -> torch.Tensor:
    """SigLIP's loss: an independent yes/no (sigmoid) decision for every image-text cell, summed per image."""
    _check_pair(image_embeddings, text_embeddings)
    logits = similarity_logits(image_embeddings, text_embeddings, logit_scale) + logit_bias
    n = len(logits)
    signs = 2 * torch.eye(n, device=logits.device) - 1  # +1 on the diagonal (a match), -1 elsewhere
    return -F.logsigmoid(signs * logits).sum() / n


def gather_with_grad(features: torch.Tensor) -> torch.Tensor:
    """Every worker's `features`, concatenated in rank order, on every worker.

    torch's differentiable all-gather: in the backward pass each worker's share receives the gradients that
    all workers computed for it (summed), so no worker's embeddings are treated as constants.
    """
    from torch.distributed.nn.functional import all_gather  # here: some torch builds lack torch.distributed

    return torch.cat(all_gather(features), dim=0)


def global_contrastive_loss(
    image_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    logit_scale: torch.Tensor | float,
    local_loss: bool = False,
) -> torch.Tensor:
    """CLIP's loss over the global batch, called on every worker with its own share of the pairs.

    `local_loss=False`: every worker builds the whole (global N) x (global N) matrix and gets the global loss.
    `local_loss=True`: a worker builds only its n rows (its images against all texts) and its n columns (its
    texts against all images), n x N instead of N x N; its loss is its share of the global loss, and the
    mean over workers is the global loss. Either way the gradients equal those of one process.
    """
    _check_pair(image_embeddings, text_embeddings)
    all_images, all_texts = gather_with_grad(image_embeddings), gather_with_grad(text_embeddings)
    if not local_loss:
        return contrastive_loss(all_images, all_texts, logit_scale)
    n = len(image_embeddings)
    labels = torch.arange(n, device=image_embeddings.device) + n * dist.get_rank()  # where my pairs sit
    image_to_text = F.cross_entropy(similarity_logits(image_embeddings, all_texts, logit_scale), labels)
    text_to_image = F.cross_entropy(similarity_logits(text_embeddings, all_images, logit_scale), labels)
    return (image_to_text + text_to_image) / 2
