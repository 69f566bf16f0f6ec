"""noisereg.study.run_model: a study of the user's own model (the vectorized path where it applies)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from noisereg import attach, noise, study
from noisereg.engine import vectorized_training
from noisereg.engine.loop import AttachSite
from noisereg.seeding import derive_seed, use_noise_generator
from noisereg.study.cell_models import load_cell_models
from noisereg.study.report.documents import fmt

X = torch.linspace(-2, 2, 48).reshape(24, 2)
Y = (X.sum(1) > 0).long()


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 6)
        self.act = nn.ReLU()
        self.bn = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.bn(self.act(self.fc(x))))


ARMS = {
    "none": [],
    "mixed": [
        study.site(noise.Gaussian(std=0.2), at="input"),
        study.site(noise.Gaussian(std=0.3), at="activations", select="act", where="before"),
        study.site(noise.Gaussian(std=0.05), at="weights", select="head.*"),
    ],
}
DATA = {"train": (X[:16], Y[:16]), "test": (X[16:], Y[16:])}


def _run(tmp_path: Path, **kwargs: object) -> study.StudyResult:
    settings = dict(
        model=Net,
        data=DATA,
        arms=ARMS,
        out=tmp_path / "run",
        epochs=2,
        batch_size=4,
        seeds=2,
        threads=1,
        dtype=torch.float64,
    )
    settings.update(kwargs)
    return study.run_model(**settings)  # type: ignore[arg-type]


def _plain_loop(replica_seed: int, sites: list[AttachSite]) -> dict[str, torch.Tensor]:
    """The reference: the same replica written out by hand with attach (seeding as documented)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(replica_seed, "init"))
        model = Net().double()
        torch.manual_seed(derive_seed(replica_seed, "train"))
        handles = [
            attach(model, s.noise, s.at, seed=derive_seed(replica_seed, "site", j, s.at), **dict(s.options))
            for j, s in enumerate(sites)
        ]
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        order = torch.Generator().manual_seed(derive_seed(replica_seed, "batches"))
        x, y = DATA["train"]
        x = x.double()
        for _ in range(2):
            model.train()
            perm = torch.randperm(16, generator=order)
            for start in range(0, 16, 4):
                i = perm[start : start + 4]
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[i]), y[i]).backward()
                opt.step()
        for h in handles:
            h.remove()
        return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_replica_equals_the_plain_loop_with_attach(tmp_path: Path) -> None:
    result = _run(tmp_path)
    stored = load_cell_models(tmp_path / "run" / "models", "mixed")
    for r, s in enumerate(stored.seeds):
        expected = _plain_loop(derive_seed(0, "seed", s), ARMS["mixed"])
        got = stored.state_dict(r)
        for name, value in expected.items():  # float64: only the order of reductions may differ
            torch.testing.assert_close(got[name], value, rtol=1e-12, atol=1e-12, msg=name)
    assert [a["name"] for a in result.summary["arms"]] == ["none", "mixed"]
    table = result.table()
    assert "mixed" in table and "Δ boot 95% CI" in table and "P(better)" in table
    row = next(line for line in table.splitlines() if line.startswith("mixed"))
    boot = result.summary["arms"][1]["paired"]["bootstrap"]
    assert fmt(boot["p_improvement"], 3) in row
    attrs = json.loads((tmp_path / "run" / "run.json").read_text())
    assert attrs["study"] == "run"


def test_zero_strength_is_exactly_no_noise_and_seeds_are_paired(tmp_path: Path) -> None:
    zero = {"none": [], "zero": [study.site(noise.Gaussian(std=0.0), at="activations", select="act")]}
    result = _run(tmp_path, arms=zero)
    none, z = result.summary["arms"]
    assert none["per_seed"] == z["per_seed"]
    assert z["paired"]["mean_diff"] == 0.0


def test_a_rerun_resumes_without_training_again(tmp_path: Path) -> None:
    calls = []

    def factory() -> nn.Module:
        calls.append(1)
        return Net()

    first = _run(tmp_path, model=factory)
    built = len(calls)
    second = _run(tmp_path, model=factory)
    # only the checks: every arm's sites attach (one model), whether the MLP kernels could train the arm
    # without noise on weights (one model: Net is not an nn.Sequential), one vmap trial of the arms
    # together (a base and a replica per arm)
    assert len(calls) == built + 1 + 1 + 1 + len(ARMS)
    assert second.summary["arms"] == first.summary["arms"]


