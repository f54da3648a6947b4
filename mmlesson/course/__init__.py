"""Course infrastructure: what keeps the lessons running, not what they teach.

Downloads and the shared cache (`assets`, `asset_overrides`), reading published checkpoints safely
(`checkpoints`), the image index's file format (`index_file`), the trainers' command line (`training`), the
`python -m mmlesson` command line (`cli`), progress bars that save well in a notebook (`progress`), timing
(`timing`), the profile names (`profiles`), and the translation tooling (`i18n`). A lesson never imports
from here: the names it needs are in the lesson modules' `__all__` (see API.md). `python -m mmlesson
i18n ...` imports nothing of PyTorch, so it runs where PyTorch is not installed.
"""
