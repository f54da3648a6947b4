"""The learning-rate schedule every trainer in the course uses: a linear warm-up, then a cosine decay.

`learning_rate` gives the rate at a step; `set_learning_rate` puts it into an optimizer before the step.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

# The names lessons use; see API.md.
__all__ = [
    "learning_rate",
    "set_learning_rate",
]

if TYPE_CHECKING:
    import torch


def learning_rate(step: int, steps: int, peak: float, warmup: int = 0, floor: float = 0.0) -> float:
    """Linear warm-up to `peak` over `warmup` steps, then a cosine decay to `floor * peak`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def set_learning_rate(optimizer: torch.optim.Optimizer, rate: float) -> None:
    """Every parameter group of `optimizer` takes the step's `rate`."""
    for group in optimizer.param_groups:
        group["lr"] = rate
