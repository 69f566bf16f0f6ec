"""Noise as ``nn.Module`` layers: the generic :class:`NoiseLayer`, Keras-compatible layers, and the switches.

A noise layer is on only in training mode and returns its input itself in eval mode or at zero
strength. :func:`noise_enabled` forces every noise of a model on (test-time noise) or off for the
duration of a ``with`` block. :func:`bind_clock` gives a model one :class:`~noisereg.schedules.Clock`
that resolves the schedules of all its noise layers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from noisereg import noise as kinds
from noisereg._checks import check_real, check_type
from noisereg._registry import NoiseRegistry
from noisereg.noise.base import NoiseKind, check_strength
from noisereg.schedules import Clock, Schedule, resolve
from noisereg.seeding import NoiseGenerator, check_seed, noise_generator
from noisereg.streams import Stream

__all__ = [
    "NoiseLayer",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "noise_enabled",
    "noise_layers",
    "bind_clock",
    "unbind_clock",
]

# Noise that sits beside a module rather than inside it (placed by noisereg.attach), the models' clocks
# and weight noise's clean orders: found by the switches below without the user's model being changed.
registry: NoiseRegistry[NoiseLayer] = NoiseRegistry()


class NoiseLayer(nn.Module):
    """Applies any noise kind during training; the identity in eval mode and at zero strength.

    Training: y = kind(x, step=t) with t the step of the layer's clock (its own count of training
    forwards unless :func:`bind_clock` gave it the model's clock) and noise drawn from the layer's own
    stream when ``seed`` is given (never touching torch's global generator: on a CPU a Philox
    :class:`~noisereg.streams.Stream` keyed by ``seed``, see :func:`noisereg.seeding.noise_generator`),
    from torch's global generator otherwise. Eval: y = x, unless :func:`noise_enabled` forces the noise on.

    Args:
        kind: a config from :mod:`noisereg.noise`, e.g. ``Gaussian(std=0.1)``; any strength may be a
            schedule.
        seed: int >= 0 for a private, reproducible stream (one generator per device, made on first use).

    ``forward(x, mask=None, documents=None)``: ``mask`` (bool, True = leave untouched) and
    ``documents`` (packed-sequence labels, for NEFTune) are passed to the kind.

    Checkpoints: the layer's noise state (schedule step, ``applied`` count, seed and the position of
    its streams) is its ``get_extra_state()``, saved by the model's ``state_dict()`` under
    ``<name>._extra_state``; loading it resumes the noise where it stopped rather than replaying it
    from the seed. A strict ``load_state_dict`` of a checkpoint made without the layer raises torch's
    "Missing key(s)" error naming that key; ``strict=False`` keeps the layer's current noise state.

    Raises:
        TypeError: ``kind`` is not a config from :mod:`noisereg.noise`, or ``seed`` is not an int.
        ValueError: ``seed`` is outside [0, 2**64 - 1]; on loading, a noise state that is not a
            NoiseLayer's or whose streams were drawn by the other generator family
            (:func:`noisereg.seeding.set_noise_generator`).

    >>> layer = NoiseLayer(kinds.Gaussian(std=0.5), seed=0)
    >>> x = torch.ones(2, 3)
    >>> bool((layer.eval()(x) == x).all())
    True
    """

    # Set by noisereg.sites.attach on the layers it places (the Handle that placed it), read by strip;
    # declared so that the type checker does not take it for a tensor or a submodule.
    _attach_handle: object

    def __init__(self, kind: NoiseKind, *, seed: int | None = None) -> None:
        super().__init__()
        if not isinstance(kind, NoiseKind):
            raise TypeError(
                f"kind must be a noise config from noisereg.noise (e.g. Gaussian(std=0.1)), got {type(kind).__name__}"
            )
        self.kind = kind
        self.seed = None if seed is None else check_seed(seed)
        self.clock: Clock | None = None
        self.forced: bool | None = None
        self.applied = 0
        self._own_step = 0
        self._generators: dict[torch.device, NoiseGenerator] = {}

    @property
    def step(self) -> int:
        """The step at which the next training forward resolves the kind's schedules."""
        return self.clock.step if self.clock is not None else self._own_step

    @property
    def active(self) -> bool:
        """Whether the next forward draws noise (training mode, or forced by noise_enabled)."""
        return self.training if self.forced is None else self.forced

    def generator(self, device: torch.device) -> NoiseGenerator | None:
        """The layer's stream on ``device`` (see :func:`noisereg.seeding.noise_generator`), made on first use."""
        if self.seed is None:
            return None
        if device not in self._generators:
            self._generators[device] = noise_generator(self.seed, device)
        return self._generators[device]

    def reseed(self, seed: int | None) -> None:
        """Restart the noise stream from ``seed`` (None: torch's global generator)."""
        self.seed = None if seed is None else check_seed(seed)
        self._generators.clear()

    def get_extra_state(self) -> dict[str, object]:
        """The noise state a checkpoint carries: ``{"step", "applied", "seed", "streams"}``."""
        return {
            "step": self.step,
            "applied": self.applied,
            "seed": self.seed,
            "streams": {
                str(device): g.state_dict() if isinstance(g, Stream) else g.get_state()
                for device, g in self._generators.items()
            },
        }

    def set_extra_state(self, state: object) -> None:
        """Resume from :meth:`get_extra_state`: the step goes to the bound clock if there is one."""
        expected = ("step", "applied", "seed", "streams")
        if not isinstance(state, dict) or any(key not in state for key in expected):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"noise layer state must be a dict with keys {expected}, got {got}")
        step = state["step"]
        if self.clock is not None:
            self.clock.step = step
        else:
            self._own_step = check_seed(step, name="step")
        self.applied = check_seed(state["applied"], name="applied")
        self.reseed(state["seed"])
        for device, saved in state["streams"].items():
            generator = self.generator(torch.device(device))
            if isinstance(generator, Stream) != isinstance(saved, dict):
                drew = "noisereg's Philox streams" if isinstance(saved, dict) else "torch's generator"
                raise ValueError(
                    f"the checkpoint's noise on {device} was drawn by {drew}, this layer draws with the "
                    "other: choose the same with noisereg.seeding.set_noise_generator before loading"
                )
            if generator is None:
                raise ValueError(
                    f"the checkpoint holds noise streams ({device}) but no seed: it is not a NoiseLayer's state"
                )
            if isinstance(generator, Stream):
                generator.load_state_dict(saved)
            else:
                generator.set_state(saved)

    def _advance_eager(self) -> int:
        """The step of this training forward, the layer's own count moved on (``_advance`` outside
        compiled code: the vectorized engine calls it for every replica at every step, where torch's
        compiler-disable wrapper cost more than the count)."""
        step = self.step
        if self.training and self.clock is None:
            self._own_step += 1
        return step

    def _count_eager(self) -> None:
        """One more forward with noise applied (``_count`` outside compiled code)."""
        self.applied += 1

    @torch.compiler.disable
    def _advance(self) -> int:
        # Counters are plain Python state: kept out of compiled graphs so they never cause recompiles.
        return self._advance_eager()

    @torch.compiler.disable
    def _count(self) -> None:
        self._count_eager()

    def forward(self, x: Tensor, mask: Tensor | None = None, documents: Tensor | None = None) -> Tensor:
        if not self.active:
            return x
        step = self._advance()
        if self.kind.is_off(step):
            return x
        self._count()
        return self.kind(x, step=step, generator=self.generator(x.device), mask=mask, documents=documents)

    def current_strength(self) -> object:
        """The kind's main strength at the current step (a number unless it is a tensor)."""
        return resolve(self.kind.strength, self.step)

    def extra_repr(self) -> str:
        parts = [repr(self.kind)]
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        if self.forced is not None:
            parts.append(f"forced={'on' if self.forced else 'off'}")
        return ", ".join(parts)


