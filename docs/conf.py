"""Sphinx configuration of the API reference: `sphinx-build -W -b html docs docs/_build/html`
(the `docs` extra) documents the installed qvae_core from its docstrings."""

import qvae_core

project = "qvae-core"
copyright = "the qvae-core authors, Apache-2.0"
release = version = qvae_core.__version__
extensions = ["sphinx.ext.autodoc"]
exclude_patterns = ["_build", "*.md"]
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
html_theme = "alabaster"


def _docstring_as_text(app, what, name, obj, options, lines):
    """The docstrings are plain text written for help() (equations such as |<z|e^{-H}|z>|, products
    with *), not reStructuredText: show each verbatim."""
    if any(line.strip() for line in lines):
        lines[:] = ["::", ""] + ["    " + line for line in lines] + [""]


def setup(app):
    app.connect("autodoc-process-docstring", _docstring_as_text)
