"""TensorBoard event files: one run folder per cell and seed (``<out>/<cell>/seed_<s>``) with every
value of the tidy table as a scalar named by :func:`~noisereg.study.export.table.series`:
``curve/<metric>`` at each kept epoch, ``final/<metric>`` at step 0, ``cv/<metric>`` at each fold,
``cv_curve/<metric>/fold_<f>`` at each kept epoch, ``certified/certified_acc/radius_<r>`` at step 0;
and in ``<out>/<cell>/all_seeds`` the cell's ``comparison/<statistic>`` at step 0.

Scalars are written at double precision (tensor summaries of dtype float64, which TensorBoard's
scalar dashboard shows like any other); read them back with ``EventAccumulator.Tensors`` and
``size_guidance={"tensors": 0}`` (its default keeps 10 points a tag).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from noisereg.study.export.table import series

__all__ = ["run_folder", "write_tensorboard"]


def run_folder(cell: str, seed: Any) -> str:
    """The run folder of ``cell``'s seed ``seed``, relative to the export's folder (``all_seeds`` for
    a value over every seed: the cell's comparison with the baseline)."""
    run = "all_seeds" if seed is None else f"seed_{seed}"
    return f"{re.sub(r'[^A-Za-z0-9_.=-]+', '_', cell).strip('_') or 'cell'}/{run}"


def write_tensorboard(rows: list[dict[str, Any]], folder: Path, summary_writer: Any) -> None:
    """``rows`` as event files under ``folder``, written by ``summary_writer``
    (``torch.utils.tensorboard.SummaryWriter``)."""
    by_run: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_run.setdefault(run_folder(row["cell"], row["seed"]), []).append(row)
    for name, items in by_run.items():
        writer = summary_writer(log_dir=str(folder / name))
        try:
            for row in items:
                for tag, value, step in series(row, ("cell", "seed")):
                    writer.add_scalar(tag, value, global_step=step, new_style=True, double_precision=True)
        finally:
            writer.close()