def _keras_rate(rate: object) -> float:
    return check_real(rate, "rate", low=0.0, high=1.0, high_open=True)


class GaussianNoise(NoiseLayer):
    """Keras-compatible ``GaussianNoise(stddev, seed)``: adds N(0, stddev²) in training only.

    Unlike Keras 3, a ``stddev`` above 1 is accepted (inputs need not be normalized), and ``stddev``
    may be a schedule. Training: y = x + stddev·ε, ε ~ N(0, I); eval: y = x.

    Args:
        stddev: a finite number >= 0 or a schedule.
        seed: int >= 0 for a private, reproducible stream (see :class:`NoiseLayer`).

    Raises:
        TypeError, ValueError: ``stddev`` or ``seed`` out of range, naming it.

    >>> layer = GaussianNoise(0.1, seed=0)
    >>> layer(torch.zeros(2, 3)).shape, bool((layer.eval()(torch.ones(3)) == 1).all())
    (torch.Size([2, 3]), True)
    """

    def __init__(self, stddev: float | Schedule, seed: int | None = None) -> None:
        if not callable(stddev):
            check_strength(stddev, name="stddev", x=torch.empty(0))
        super().__init__(kinds.Gaussian(std=stddev), seed=seed)


class GaussianDropout(NoiseLayer):
    """Keras-compatible ``GaussianDropout(rate, seed)``: multiplies by N(1, rate/(1−rate)) in training.

    Args:
        rate: a number in [0, 1) or a schedule.
        seed: int >= 0 for a private, reproducible stream (see :class:`NoiseLayer`).

    Raises:
        TypeError, ValueError: ``rate`` or ``seed`` out of range, naming it.

    >>> GaussianDropout(0.2, seed=0)(torch.ones(4)).shape
    torch.Size([4])
    """

    def __init__(self, rate: float | Schedule, seed: int | None = None) -> None:
        if not callable(rate):
            _keras_rate(rate)
        super().__init__(kinds.GaussianDropoutNoise(rate=rate), seed=seed)