def test_the_noise_generator_is_recorded_and_a_resume_under_another_is_refused(tmp_path: Path) -> None:
    from noisereg.study.store import Store, StoreError, default_url

    _run(tmp_path, seeds=1)
    with Store(default_url(tmp_path / "run"), "run") as store:
        assert store.attrs()["config"]["noise_generator"] == "philox"
    with use_noise_generator("torch"), pytest.raises(StoreError, match="differs at: noise_generator"):
        _run(tmp_path, seeds=1)


def test_grid_cells_and_report(tmp_path: Path) -> None:
    arms = {"none": [], "act": [study.site(noise.Gaussian(std=0.1), at="activations", select="act")]}
    result = _run(tmp_path, arms=arms, grid={"act": [0.1, 0.5]}, seeds=2)
    assert [a["name"] for a in result.summary["arms"]] == ["none", "act[std=0.1]", "act[std=0.5]"]
    assert result.report().is_file()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"]["paths"]["act[std=0.1]"]["path"] == "vectorized"


def _paths(result: study.StudyResult) -> dict[str, tuple[str, str]]:
    result.report()
    summary = json.loads((result.out / "summary.json").read_text())
    return {cell: (info["path"], info["why"]) for cell, info in summary["data"]["paths"].items()}


class Dropped(Net):
    """A draw in ``forward`` from a generator of the model's own: the vectorized path gives the model's
    random calls each replica's stream, not the model's own generator's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.act(self.fc(x)))
        keep = torch.bernoulli(torch.full_like(h, 0.8), generator=torch.Generator().manual_seed(0))
        return self.head(h * keep if self.training else h)


def test_the_vectorized_path_equals_the_per_replica_path_and_each_cell_says_which_ran(tmp_path: Path) -> None:
    vectorized = _run(tmp_path / "v")
    plain = _run(tmp_path / "p", vectorize=False)
    for mine, theirs in zip(vectorized.summary["arms"], plain.summary["arms"], strict=True):
        assert mine["per_seed"] == pytest.approx(theirs["per_seed"], rel=1e-12, abs=1e-12)
    v = load_cell_models(tmp_path / "v" / "run" / "models", "mixed")
    p = load_cell_models(tmp_path / "p" / "run" / "models", "mixed")
    for name, value in p.state_dict(1).items():  # float64: only the kernels' rounding differs
        torch.testing.assert_close(v.state_dict(1)[name], value, rtol=1e-12, atol=1e-12, msg=name)
    assert _paths(vectorized)["mixed"][0] == "vectorized"
    assert _paths(plain)["none"] == (
        "per-replica",
        "vectorize=False: a plain training loop per replica with noisereg.attach",
    )
    path, why = _paths(_run(tmp_path / "d", model=Dropped))["mixed"]  # draws from the model's own generator
    assert path == "per-replica" and "the model draws random numbers inside forward" in why


def test_one_trial_step_serves_the_arms_that_train_together_and_each_arm_says_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trials: list[int] = []
    real = vectorized_training.probe

    def counted(tasks):
        trials.append(len(tasks))
        return real(tasks)

    monkeypatch.setattr(vectorized_training, "probe", counted)
    resampled = [study.site(noise.Gaussian(std=0.05), at="weights", select="head.weight", resample="forward")]
    result = _run(tmp_path, arms={**ARMS, "resampled": resampled}, grid={"mixed": {"site": 0, "values": [0.1, 0.2]}})
    assert trials == [2]  # "none" and "mixed" (both grid cells) in one trial; "resampled" is refused unprobed
    paths = _paths(result)
    assert {cell: path for cell, (path, _) in paths.items()} == {
        "none": "vectorized",
        "mixed[[0].std=0.1]": "vectorized",
        "mixed[[0].std=0.2]": "vectorized",
        "resampled": "per-replica",
    }
    assert "resample='forward' runs per replica" in paths["resampled"][1]


def test_workers_train_while_a_new_store_is_set_up_with_the_same_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = _run(tmp_path / "one")
    two = _run(tmp_path / "two", workers=2)  # a new store: the workers start before it is set up
    for mine, theirs in zip(two.summary["arms"], one.summary["arms"], strict=True):
        # float64; a group split across two processes differs from one group by the kernels' rounding
        assert mine["per_seed"] == pytest.approx(theirs["per_seed"], rel=1e-12, abs=1e-12)
    # another process claimed a cell (and failed it) after the workers started: the early training
    # stops, and only this process's claim is trained and stored
    real = study.Store.claim

    def raced(store: study.Store, limit: int = 1, accept: object = None) -> list:
        monkeypatch.setattr(study.Store, "claim", real)
        with study.Store(store.url, store.study_name) as other:
            (taken,) = other.claim(1, accept=lambda key: key == "mixed")
            other.fail(taken, "another process failed it")
        return real(store, limit, accept)

    monkeypatch.setattr(study.Store, "claim", raced)
    with pytest.raises(RuntimeError, match=r"cells without a result: \['mixed'\]"):
        _run(tmp_path / "raced", workers=2)
    resumed = _run(tmp_path / "raced", workers=2)  # not a new store: trains what it claims, as before
    for mine, theirs in zip(resumed.summary["arms"], one.summary["arms"], strict=True):
        assert mine["per_seed"] == pytest.approx(theirs["per_seed"], rel=1e-12, abs=1e-12)


def test_user_fit_gets_the_noise_attached(tmp_path: Path) -> None:
    seen = []

    def fit(model: nn.Module, data: dict, seed: int) -> dict:
        from noisereg import describe

        seen.append(describe(model))
        x, y = data["test"]
        with torch.no_grad():
            loss = float(nn.functional.cross_entropy(model.eval()(x.double()), y))
        return {"test_loss": loss, "test_acc": 0.5, "train_acc": 0.5, "train_loss": loss}

    arms = {"none": [], "act": [study.site(noise.Gaussian(std=0.1), at="activations", select="act")]}
    result = _run(tmp_path, arms=arms, fit=fit)
    assert len(seen) == 4 and result.summary["arms"][1]["mean"] == 0.5
    with pytest.raises(ValueError, match="needs noisereg's loop"):
        _run(tmp_path / "g", arms={"none": [], "g": [study.site(noise.Gaussian(std=0.1), at="gradients")]}, fit=fit)


def test_kfold_over_one_data_set_and_a_custom_step(tmp_path: Path) -> None:
    steps = []

    def step(model: nn.Module, batch: tuple, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        x, y = batch
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        steps.append(1)
        return loss

    result = _run(tmp_path, data=(X, Y), folds=2, step=step, arms={"none": []})
    assert result.summary["data"]["n_test"] == [12, 12]
    assert len(steps) == 2 * 2 * 2 * 3  # seeds x folds x epochs x batches


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"arms": {"a": [study.site(noise.Gaussian(std=0.1))]}}, ValueError, "one arm without noise"),
        ({"grid": {"nope": [0.1]}}, ValueError, "grid names arm 'nope'"),
        ({"folds": 3}, ValueError, "folds=3 splits one data set"),
        ({"data": (X, Y)}, ValueError, "pass folds=k"),
        ({"epochs": 0}, ValueError, "epochs=0"),
        (
            {"arms": {"n": [], "w": [study.site(noise.Gaussian(std=0.1), at="weights", select="head")]}},
            ValueError,
            r"arms\['w'\] site 0.*close names: 'head.bias'",
        ),
        ({"model": 3}, TypeError, "model must be an nn.Module"),
        ({"loss": "hinge"}, ValueError, "loss='hinge'"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        _run(tmp_path, **kwargs)
    assert not (tmp_path / "run" / "study.db").exists()


def test_site_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="at='hidden'"):
        study.site(noise.Gaussian(std=0.1), at="hidden")
    with pytest.raises(ValueError, match="'optimizer'"):
        study.site(noise.Gaussian(std=0.1), at="gradients", optimizer=None)
    with pytest.raises(TypeError, match="noise config"):
        study.site(0.1)  # type: ignore[arg-type]


def test_a_dataset_with_a_collate_function_and_a_regression(tmp_path: Path) -> None:
    from torch.utils.data import TensorDataset

    collated = []

    def collate(items: list) -> tuple[torch.Tensor, torch.Tensor]:
        collated.append(len(items))
        return torch.stack([i[0] for i in items]), torch.stack([i[1] for i in items])

    target = X[:, :1] - 0.5 * X[:, 1:]
    model = lambda: nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    arms = {"none": [], "input": [study.site(noise.Gaussian(std=0.1), at="input")]}
    result = _run(tmp_path, model=model, data=TensorDataset(X, target), folds=2, loss="mse", collate=collate, arms=arms)
    assert result.summary["task"] == "regression" and result.summary["metric"] == "r2"
    assert collated and max(collated) <= 256
    assert all(a["n"] == 2 for a in result.summary["arms"])


def test_optunas_info_lines_are_not_printed_to_a_python_caller(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)  # Optuna's default: what a new user has
    try:
        with caplog.at_level(logging.INFO):
            _run(tmp_path, arms={"none": []}, seeds=1, epochs=1)
            _run(tmp_path, arms={"none": []}, seeds=1, epochs=1)  # a resume: "Using an existing study"
        assert optuna.logging.get_verbosity() == optuna.logging.INFO  # restored afterwards
    finally:
        optuna.logging.set_verbosity(before)
    assert "A new study created" not in capfd.readouterr().err
    assert [r.getMessage() for r in caplog.records if r.name.startswith("optuna")] == []
