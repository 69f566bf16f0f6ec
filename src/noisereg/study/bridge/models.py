"""From a study's model, optimizer and training tables to the engine's specs, checked against the data.

An MLP becomes the engine's hand-written :class:`~noisereg.engine.MLPSpec`, and so does a linear model
(an MLPSpec without hidden layers); a CNN or GRU/LSTM a
:class:`~noisereg.engine.ModuleSpec` over :mod:`noisereg.study.bridge.networks`. Everything here raises
:class:`~noisereg.study.config.StudyConfigError` naming the study key, before any training: a model or
loss that does not fit the data (features, classes, task, input shape), a hidden layer index that does
not exist.

Hidden-layer (``before``/``after``) noise on a CNN goes on each convolution's output (before) or its
activation's output (after), then the hidden Linear's; hidden layers are numbered in that order. On a
GRU/LSTM there is one hidden layer, the recurrent output sequence (its gates run inside torch's
kernel): ``before`` and ``after`` both put noise on it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from noisereg.engine import MLPSpec, ModuleSpec, OptimSpec
from noisereg.engine.vocabulary import HIDDEN_SITES, Loss
from noisereg.noise.kinds import KINDS
from noisereg.study.bridge.networks import RecurrentClassifier, SmallCNN, make_cnn, make_recurrent
from noisereg.study.config import StudyConfig, StudyConfigError
from noisereg.study.config.noise import STUDY_KINDS
from noisereg.study.data import Dataset

__all__ = ["loss_for", "model_spec", "optimizer_spec"]


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
            raise _refuse(
                "training.loss",
                f"'mse' is for regression; {data.name!r} has {data.n_classes} classes: use 'bce' or 'ce'",
            )
        if loss == "bce" and data.n_classes != 2:
            raise _refuse("training.loss", f"'bce' needs 2 classes, {data.name!r} has {data.n_classes}: use 'ce'")
    return loss


def model_spec(config: StudyConfig, data: Dataset) -> MLPSpec | ModuleSpec:
    """The engine's model spec for the study's model and data."""
    model = config.model
    features = data.x.shape[1]
    loss = loss_for(config, data)
    out = data.n_classes if loss == "ce" else 1
    if model.family == "linear":
        _refuse_hidden_sites(
            config, "a 'linear' model has no hidden layer; it takes input, gradients and targets noise"
        )
        _check_targets(config, data)
        return MLPSpec(in_features=features, widths=(), out_features=out, init=model.init, init_std=model.init_std)
    if model.family != "mlp":
        size = 1
        for s in model.input_shape:
            size *= s
        if size != features:
            raise _refuse(
                "model.input_shape", f"{model.input_shape} holds {size} values, the data has {features} features"
            )
        _check_targets(config, data)
        factory: Callable[[], SmallCNN | RecurrentClassifier]
        if model.family == "cnn":
            factory = functools.partial(
                make_cnn,
                tuple(model.input_shape),
                tuple(model.channels),
                model.hidden,
                out,
                model.activation,
                model.init,
            )
        else:
            factory = functools.partial(
                make_recurrent, model.family, tuple(model.input_shape), model.hidden, model.layers, out, model.unroll
            )
        places = factory().hidden_places()
        _check_layers(config, len(places))
        return ModuleSpec(factory=factory, out_features=out, name=model.family, hidden=places)
    _check_layers(config, len(model.widths))
    _check_targets(config, data)
    return MLPSpec(
        in_features=features,
        widths=tuple(model.widths),
        out_features=out,
        activation=model.activation,
        init=model.init,
        init_std=model.init_std,
    )


def _refuse_hidden_sites(config: StudyConfig, why: str) -> None:
    for i, arm in enumerate(config.arms):
        for j, site in enumerate(arm.noise):
            if site.site in HIDDEN_SITES:
                raise _refuse(
                    f"arms[{i}].noise[{j}].at",
                    f"at = 'activations' (hidden-layer) noise needs a model with hidden layers; {why}",
                )


def _check_layers(config: StudyConfig, hidden: int) -> None:
    for i, arm in enumerate(config.arms):
        for j, site in enumerate(arm.noise):
            for layer in site.layers or ():
                if layer >= hidden:
                    raise _refuse(
                        f"arms[{i}].noise[{j}].select",
                        f"hidden layer {layer} does not exist; the model has 0..{hidden - 1}",
                    )


def _check_targets(config: StudyConfig, data: Dataset) -> None:
    for i, arm in enumerate(config.arms):
        for j, site in enumerate(arm.noise):
            if site.site == "targets":
                label = KINDS[site.kind].labels
                if data.task == "regression" and label:
                    raise _refuse(
                        f"arms[{i}].noise[{j}].kind",
                        f"{site.kind!r} is for class labels; {data.name!r} is a regression",
                    )
                if data.task == "classification" and not label:
                    raise _refuse(
                        f"arms[{i}].noise[{j}].kind",
                        f"{site.kind!r} on class labels: use {_label_kinds()} for classifiers",
                    )


def _label_kinds() -> str:
    names = [repr(name) for name, kind in STUDY_KINDS.items() if kind.labels]
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def optimizer_spec(config: StudyConfig) -> OptimSpec:
    """The engine's :class:`~noisereg.engine.OptimSpec` for ``[optimizer]``: the same keys, one to one."""
    return OptimSpec(**config.optimizer.model_dump())
