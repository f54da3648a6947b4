"""mmlesson: the helper package of a course on multimodal networks (CLIP, VQGAN, guided generation, DALL-E).

The notebooks build each idea step by step; this package holds what they reuse (the Shapes world,
plots, downloads, device handling, the models) so that every lesson stays short and runs the same way
everywhere.
"""

from mmlesson.clip import ClipBundle, load_clip
from mmlesson.dalle import Dalle, load_dalle
from mmlesson.errors import MMLessonError
from mmlesson.runtime import Runtime, setup
from mmlesson.vqgan import VQGAN, load_vqgan

__version__ = "0.1.0"
__all__ = [
    "VQGAN",
    "ClipBundle",
    "Dalle",
    "MMLessonError",
    "Runtime",
    "__version__",
    "load_clip",
    "load_dalle",
    "load_vqgan",
    "setup",
]
