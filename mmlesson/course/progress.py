"""How a loop's progress shows: tqdm's bar (a widget in a notebook, text elsewhere), made so that a saved
notebook shows each bar as it ended, not as it began."""

from __future__ import annotations

import functools


def progress_bar(iterable=None, **options):
    """tqdm's progress bar (a widget in a notebook, text elsewhere) that a saved notebook shows as it ended.

    tqdm's notebook bar keeps, as its output's plain-text form, the text of its first moment: a notebook
    opened without running, or read on GitHub, would show "0%" for a loop that ran to the end. In a notebook
    this bar's display therefore gets an id, and closing the bar rewrites that output with the final text.
    """
    from tqdm.auto import tqdm
    from tqdm.notebook import tqdm as notebook_tqdm

    bar_class = _notebook_bar_class() if issubclass(tqdm, notebook_tqdm) else tqdm
    return bar_class(iterable, **options)


@functools.cache
def _notebook_bar_class() -> type:
    from IPython.display import display
    from tqdm.notebook import tqdm as notebook_tqdm

    class NotebookBar(notebook_tqdm):
        def __init__(self, *args, **options) -> None:
            super().__init__(*args, **{**options, "display": False})
            self._handle = None if self.disable else display(self._bundle(), raw=True, display_id=True)
            self.displayed = True

        def _bundle(self) -> dict:
            """The widget, and as plain text the bar's text now (built by hand: ipywidgets 7 and 8 alike)."""
            view = {"version_major": 2, "version_minor": 0, "model_id": self.container.model_id}
            return {"application/vnd.jupyter.widget-view+json": view, "text/plain": repr(self.container)}

        def close(self) -> None:
            super().close()
            if getattr(self, "_handle", None) is not None:
                self._handle.update(self._bundle(), raw=True)
                self._handle = None

    return NotebookBar
