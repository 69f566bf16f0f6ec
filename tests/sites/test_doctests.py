import doctest
import importlib

import pytest

MODULES = [
    "attach",
    "describe",
    "embeddings",
    "targets",
    "strip",
    "mixing",
    "gradients",
    "learned",
    "noisy_activations",
    "denoising",
    "noisytune",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"noisereg.sites.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_public_surface_imports():
    import noisereg.sites as sites

    assert sorted(sites.__all__) == sorted(set(sites.__all__))
    for name in sites.__all__:
        assert getattr(sites, name) is not None, name
