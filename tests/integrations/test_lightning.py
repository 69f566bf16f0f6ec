"""NoiseCallback with a real Lightning Trainer on CPU: on in fit, off in validate/predict, gone after,
clean checkpoints, and a resumed fit that equals an uninterrupted one."""

from __future__ import annotations

import csv
import warnings

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from noisereg import describe, noise_layers
from noisereg.integrations import Attach, UnusedNoiseWarning
from noisereg.integrations.lightning import NoiseCallback
from noisereg.integrations.spec import metric_name
from noisereg.noise import Gaussian
from noisereg.schedules import Linear
from noisereg.sites import annealed_gaussian

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning", "ignore::lightning.fabric.utilities.warnings.PossibleUserWarning"
)


class Regressor(LightningModule):
    def __init__(self, fail_at: int | None = None, *, call_net: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))
        self.fail_at = fail_at
        self.call_net = call_net  # training_step calls self.net(x), the trap for input noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        if self.fail_at is not None and self.global_step == self.fail_at:
            raise RuntimeError("stop here")
        x, y = batch
        return nn.functional.mse_loss(self.net(x) if self.call_net else self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, generator=g)
    return DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=4, shuffle=False)


def _callback(seed: int = 0) -> NoiseCallback:
    return NoiseCallback(
        Attach(Gaussian(std=Linear(0.5, 0.1, steps=6)), at="activations", select=nn.ReLU),
        Attach(Gaussian(std=0.05), at="weights"),
        Attach(annealed_gaussian(0.01), at="gradients"),
        seed=seed,
    )


