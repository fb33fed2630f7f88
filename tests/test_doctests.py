"""The examples in the package's docstrings run and print what they show (doctest).

One case per module of the package that has examples.  A module whose import needs an optional
package that is not installed (dask) is skipped with that reason.
"""

import doctest
import importlib
import pkgutil

import pytest

import fastrnn

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def module_cases():
    cases = []
    names = ["fastrnn"] + [info.name for info in
                           pkgutil.walk_packages(fastrnn.__path__, "fastrnn.")]
    for name in names:
        if name.endswith("__main__"):     # importing it runs the command line
            continue
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            cases.append(pytest.param(name, marks=pytest.mark.skip(
                reason=f"needs {error.name}, not installed"), id=name))
            continue
        if any(test.examples for test in doctest.DocTestFinder().find(module)):
            cases.append(pytest.param(name, id=name))
    return cases


def test_the_package_has_examples():
    # The walk itself is checked: these modules are known to show examples.
    names = {case.values[0] for case in module_cases()}
    assert {"fastrnn", "fastrnn.deploy.io", "fastrnn.training.clip"} <= names


@pytest.mark.parametrize("name", module_cases())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = []
    for test in doctest.DocTestFinder().find(module):
        runner.run(test, out=report.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)
