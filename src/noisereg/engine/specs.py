"""What the engine trains: frozen descriptions of a model, an optimizer, noise sites, replicas and data.

These are plain frozen dataclasses that validate themselves on construction, so that a bad group is
refused before any work starts. The engine itself lives in :mod:`noisereg.engine.train`.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch

from noisereg._checks import check_choice, check_int, check_real, check_type
from noisereg.engine.modules import ModuleSpec
from noisereg.engine.vocabulary import (
    HIDDEN_SITES,
    RENAMED_SITES,
    Activation,
    ClockUnit,
    Init,
    Loss,
    SiteName,
    renamed_site,
)
from noisereg.noise import Gaussian
from noisereg.noise.base import NoiseKind
from noisereg.schedules import Schedule
from noisereg.seeding import check_seed

__all__ = [
    "MLPSpec",
    "OptimSpec",
    "SiteNoise",
    "Replica",
    "Group",
    "FoldData",
    "check_folds",
    "site_kinds",
    "is_constantly_off",
]

# a hidden site's stream key: its name before the rename (see SiteNoise.stream_keys)
_STREAM_KEYS = {new: old for old, new in RENAMED_SITES.items()}


@dataclass(frozen=True)
class MLPSpec:
    """A multilayer perceptron: Linear(in, w0), act, Linear(w0, w1), act, ..., Linear(w_last, out).

    ``init``: ``"default"`` is ``torch.nn.Linear``'s own (weights and biases U(-1/√fan_in, 1/√fan_in));
    ``"he"`` draws weights from N(0, 2/fan_in) and ``"glorot"`` from U(-a, a), a = √(6/(fan_in+fan_out)),
    both with zero biases; ``"normal"`` draws weights from N(0, init_std²) with zero biases.
    ``widths`` may be empty (a linear model). ``elu`` uses alpha = 1 and ``gelu`` the exact erf form,
    as torch's defaults do.
    """

    in_features: int
    widths: tuple[int, ...]
    out_features: int
    activation: Activation = "relu"
    init: Init = "default"
    init_std: float = 0.01

    def __post_init__(self) -> None:
        check_int(self.in_features, "in_features", low=1)
        check_int(self.out_features, "out_features", low=1)
        if not isinstance(self.widths, tuple):
            raise TypeError(f"widths={self.widths!r} must be a tuple of ints >= 1")
        for i, width in enumerate(self.widths):
            check_int(width, f"widths[{i}]", low=1)
        check_choice(self.activation, "activation", get_args(Activation))
        check_choice(self.init, "init", get_args(Init))
        check_real(self.init_std, "init_std", low=0.0, low_open=True)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """(in_features, *widths, out_features)."""
        return (self.in_features, *self.widths, self.out_features)


@dataclass(frozen=True)
class OptimSpec:
    """An optimizer with torch's exact update rules (``torch.optim.SGD``/``Adam``/``AdamW``).

    ``weight_decay`` is L2 added to the gradient for ``sgd`` and ``adam`` and decoupled
    (p ← p·(1 − lr·wd)) for ``adamw``; SGD momentum has no dampening; ``nesterov`` (SGD with momentum
    only) steps along g + μ·b instead of the momentum buffer b, as ``torch.optim.SGD(nesterov=True)``.
    ``clip_grad_norm`` rescales each replica's whole gradient, noise included, by min(1, c / (‖g‖₂ + 1e-6)).
    ``sam_rho`` > 0 makes each step sharpness-aware (SAM, Foret et al. 2021): the gradient g at w, then
    the gradient at w + ρ·g/‖g‖₂ (‖g‖ over all of a replica's parameters) is the one the optimizer
    applies at w; two gradients per step.
    """

    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    clip_grad_norm: float | None = None
    sam_rho: float = 0.0

    def __post_init__(self) -> None:
        check_choice(self.name, "name", get_args(Literal["sgd", "adam", "adamw"]))
        check_real(self.sam_rho, "sam_rho", low=0.0)
        check_real(self.lr, "lr", low=0.0, low_open=True)
        check_real(self.momentum, "momentum", low=0.0, high=1.0, high_open=True)
        check_type(self.nesterov, "nesterov", bool, "True or False")
        if self.nesterov and (self.name != "sgd" or self.momentum == 0):
            raise ValueError(f"nesterov=True needs name='sgd' with a momentum > 0, got {self.name!r}, {self.momentum}")
        check_real(self.weight_decay, "weight_decay", low=0.0)
        if not (isinstance(self.betas, tuple) and len(self.betas) == 2):
            raise TypeError(f"betas={self.betas!r} must be a tuple of two floats in [0, 1)")
        for i, beta in enumerate(self.betas):
            check_real(beta, f"betas[{i}]", low=0.0)
            if beta >= 1:
                raise ValueError(f"betas[{i}]={beta!r} must be in [0, 1)")
        check_real(self.eps, "eps", low=0.0)
        if self.clip_grad_norm is not None:
            check_real(self.clip_grad_norm, "clip_grad_norm", low=0.0, low_open=True)


@dataclass(frozen=True)
class SiteNoise:
    """One noise site of a group.

    ``site``: ``"input"`` (the batch's inputs), ``"before"``/``"after"`` (a hidden layer's linear output
    before its activation / the activation's output, as :func:`noisereg.attach`'s ``where``; the earlier
    names ``"pre"``/``"post"`` still work, with a ``DeprecationWarning``), ``"weights"`` (W̃ = W + noise
    on every parameter named ``weight*``, biases left out as in :func:`noisereg.sites.attach`; drawn once per optimizer step and held for
    every sample of the minibatch; the gradient is taken at W̃ and the optimizer updates the clean W,
    as Graves 2011/2013 do; with ``batch_size = 1`` that is one draw
    per training sequence, Graves 2013's setting), ``"gradients"`` (g̃ = g + noise, added to each replica's gradient
    before clipping, as TensorFlow's ``optimize_loss`` orders them, and before the optimizer's own
    scaling, as Neelakantan et al. 2015 and optax do) or
    ``"targets"`` (the batch's targets). ``kind`` is a :mod:`noisereg.noise` config (or, for the
    class-probability rows of a classifier's targets, :class:`noisereg.sites.LabelSmoothing`,
    :class:`~noisereg.sites.LabelFlip` or :class:`~noisereg.sites.DisturbLabel`; the engine trains
    ``bce`` targets y as rows ``[1 − y, y]``);
    a schedule in its main strength is read at ``clock``: the 0-based optimizer step (``"step"``,
    the default and Neelakantan's t) or the 0-based epoch (``"epoch"``).
    ``layers`` picks hidden layers (0-based) for before/after; None means all hidden layers.
    ``sampling="projected"`` draws Gaussian noise after the activation of the last hidden layer of an MLP
    with one output through its projection (:mod:`noisereg.engine.projection`): the same
    distribution with far fewer draws; the default ``"exact"`` draws every ε.
    ``increments`` (``site="weights"`` only) puts the noise into the weights themselves instead of
    the forward: before each step ξ_t = noise(W) − W is drawn and W ← W + ξ_t (``"independent"``:
    perturbed gradient descent, the ξ add up) or W ← W + ξ_t − ξ_{t−1}, ξ_{−1} = 0
    (``"anticorrelated"``: Anti-PGD, Orvieto et al. 2022); the weights are the iterates (no clean
    copy is restored, evaluation sees them). ``"none"`` (default): W̃ = W + ξ_t in the forward only.
    """

    site: SiteName
    kind: NoiseKind
    layers: tuple[int, ...] | None = None
    clock: ClockUnit = "step"
    sampling: Literal["exact", "projected"] = "exact"
    increments: Literal["none", "independent", "anticorrelated"] = "none"

    def __post_init__(self) -> None:
        if isinstance(self.site, str) and self.site in RENAMED_SITES:
            # frozen: object.__setattr__ is how a frozen dataclass sets its own field
            object.__setattr__(self, "site", renamed_site(self.site, "SiteNoise.site"))
        check_choice(self.site, "site", get_args(SiteName))
        check_choice(self.clock, "clock", get_args(ClockUnit))
        check_choice(self.sampling, "sampling", get_args(Literal["exact", "projected"]))
        check_choice(self.increments, "increments", ("none", "independent", "anticorrelated"))
        if self.increments != "none" and self.site != "weights":
            raise ValueError(f"increments={self.increments!r} is only for site 'weights', not {self.site!r}")
        if not (callable(self.kind) and hasattr(self.kind, "with_strength")):
            raise TypeError(f"kind={self.kind!r} must be a noise config (e.g. noisereg.noise.Gaussian(std=0.1))")
        if self.layers is not None:
            if self.site not in HIDDEN_SITES:
                raise ValueError(f"layers={self.layers!r} is only for sites 'before' and 'after', not {self.site!r}")
            if not isinstance(self.layers, tuple) or not self.layers:
                raise TypeError(f"layers={self.layers!r} must be a non-empty tuple of ints >= 0, or None")
            for layer in self.layers:
                check_int(layer, "layers[]", low=0)
            if len(set(self.layers)) != len(self.layers):
                raise ValueError(f"layers={self.layers!r} repeats a layer")

    @property
    def stream_keys(self) -> tuple[str, str]:
        """The stream keys of this site (an occurrence index is appended by the group). The hidden
        sites keep the keys of their earlier names (``"pre"``, ``"post"``), so that a replica draws the
        same noise as before the rename and stored results stay reproducible."""
        layers = "all" if self.layers is None else ",".join(map(str, self.layers))
        return (_STREAM_KEYS.get(self.site, self.site), f"layers={layers}")


@dataclass(frozen=True)
class Replica:
    """One training of a group: its root seed, the fold it trains on, per-site strength overrides.

    Every random stream of the replica (initial weights, batch order, each noise site) derives from
    ``seed`` with :func:`noisereg.seeding.derive_seed`, so its results do not depend on the other
    replicas of its group. ``strengths[i]`` replaces the main strength of ``group.sites[i]``
    (``kind.with_strength``), a number or a :mod:`noisereg.schedules` schedule; empty means the kinds'
    own values.
    """

    seed: int
    fold: int = 0
    strengths: tuple[float | Schedule, ...] = ()

    def __post_init__(self) -> None:
        check_seed(self.seed)
        check_int(self.fold, "fold", low=0)
        if not isinstance(self.strengths, tuple):
            raise TypeError(f"strengths={self.strengths!r} must be a tuple of floats")
        for i, value in enumerate(self.strengths):
            if isinstance(value, bool) or not (isinstance(value, numbers.Real) or callable(value)):
                raise TypeError(f"strengths[{i}]={value!r} must be a real number or a schedule")


@dataclass(frozen=True)
class Group:
    """Replicas trained together as one batched model.

    All replicas share the model, optimizer, loss, epochs, batch size and sites; they differ in seed,
    fold and strengths. Evaluation runs after every ``eval_every``-th epoch and after the last one.
    ``patience`` (epochs, checked at evaluations) turns on early stopping on the validation loss:
    each replica keeps the weights of its best validation epoch and stops updating once that epoch
    is ``patience`` or more epochs behind; it needs validation data in every fold.
    ``eval_noise`` (optional) also evaluates every replica on a noisy copy of its test inputs, drawn
    once per replica (see :mod:`noisereg.engine.noisy_eval`); it is a callable
    ``eval_noise(x, generator=g) -> x̃``, e.g. ``noisereg.noise.Gaussian(std=0.1)``.
    """

    model: MLPSpec | ModuleSpec
    optimizer: OptimSpec
    loss: Loss
    epochs: int
    batch_size: int
    sites: tuple[SiteNoise, ...]
    replicas: tuple[Replica, ...]
    eval_every: int = 10
    patience: int | None = None
    eval_noise: Callable[..., torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, (MLPSpec, ModuleSpec)):
            raise TypeError(f"model={self.model!r} must be an MLPSpec or a ModuleSpec")
        if not isinstance(self.optimizer, OptimSpec):
            raise TypeError(f"optimizer={self.optimizer!r} must be an OptimSpec")
        check_choice(self.loss, "loss", get_args(Loss))
        if self.loss == "bce" and self.model.out_features != 1:
            raise ValueError(f"loss='bce' needs model.out_features == 1, got {self.model.out_features}")
        if self.loss == "ce" and self.model.out_features < 2:
            raise ValueError(f"loss='ce' needs model.out_features >= 2, got {self.model.out_features}")
        check_int(self.epochs, "epochs", low=1)
        check_int(self.batch_size, "batch_size", low=1)
        check_int(self.eval_every, "eval_every", low=1)
        if self.patience is not None:
            check_int(self.patience, "patience", low=1)
        if self.eval_noise is not None and not callable(self.eval_noise):
            raise TypeError(
                f"eval_noise={self.eval_noise!r} must be a callable f(x, generator=g) such as "
                "noisereg.noise.Gaussian(std=0.1), or None"
            )
        if not isinstance(self.sites, tuple) or not all(isinstance(s, SiteNoise) for s in self.sites):
            raise TypeError(f"sites={self.sites!r} must be a tuple of SiteNoise")
        hidden = len(self.model.widths) if isinstance(self.model, MLPSpec) else len(self.model.hidden)
        for i, site in enumerate(self.sites):
            if site.site in HIDDEN_SITES and hidden == 0:
                where = (
                    "model.widths"
                    if isinstance(self.model, MLPSpec)
                    else "model.hidden (the ModuleSpec's named hidden places)"
                )
                raise ValueError(f"sites[{i}].site={site.site!r} needs a hidden layer; {where} is empty")
            if site.sampling == "projected":
                _check_projected(i, site, self.model)
            for layer in site.layers or ():
                if layer >= hidden:
                    raise ValueError(f"sites[{i}].layers contains {layer}; the model has hidden layers 0..{hidden - 1}")
        if not isinstance(self.replicas, tuple) or not self.replicas:
            raise ValueError(f"replicas={self.replicas!r} must be a non-empty tuple of Replica")
        for i, replica in enumerate(self.replicas):
            if not isinstance(replica, Replica):
                raise TypeError(f"replicas[{i}]={replica!r} must be a Replica")
            if replica.strengths and len(replica.strengths) != len(self.sites):
                raise ValueError(
                    f"replicas[{i}].strengths has {len(replica.strengths)} values; "
                    f"the group has {len(self.sites)} sites (give one per site, or none)"
                )

    def stream_keys(self, index: int) -> tuple[str, str, int]:
        """Stream keys of ``sites[index]``: its site, its layers, and its occurrence among equal ones."""
        keys = self.sites[index].stream_keys
        occurrence = sum(1 for s in self.sites[:index] if s.stream_keys == keys)
        return (*keys, occurrence)


def _check_projected(i: int, site: SiteNoise, model: MLPSpec | ModuleSpec) -> None:
    if site.site != "after" or type(site.kind) is not Gaussian or site.kind.clip is not None:
        raise ValueError(f"sites[{i}].sampling='projected' needs site='after' with Gaussian noise without clip")
    hidden = len(model.widths) if isinstance(model, MLPSpec) else 0
    layers = site.layers if site.layers is not None else tuple(range(hidden))
    if hidden == 0 or model.out_features != 1 or layers != (hidden - 1,):
        raise ValueError(
            f"sites[{i}].sampling='projected' needs an MLP with one output and the noise on its last "
            f"hidden layer only (layers=({max(hidden - 1, 0)},))"
        )


@dataclass(frozen=True)
class FoldData:
    """One fold: training and test data, optional validation data (for early stopping).

    ``x_*`` are float tensors [n, in_features] (for a ModuleSpec: [n, ...], what the module takes).
    Targets: for ``bce`` floats in {0, 1} of shape [n];
    for ``ce`` integer class labels [n]; for ``mse`` floats [n] (one output) or [n, out_features].
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.x_val is None) != (self.y_val is None):
            raise ValueError("x_val and y_val must be given together")
        for part in self.parts:
            x, y = getattr(self, f"x_{part}"), getattr(self, f"y_{part}")
            if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
                raise TypeError(f"x_{part} and y_{part} must be torch tensors")
            if x.ndim < 2 or x.shape[0] == 0:
                raise ValueError(f"x_{part} must have shape [n >= 1, ...features], got {tuple(x.shape)}")
            if y.shape[0] != x.shape[0]:
                raise ValueError(f"y_{part} has {y.shape[0]} rows but x_{part} has {x.shape[0]}")

    @property
    def parts(self) -> tuple[str, ...]:
        """The data parts present: ("train", "test") and "val" when validation data is given."""
        return ("train", "test", "val") if self.x_val is not None else ("train", "test")


def site_kinds(group: Group, replica: Replica) -> list[NoiseKind]:
    """The noise kind of each site of ``group`` for ``replica`` (with its strength override)."""
    if not replica.strengths:
        return [site.kind for site in group.sites]
    return [site.kind.with_strength(v) for site, v in zip(group.sites, replica.strengths, strict=True)]


def is_constantly_off(kind: NoiseKind) -> bool:
    """True when ``kind`` has a constant strength at its identity value (it never adds noise)."""
    return isinstance(kind.strength, numbers.Real) and kind.is_off(0)


def check_folds(group: Group, folds: Sequence[FoldData]) -> None:
    """Check that ``folds`` fit ``group`` (shapes, target types, fold indices, validation data)."""
    if isinstance(folds, FoldData) or not isinstance(folds, Sequence) or not folds:
        raise TypeError(f"folds must be a non-empty sequence of FoldData, got {type(folds).__name__}")
    spec = group.model
    for i, fold in enumerate(folds):
        if not isinstance(fold, FoldData):
            raise TypeError(f"folds[{i}] must be a FoldData, got {type(fold).__name__}")
        if group.patience is not None and fold.x_val is None:
            raise ValueError(f"group.patience={group.patience} needs validation data; folds[{i}] has none")
        for part in fold.parts:
            x, y = getattr(fold, f"x_{part}"), getattr(fold, f"y_{part}")
            if isinstance(spec, MLPSpec) and (x.ndim != 2 or x.shape[1] != spec.in_features):
                raise ValueError(
                    f"folds[{i}].x_{part} has shape {tuple(x.shape)}; an MLP with in_features="
                    f"{spec.in_features} needs [n, {spec.in_features}]"
                )
            if x.shape[1:] != folds[0].x_train.shape[1:]:
                raise ValueError(
                    f"folds[{i}].x_{part} has samples of shape {tuple(x.shape[1:])}, "
                    f"folds[0].x_train has {tuple(folds[0].x_train.shape[1:])}"
                )
            if not torch.is_floating_point(x) or not bool(torch.isfinite(x).all()):
                raise ValueError(f"folds[{i}].x_{part} must be a finite floating-point tensor")
            _check_targets(f"folds[{i}].y_{part}", y, group.loss, spec.out_features)
    for i, replica in enumerate(group.replicas):
        if replica.fold >= len(folds):
            raise ValueError(f"replicas[{i}].fold={replica.fold} but only {len(folds)} folds were given")


def _check_targets(name: str, y: torch.Tensor, loss: str, out_features: int) -> None:
    if loss == "ce":
        if torch.is_floating_point(y) or y.dtype == torch.bool or y.ndim != 1:
            raise TypeError(f"{name} must be integer class labels of shape [n] for loss='ce'")
        if bool((y < 0).any()) or bool((y >= out_features).any()):
            raise ValueError(f"{name} must hold class labels in [0, {out_features})")
        return
    if not torch.is_floating_point(y) or not bool(torch.isfinite(y).all()):
        raise TypeError(f"{name} must be a finite floating-point tensor for loss={loss!r}")
    if loss == "bce":
        if y.ndim != 1 or not bool(((y == 0) | (y == 1)).all()):
            raise ValueError(f"{name} must hold 0/1 labels of shape [n] for loss='bce'")
    elif not (y.ndim == 1 and out_features == 1) and tuple(y.shape[1:]) != (out_features,):
        raise ValueError(f"{name} must have shape [n] or [n, {out_features}] for loss='mse', got {tuple(y.shape)}")
