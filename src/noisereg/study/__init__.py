"""Studies: many seeds, noise settings and cross-validation in one vectorized run, with evidence.

Names load on first use (PEP 562): ``noisereg.study.run_study`` brings in torch and the engine,
``build_report`` and the configuration do not.

>>> from noisereg.study import resolve_study
>>> resolve_study("case-study").seeds
30
"""

from __future__ import annotations

from typing import Any

from noisereg._lazy import lazy_names

_PUBLIC = {
    "StudyConfig": "noisereg.study.config",
    "StudyConfigError": "noisereg.study.config",
    "load_config": "noisereg.study.config",
    "parse_config": "noisereg.study.config",
    "resolve_study": "noisereg.study.config",
    "builtin_studies": "noisereg.study.config",
    "DataError": "noisereg.study.data",
    "Store": "noisereg.study.store",
    "StoreError": "noisereg.study.store",
    "StoreUnreachable": "noisereg.study.store",
    "RunDirError": "noisereg.study.rundir",
    "run_study": "noisereg.study.run.runner",
    "enqueue_study": "noisereg.study.run.runner",
    "prepare": "noisereg.study.bridge.prepare",
    "measure_run": "noisereg.study.measure.robustness",
    "load_cell_models": "noisereg.study.cell_models",
    "run_worker": "noisereg.study.run.workers",
    "WorkerReport": "noisereg.study.run.workers",
    "SearchConfig": "noisereg.study.config",
    "build_report": "noisereg.study.report",
    "summarize": "noisereg.study.report",
    "run_model": "noisereg.study.api",
    "site": "noisereg.study.api",
    "StudyResult": "noisereg.study.api",
}

__all__ = list(_PUBLIC)


__getattr__, __dir__ = lazy_names("noisereg.study", _PUBLIC, globals())
