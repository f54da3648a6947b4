"""mmlesson: the helper package of a course on multimodal networks (CLIP, VQGAN, guided generation, DALL-E).

The notebooks build each idea step by step; this package holds what they reuse (the Shapes world,
plots, downloads, device handling, the models) so that every lesson stays short and runs the same way
everywhere.

The names below are imported on first use, not with the package: the translation tooling
(`python -m mmlesson i18n ...`) then runs where PyTorch is not installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata

# Each public name, and the module that defines it.
_HOMES = {
    "VQGAN": "mmlesson.vqgan",
    "ClipBundle": "mmlesson.clip",
    "Dalle": "mmlesson.dalle",
    "Dalle2": "mmlesson.dalle2",
    "MMLessonError": "mmlesson.errors",
    "Runtime": "mmlesson.runtime",
    "load_clip": "mmlesson.clip",
    "load_dalle": "mmlesson.dalle",
    "load_dalle2": "mmlesson.dalle2",
    "load_vqgan": "mmlesson.vqgan",
    "setup": "mmlesson.runtime",
}

try:
    __version__ = importlib.metadata.version("mmlesson")
except importlib.metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [*_HOMES, "__version__"]


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module 'mmlesson' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
