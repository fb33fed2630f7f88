"""Sphinx configuration of fastrnn's API reference, built from the numpydoc docstrings.

Build it after installing the package and the docs extra (README.md, "Documentation"):
    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

import warnings

import fastrnn

# numpydoc reports a docstring it cannot parse (an unknown section, say) as a Python warning,
# which sphinx-build -W does not see: make it an error too.
warnings.filterwarnings("error", category=UserWarning, module="numpydoc")

project = "fastrnn"
release = version = fastrnn.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.mathjax", "numpydoc", "myst_parser"]

# The reference pages and the guide pages the README's long sections moved to (Markdown,
# read by myst-parser, so that they read the same on the repository's web page); docs/ also
# holds DECISIONS.md and the benchmark's files, which are not part of the site.
root_doc = "index"
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "DECISIONS.md"]
# The guides link to files of the repository outside docs/ (ARCHITECTURE.md, the source),
# which are not pages of the site.
suppress_warnings = ["myst.xref_missing"]

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
# numpydoc renders the sections; autodoc lists the members, so no summary tables of stubs.
numpydoc_show_class_members = False
numpydoc_attributes_as_param_list = False
html_theme = "alabaster"