def _trainer(tmp_path, callbacks, **options) -> Trainer:
    settings = dict(
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    settings.update(options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Trainer(default_root_dir=tmp_path, callbacks=callbacks, **settings)


class Probe(Callback):
    """Records the noise counters around training and validation batches."""

    def __init__(self, noise: NoiseCallback) -> None:
        self.noise = noise
        self.train: list[int] = []
        self.validation: list[tuple[int, int]] = []

    def _applied(self) -> int:
        return sum(layer.applied for layer in self.noise.layers)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.train.append(self._applied())

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._before = self._applied()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.validation.append((self._before, self._applied()))


def test_noise_on_in_fit_off_in_validation_and_predict_gone_after(tmp_path):
    model = Regressor()
    noise = _callback()
    probe = Probe(noise)
    trainer = _trainer(tmp_path, [noise, probe], max_steps=6)
    trainer.fit(model, _loader(), _loader())
    # per step: the activation noise, the two weights' noise and the gradient noise, once each
    assert probe.train == [4 * (i + 1) for i in range(6)]
    assert probe.validation and all(before == after for before, after in probe.validation)
    assert noise_layers(model) == [] and len(describe(model)) == 0
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert not trainer.optimizers[0]._optimizer_step_pre_hooks
    (predicted,) = _trainer(tmp_path, [noise]).predict(model, DataLoader(TensorDataset(torch.ones(2, 3)), batch_size=2))
    assert noise_layers(model) == []
    with torch.no_grad():
        assert torch.equal(predicted, model.eval()(torch.ones(2, 3)))


def test_strengths_are_logged_per_step(tmp_path):
    model = Regressor()
    logger = CSVLogger(tmp_path, name="log")
    trainer = _trainer(tmp_path, [_callback()], max_steps=6, logger=logger, log_every_n_steps=1)
    trainer.fit(model, _loader())
    with open(logger.log_dir + "/metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("noise/activations_after_net.1")]
    logged = {int(r["step"]): float(r["noise/activations_after_net.1"]) for r in rows}
    schedule = Linear(0.5, 0.1, steps=6)
    assert logged == {step: pytest.approx(schedule(step), rel=1e-6) for step in range(6)}


def test_checkpoints_hold_clean_weights(tmp_path):
    model = Regressor()
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    trainer = _trainer(tmp_path, [_callback(), checkpoints], max_steps=4, enable_checkpointing=True)
    trainer.fit(model, _loader())
    saved = sorted((tmp_path / "ckpt").glob("*.ckpt"))
    assert saved
    for path in saved:
        state = torch.load(path, weights_only=False)["state_dict"]
        Regressor().load_state_dict(state, strict=True)


def _fit(tmp_path, epochs: int, *, ckpt_path=None, callback=None):
    model = Regressor()
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = _trainer(tmp_path, [callback or _callback(), checkpoints], max_epochs=epochs, enable_checkpointing=True)
    trainer.fit(model, _loader(), ckpt_path=ckpt_path)
    return model


def test_a_resumed_fit_equals_an_uninterrupted_one(tmp_path):
    whole = _fit(tmp_path / "whole", 2)
    _fit(tmp_path / "parts", 1)
    last = tmp_path / "parts" / "ckpt" / "last.ckpt"
    resumed = _fit(tmp_path / "resumed", 2, ckpt_path=last)
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    # The check can fail: resuming without the callback's streams gives other noise, other weights.
    checkpoint = torch.load(last, weights_only=False)
    checkpoint["callbacks"] = {}
    torch.save(checkpoint, tmp_path / "no_streams.ckpt")
    fresh = _fit(tmp_path / "fresh", 2, ckpt_path=tmp_path / "no_streams.ckpt")
    assert not all(torch.equal(a, b) for a, b in zip(whole.parameters(), fresh.parameters(), strict=True))


def test_resuming_with_another_seed_is_refused(tmp_path):
    _fit(tmp_path / "parts", 1)
    with pytest.raises(ValueError, match="resume with the same seed"):
        _fit(tmp_path / "other", 2, ckpt_path=tmp_path / "parts" / "ckpt" / "last.ckpt", callback=_callback(seed=1))


def test_noise_is_removed_after_an_exception_and_the_callback_serves_again(tmp_path):
    model = Regressor(fail_at=2)
    noise = _callback()
    with pytest.raises(RuntimeError, match="stop here"):
        _trainer(tmp_path, [noise], max_steps=6).fit(model, _loader())
    assert noise_layers(model) == [] and noise.handles == []
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    model.fail_at = None
    probe = Probe(noise)
    _trainer(tmp_path, [noise, probe], max_steps=2).fit(model, _loader())
    assert probe.train == [4, 8] and noise_layers(model) == []


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one"):
        NoiseCallback()
    with pytest.raises(TypeError, match="Attach"):
        NoiseCallback(Gaussian(std=0.1))
    with pytest.raises(ValueError, match="must be one of"):
        Attach(Gaussian(std=0.1), at="everywhere")


def _unused(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, UnusedNoiseWarning)]


def test_input_noise_that_training_step_bypasses_is_a_warning_naming_the_cause(tmp_path):
    noise = NoiseCallback(Attach(Gaussian(std=0.1), at="input"), Attach(Gaussian(std=0.1), at="weights"), seed=0)
    model = Regressor(call_net=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer(tmp_path, [noise], max_steps=2).fit(model, _loader())  # stopped inside the first epoch
    (message,) = _unused(caught)  # the weight noise was reached: one warning, for the input
    assert message.startswith("noise at input before the model was attached but never applied during an epoch")
    assert "training_step called a submodule (e.g. self.model(x)) rather than self(x)" in message


@pytest.mark.parametrize(
    "setting",
    ["self(x)", "zero strength"],
)
def test_no_warning_when_the_noise_is_reached_or_off(tmp_path, setting):
    std = 0.0 if setting == "zero strength" else 0.1
    model = Regressor(call_net=setting == "zero strength")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer(tmp_path, [NoiseCallback(Attach(Gaussian(std=std), at="input"), seed=0)], max_steps=3).fit(
            model, _loader()
        )
    assert _unused(caught) == []


def test_logged_names_reach_mlflow_unchanged(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a file store: no database to migrate
    uri = f"file:{tmp_path / 'mlruns'}"
    logger = MLFlowLogger(experiment_name="noise", tracking_uri=uri)
    noise = _callback()
    names: list[str] = []

    class Names(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            names[:] = [metric_name(e.site, e.where) for e in describe(pl_module)]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer(tmp_path, [noise, Names()], max_steps=2, logger=logger, log_every_n_steps=1).fit(
            Regressor(), _loader()
        )
    assert not [w for w in caught if "Replacing" in str(w.message)]  # Lightning renames what MLflow refuses
    logged = {key for key in MlflowClient(uri).get_run(logger.run_id).data.metrics if key.startswith("noise/")}
    assert "noise/activations_after_net.1" in logged
    assert logged == set(names) and len(names) == 4  # activations, two weights, gradients
