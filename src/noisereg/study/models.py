"""From a study's model, optimizer and training tables to the engine's specs, checked against the data.

Everything here raises :class:`~noisereg.study.config.StudyConfigError` naming the study key, before
any training: a model the engine cannot train yet (CNN, GRU/LSTM), a model or loss that does not fit
the data (features, classes, task), a hidden layer index that does not exist.
"""

from __future__ import annotations

from typing import Literal

from noisereg.engine import MLPSpec, OptimSpec
from noisereg.study.config import StudyConfig, StudyConfigError
from noisereg.study.data import Dataset

__all__ = ["loss_for", "model_spec", "optimizer_spec"]

Loss = Literal["bce", "ce", "mse"]


def _refuse(path: str, message: str) -> StudyConfigError:
    return StudyConfigError([(path, message)])


def loss_for(config: StudyConfig, data: Dataset) -> Loss:
    """The loss: ``training.loss`` or, for ``auto``, bce (2 classes), ce (more), mse (regression)."""
    loss = config.training.loss
    if loss == "auto":
        if data.task == "regression":
            return "mse"
        return "bce" if data.n_classes == 2 else "ce"
    if data.task == "regression" and loss != "mse":
        raise _refuse("training.loss", f"{loss!r} is a classification loss; {data.name!r} is a regression: use 'mse'")
    if data.task == "classification":
        if loss == "mse":
            raise _refuse("training.loss", f"'mse' is for regression; {data.name!r} has {data.n_classes} classes: use 'bce' or 'ce'")
        if loss == "bce" and data.n_classes != 2:
            raise _refuse("training.loss", f"'bce' needs 2 classes, {data.name!r} has {data.n_classes}: use 'ce'")
    return loss


def model_spec(config: StudyConfig, data: Dataset) -> MLPSpec:
    """The engine's :class:`~noisereg.engine.MLPSpec` for the study's model and data."""
    model = config.model
    features = data.x.shape[1]
    if model.kind != "mlp":
        shape = getattr(model, "input_shape", None)
        size = 1
        for s in shape or ():
            size *= s
        if shape is not None and size != features:
            raise _refuse("model.input_shape", f"{shape} holds {size} values, the data has {features} features")
        raise _refuse(
            "model.kind",
            f"{model.kind!r} models are not trained by noisereg's engine yet (it trains MLPs: "
            "noisereg.engine.MLPSpec); use kind = 'mlp' with the flattened inputs",
        )
    loss = loss_for(config, data)
    out = data.n_classes if loss == "ce" else 1
    hidden = len(model.widths)
    for i, arm in enumerate(config.arms):
        for j, site in enumerate(arm.noise):
            for layer in site.layers or ():
                if layer >= hidden:
                    raise _refuse(f"arms[{i}].noise[{j}].layers", f"hidden layer {layer} does not exist; the model has 0..{hidden - 1}")
            if site.site == "targets":
                label = site.kind in ("label_smoothing", "label_flip")
                if data.task == "regression" and label:
                    raise _refuse(f"arms[{i}].noise[{j}].kind", f"{site.kind!r} is for class labels; {data.name!r} is a regression")
                if data.task == "classification" and not label:
                    raise _refuse(
                        f"arms[{i}].noise[{j}].kind",
                        f"{site.kind!r} on class labels: use 'label_smoothing' or 'label_flip' for classifiers",
                    )
    return MLPSpec(
        in_features=features,
        widths=tuple(model.widths),
        out_features=out,
        activation=model.activation,
        init=model.init,
        init_std=model.init_std,
    )


def optimizer_spec(config: StudyConfig) -> OptimSpec:
    """The engine's :class:`~noisereg.engine.OptimSpec` for ``[optimizer]``."""
    o = config.optimizer
    return OptimSpec(
        name=o.name,
        lr=o.lr,
        momentum=o.momentum,
        weight_decay=o.weight_decay,
        betas=tuple(o.betas),
        eps=o.eps,
        clip_grad_norm=o.clip_grad_norm,
    )
