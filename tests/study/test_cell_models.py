"""Stored models: one file per cell, read back with torch's safe loader only."""

from __future__ import annotations

import pytest
import torch

from noisereg.study.cell_models import (
    FORMAT,
    load_cell_models,
    model_path,
    save_cell_models,
)


def _state(count: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"0.weight": torch.randn(count, 4, 2, generator=g), "0.bias": torch.randn(count, 4, generator=g)}


def test_round_trip_through_the_weights_only_loader(tmp_path) -> None:
    state = _state(3)
    path = save_cell_models(tmp_path, "grid[std=0.1]", '{"family": "mlp"}', [0, 1, 2], [0, 0, 0], state)
    assert path == model_path(tmp_path, "grid[std=0.1]") and path.parent == tmp_path
    raw = torch.load(path, weights_only=True)  # plain containers, strings, ints and tensors only
    assert raw["format"] == FORMAT and raw["seeds"] == [0, 1, 2]
    models = load_cell_models(tmp_path, "grid[std=0.1]")
    assert (models.cell, models.model, models.seeds, models.folds) == (
        "grid[std=0.1]",
        '{"family": "mlp"}',
        (0, 1, 2),
        (0, 0, 0),
    )
    for r in range(3):
        one = models.state_dict(r)
        assert set(one) == set(state) and all(torch.equal(one[k], state[k][r]) for k in state)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_file_names_are_safe_and_distinct_per_cell(tmp_path) -> None:
    names = {model_path(tmp_path, key).name for key in ("a b", "a_b", "a/b", "../x", "grid[std=0.1]")}
    assert len(names) == 5 and all("/" not in n and not n.startswith(".") for n in names)


def test_bad_files_and_arguments_are_refused(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no stored models for cell 'none'"):
        load_cell_models(tmp_path, "none")
    with pytest.raises(ValueError, match="2 seeds, 2 folds and stacked weights"):
        save_cell_models(tmp_path, "none", "{}", [0, 1], [0, 0], _state(3))
    torch.save({"format": "other"}, model_path(tmp_path, "none"))
    with pytest.raises(ValueError, match="is not a noisereg.models/1 file of cell 'none'"):
        load_cell_models(tmp_path, "none")
    save_cell_models(tmp_path, "none", "{}", [0], [0], _state(1))
    with pytest.raises(ValueError, match=r"r=1 must be an int >= 0 and <= 0"):
        load_cell_models(tmp_path, "none").state_dict(1)
