"""Sphinx configuration for sklearn-privacy."""

import sklearn_privacy

project = "sklearn-privacy"
author = "sklearn-privacy developers"
copyright = "2026, sklearn-privacy developers"
release = sklearn_privacy.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
templates_path = ["_templates"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []
nitpicky = False


def _skip_scikit_learn_members(app, what, name, obj, skip, options):
    """Leave out members inherited from scikit-learn (``score``, ``set_output``, the
    generated ``set_*_request`` methods): their docstrings point into scikit-learn's own
    glossary, and scikit-learn documents them."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    if (getattr(obj, "__module__", None) or "").startswith("sklearn."):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_scikit_learn_members)
