import doctest
import importlib

import pytest

from noisereg.integrations import require


def test_a_missing_framework_names_the_extra():
    with pytest.raises(ImportError, match=r'pip install "noisereg\[lightning\]"'):
        require("noisereg_no_such_framework", "lightning")


@pytest.mark.parametrize("name", ["spec", "lightning", "transformers", "vision"])
def test_docstring_examples_run(name):
    module = importlib.import_module(f"noisereg.integrations.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
