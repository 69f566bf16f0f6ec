import pytest

from noisereg.study.config import parse_config
from noisereg.study.run.runner import run_study
from tests.study.run.processes import long_cells, table


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> list[dict]:
    """The result table of :func:`long_cells` trained in one process."""
    # Workers measure no robustness (that pass runs once, after training): compare the training results.
    run = run_study(parse_config(long_cells("workers")), tmp_path_factory.mktemp("reference"), workers=1, robustness=False)
    return table(run)
