"""Sphinx configuration of the treeinf documentation.

Build it with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(``tests/test_docs.py`` does the same into a temporary directory, so the docs
build and every code example in them run with the test suite).
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))   # document this checkout, installed or not

import treeinf  # noqa: E402

project = "treeinf"
author = "the treeinf developers"
copyright = "the treeinf developers, MIT License"
release = treeinf.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Markdown: $...$ and $$...$$ math, anchors for headings down to level 3
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# Literal blocks without a language are formulas or program output
highlight_language = "text"

# API reference from the numpydoc docstrings
autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_inherit_docstrings = True
numpydoc_show_class_members = False      # members are listed by autodoc options
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

html_theme = "alabaster"
html_title = f"treeinf {release}"
html_theme_options = {
    "description": "Training-data influence for tree ensembles",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "240px",
}
html_static_path = []


# -- plain-text docstrings ----------------------------------------------------
# treeinf's docstrings are read in terminals as much as here, so they write
# |x| for an absolute value, 'lp_' for a string option and
# (n_features_in_,) for a shape. In reStructuredText the first is a
# substitution and a word ending in "_" a hyperlink reference. After numpydoc
# has turned a docstring into reST, escape exactly these two constructs in
# prose (not in ``literals``, roles, literal blocks or doctests).
_ABS = re.compile(r"(?<![|\\])\|(?=[^\s|])([^|`]*?[^\s|\\])\|(?!\|)")
_TRAILING_UNDERSCORE = re.compile(r"(?<![\\\w])([A-Za-z]\w*?)_(?=[\s,;:.)\]'\"}]|$)")
_CODE = re.compile(r"(`+)(?:(?!\1).)+\1")


def _escape_prose(text):
    parts, last = [], 0
    for m in _CODE.finditer(text):      # keep inline literals and roles as they are
        parts.append(_TRAILING_UNDERSCORE.sub(r"\1\\_", _ABS.sub(r"\\|\1\\|",
                                                                  text[last:m.start()])))
        parts.append(m.group(0))
        last = m.end()
    parts.append(_TRAILING_UNDERSCORE.sub(r"\1\\_", _ABS.sub(r"\\|\1\\|", text[last:])))
    return "".join(parts)


def _escape_docstring(app, what, name, obj, options, lines):
    literal_indent = None       # indentation of the paragraph that opened a literal block
    in_doctest = False
    for k, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if not stripped or indent > literal_indent:
                continue
            literal_indent = None
        if stripped.startswith(">>>"):
            in_doctest = True
        if in_doctest:
            in_doctest = bool(stripped)
            continue
        if stripped.endswith("::"):
            literal_indent = indent
        lines[k] = _escape_prose(line)


def setup(app):
    # numpydoc rewrites docstrings at the default priority (500); run after it
    app.connect("autodoc-process-docstring", _escape_docstring, priority=600)
