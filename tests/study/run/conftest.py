import pytest

from noisereg.study.config import parse_config
from noisereg.study.run.runner import run_study
from noisereg.study.store import Store, default_url
from tests.study.run.processes import finals, long_cells


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> dict:
    """Every cell's stored final results of :func:`long_cells` trained in one process."""
    # Workers measure no robustness (that pass runs once, after training): compare the training results.
    run_dir = tmp_path_factory.mktemp("reference")
    run_study(parse_config(long_cells("workers")), run_dir, workers=1, robustness=False)
    return finals(Store(default_url(run_dir), "workers"))
