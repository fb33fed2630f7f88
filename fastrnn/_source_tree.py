"""An unbuilt source tree steps aside for the installed fastrnn.

Python puts the current directory first on ``sys.path``, so ``import fastrnn`` run from the
repository root finds the source folder, not the copy that ``pip install .`` put in
site-packages.  A source folder whose kernels were never compiled cannot run, so when it
finds itself in that state it loads the installed copy in its place (``sys.modules`` then
holds the installed package, which is what ``import fastrnn`` returns).

A source folder with any compiled module is a developer's build (``pip install -e .`` or
``setup.py build_ext --inplace``) and is always used as it is.
"""

import importlib.machinery
import importlib.util
import os
import sys

_HOW_TO_BUILD = ("install it (pip install .) or build it in place "
                 "(pip install -e . or python setup.py build_ext --inplace)")


def _is_built(package_dir):
    """Whether the kernels folder of a fastrnn package holds any compiled module."""
    kernels = os.path.join(package_dir, "kernels")
    try:
        names = os.listdir(kernels)
    except OSError:
        return False
    return any(name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)) for name in names)


def _installed_copy(source_dir):
    """The first other fastrnn package on ``sys.path`` with compiled kernels, or None."""
    source = os.path.realpath(source_dir)
    for entry in sys.path:
        candidate = os.path.join(entry or os.getcwd(), "fastrnn")
        if (os.path.realpath(candidate) != source
                and os.path.isfile(os.path.join(candidate, "__init__.py"))
                and _is_built(candidate)):
            return candidate
    return None


def defer_to_installed(name, init_file):
    """Replace the package being imported by the installed copy if this folder is unbuilt.

    Returns True when ``sys.modules[name]`` now holds the installed package.  The caller's
    ``__init__`` goes on to run; its imports then resolve in the installed package.
    """
    source_dir = os.path.dirname(os.path.abspath(init_file))
    if _is_built(source_dir):
        return False
    installed = _installed_copy(source_dir)
    if installed is None:
        raise ImportError(f"fastrnn's compiled kernels are not built in {source_dir}: "
                          f"{_HOW_TO_BUILD}")
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(installed, "__init__.py"), submodule_search_locations=[installed])
    module = importlib.util.module_from_spec(spec)
    source_module = sys.modules[name]
    # Drop this helper too, so that the installed package imports its own copy.
    sys.modules.pop(__name__, None)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules[name] = source_module
        raise
    return True
