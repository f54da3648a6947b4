"""The course's two profiles, by name.

`tiny` runs the models this repository trains and ships, offline on any CPU; `full` runs pretrained open_clip
ViT-B-32 and VQGAN f16-16384 on a GPU; `auto` lets `mmlesson.runtime` pick. The names live here, free of
PyTorch, so that the command line can offer them without importing it.
"""

PROFILES = ("tiny", "full")
PROFILE_CHOICES = (*PROFILES, "auto")