class AlphaDropout(NoiseLayer):
    """Keras-compatible ``AlphaDropout(rate, noise_shape=None, seed=None)`` for SELU networks.

    Training: dropped positions are set to SELU's negative saturation α′ and the result is scaled and
    shifted so that mean and variance are kept (:func:`noisereg.noise.alpha_dropout`); eval: y = x.

    Args:
        rate: a number in [0, 1) or a schedule.
        noise_shape: the shape of the drop mask (dimensions of 1 are shared), default the input's.
        seed: int >= 0 for a private, reproducible stream (see :class:`NoiseLayer`).

    Raises:
        TypeError, ValueError: ``rate`` or ``seed`` out of range, naming it.

    >>> AlphaDropout(0.1, seed=0).eval()(torch.ones(3))
    tensor([1., 1., 1.])
    """

    def __init__(
        self, rate: float | Schedule, noise_shape: tuple[int, ...] | None = None, seed: int | None = None
    ) -> None:
        if not callable(rate):
            _keras_rate(rate)
        shape = None if noise_shape is None else tuple(int(d) for d in noise_shape)
        super().__init__(kinds.AlphaDropoutNoise(rate=rate, noise_shape=shape), seed=seed)


def noise_layers(model: nn.Module) -> list[NoiseLayer]:
    """Every noise layer of ``model``: those among its modules and those attached beside them.

    Args:
        model: any ``nn.Module``.

    Returns:
        The layers, in the order of ``model.modules()`` (noise beside a module after the module's own).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    >>> noise_layers(nn.Sequential(nn.Linear(2, 2), GaussianNoise(0.1)))
    [GaussianNoise(Gaussian(std=0.1, clip=None))]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    found: list[NoiseLayer] = []
    for module in model.modules():
        if isinstance(module, NoiseLayer):
            found.append(module)
        found.extend(registry.beside(module))
    return found


@contextlib.contextmanager
def noise_enabled(model: nn.Module, enabled: bool) -> Iterator[list[NoiseLayer]]:
    """Force every noise of ``model`` on (test-time noise, even in eval mode) or off; restore on exit.

    >>> model = nn.Sequential(GaussianNoise(0.1, seed=0), nn.Linear(2, 1)).eval()
    >>> with noise_enabled(model, True):
    ...     noisy = model(torch.zeros(1, 2))

    Args:
        model: the model whose noise is switched.
        enabled: True forces the noise on, False off.

    Yields:
        The noise layers it switched.

    Raises:
        TypeError: ``enabled`` is not a bool, or ``model`` not an ``nn.Module``. ValueError: the model
            has no noise (a switch that finds nothing to switch usually means it was never attached).
    """
    check_type(enabled, "enabled", bool, "True or False")
    layers = noise_layers(model)
    if not layers:
        raise ValueError("noise_enabled found no noise in the model: add a noisereg layer or use noisereg.attach")
    previous = [layer.forced for layer in layers]
    for layer in layers:
        layer.forced = enabled
    try:
        yield layers
    finally:
        for layer, state in zip(layers, previous, strict=True):
            layer.forced = state


def bind_clock(model: nn.Module, clock: Clock | None = None) -> Clock:
    """Give every noise layer of ``model`` one clock, advanced once per training-mode forward.

    Binding again replaces the previous clock of the model; layers added later are bound by calling
    it again. A clock with ``auto=False`` is never advanced by the model: drive it with
    ``clock.tick()`` or ``clock.step = n``.

    Args:
        model: the model whose noise layers share the clock.
        clock: the clock to bind; default the model's current clock, else a new ``Clock()``.

    Returns:
        The bound clock.

    Raises:
        TypeError: ``model`` is not an ``nn.Module`` or ``clock`` not a :class:`~noisereg.schedules.Clock`.

    >>> model = nn.Sequential(GaussianNoise(0.1, seed=0))
    >>> clock = bind_clock(model)
    >>> _ = model(torch.zeros(2)); _ = model(torch.zeros(2))
    >>> clock.step
    2
    >>> unbind_clock(model)
    """
    layers = noise_layers(model)
    if clock is None:
        clock = registry.clock(model)
        clock = Clock() if clock is None else clock
    if not isinstance(clock, Clock):
        raise TypeError(f"clock must be a noisereg.Clock, got {type(clock).__name__}")
    registry.unbind_clock(model)

    def tick(module: nn.Module, args: object, output: object) -> None:
        if module.training and clock.auto:
            clock.tick()

    handle = model.register_forward_hook(torch.compiler.disable(tick))
    registry.bind_clock(model, clock, handle)
    for layer in layers:
        layer.clock = clock
    return clock


def unbind_clock(model: nn.Module) -> None:
    """Remove the clock :func:`bind_clock` gave ``model``; its layers count their own steps again.

    Args:
        model: the model (nothing happens to a model without a clock).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.

    >>> model = nn.Sequential(GaussianNoise(0.1))
    >>> _ = bind_clock(model); unbind_clock(model)
    >>> model[0].clock is None
    True
    """
    registry.unbind_clock(model)
    for layer in noise_layers(model):
        layer.clock = None
