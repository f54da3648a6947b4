"""Sphinx's configuration for one language of the course website; site/build.py runs one build per language
and passes what it prepared (the language, its pages, the lessons' Colab/Binder links) in the JSON file named
by $MMSITE_CONFIG. Not meant to be run by hand: use `python site/build.py`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for mmsite_sphinx, the site's own extension

SITE = json.loads(Path(os.environ["MMSITE_CONFIG"]).read_text(encoding="utf-8"))

project = "mmlesson"
html_title = "mmlesson"
language = SITE["sphinx_language"]
root_doc = "index"
extensions = ["myst_nb", "mmsite_sphinx"]
templates_path = ["templates"]
exclude_patterns = ["_repo/**/*.md", "lessons/_attachments"]

# The notebooks are committed executed: show what they hold, run nothing.
nb_execution_mode = "off"
nb_merge_streams = True
nb_output_stderr = "show"
nb_code_prompt_show = SITE["strings"]["show_code"]
nb_code_prompt_hide = SITE["strings"]["hide_code"]
myst_enable_extensions = ["dollarmath"]
myst_url_schemes = {  # site: and sitefrag: are addresses on this site that site/build.py wrote
    "http": None,
    "https": None,
    "mailto": None,
    "site": "{{path}}",
    "sitefrag": "{{path}}#{{fragment}}",
}

html_theme = "furo"
html_math_renderer = "mathml"  # mmsite_sphinx: MathML written at build time, no script, works offline
html_static_path = ["static"]
html_favicon = "static/favicon.svg"
html_css_files = ["mmsite.css"]
html_js_files = ["mmsite.js"]
html_copy_source = False
html_show_sourcelink = False
html_show_sphinx = False
html_show_copyright = False
html_last_updated_fmt = None
html_theme_options = {"top_of_page_buttons": [], "navigation_with_keys": True}
html_sidebars = {
    "**": [
        "sidebar/brand.html",
        "sidebar/search.html",
        "sidebar/scroll-start.html",
        "sidebar/navigation.html",
        "mm-more.html",
        "sidebar/scroll-end.html",
    ]
}
html_context = {"mm": SITE}
