"""Course infrastructure: what keeps the lessons running, not what they teach.

Downloads and the shared cache (`assets`, `asset_overrides`), reading foreign checkpoints safely
(`checkpoints`), the index file format (`index_file`), the trainers' command lines (`training`), the
`python -m mmlesson` command line (`cli`), the profile names (`profiles`), and the translation tooling
(`i18n`). A lesson never imports from here: the names it needs are in the lesson modules' `__all__`
(see API.md). Nothing in this package imports PyTorch at import time except `checkpoints` and `training`,
so `python -m mmlesson i18n ...` runs where PyTorch is not installed.
"""
