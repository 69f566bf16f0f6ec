"""Label flips: each label moves, with a stated probability, to a class drawn from a pattern.

:func:`flip_labels` (symmetric, pair, uniform, a mapping such as :data:`PATRINI_MNIST`, or a
destination matrix), :func:`disturb_labels` (DisturbLabel, the uniform pattern) and
:func:`transition_matrix` (the noise model T for loss correction). Pure tensor functions: new
tensors out, keyword-only ``generator``.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Literal, cast

import torch
from torch import Tensor

from noisereg._checks import check_int
from noisereg.noise.base import check_generator, check_strength, is_identity, torch_generator
from noisereg.seeding import NoiseGenerator
from noisereg.sites.labels import check_ids, class_count

__all__ = ["PATRINI_MNIST", "Pattern", "check_pattern", "transition_matrix", "flip_labels", "disturb_labels"]

Pattern = Literal["symmetric", "pair", "uniform"] | Mapping[int, int] | Tensor

#: Patrini et al. 2017's asymmetric noise for MNIST: 2→7, 3→8, 5↔6, 7→1 (other digits never flip).
PATRINI_MNIST: Mapping[int, int] = types.MappingProxyType({2: 7, 3: 8, 5: 6, 6: 5, 7: 1})

_PATTERNS = ("symmetric", "pair", "uniform")


def _pattern_matrix(pattern: Pattern, classes: int, device: torch.device) -> Tensor:
    """The destination distribution D of a flipped label: row c is where a flipped c goes."""
    eye = torch.eye(classes, device=device)
    if isinstance(pattern, str):
        if pattern == "symmetric":
            if classes < 2:
                raise ValueError("pattern='symmetric' needs at least 2 classes")
            return (1.0 - eye) / (classes - 1)
        if pattern == "uniform":
            return torch.full((classes, classes), 1.0 / classes, device=device)
        return eye.roll(1, dims=1)
    if isinstance(pattern, Tensor):
        # A row of zeros means "never flips": the flipped label is the label itself.
        matrix = pattern.to(device=device, dtype=torch.float32)
        return matrix + torch.diag((matrix.sum(dim=1) == 0).to(matrix.dtype))
    matrix = eye.clone()
    for source, target in pattern.items():
        matrix[source] = eye[target]
    return matrix


def check_pattern(pattern: object, classes: int | None) -> Pattern:
    """Validate a flip pattern: a name, a {source: target} mapping or a [C, C] destination matrix."""
    if isinstance(pattern, str):
        if pattern not in _PATTERNS:
            raise ValueError(f"{pattern=} must be one of {_PATTERNS}, a mapping or a [C, C] tensor")
        return cast(Pattern, pattern)
    if isinstance(pattern, Tensor):
        ok = pattern.dim() == 2 and pattern.shape[0] == pattern.shape[1] and pattern.is_floating_point()
        if not ok or (classes is not None and pattern.shape[0] != classes):
            shape = list(pattern.shape)
            raise ValueError(f"pattern must be a float [C, C] matrix with C={classes}, got {shape}")
        sums = pattern.sum(dim=1)
        ones = (sums - 1.0).abs() < 1e-5
        if not bool((pattern >= 0).all() & (ones | (sums == 0)).all()):
            raise ValueError("pattern rows must be probabilities summing to 1 (or all 0: never flip)")
        return pattern
    if isinstance(pattern, (Mapping, tuple, list)):
        try:
            pairs = dict(pattern)
        except (TypeError, ValueError):
            raise TypeError(f"{pattern=} must be a mapping or a sequence of (source, target) pairs") from None
        for k, v in pairs.items():
            for name, c in (("source", k), ("target", v)):
                check_int(c, f"pattern {name} class", low=0, high=None if classes is None else classes - 1)
        return types.MappingProxyType(pairs)
    raise TypeError(
        f"pattern must be a str, a mapping, (source, target) pairs or a tensor, got {type(pattern).__name__}"
    )


def transition_matrix(num_classes: int, rate: float, pattern: Pattern = "symmetric") -> Tensor:
    """T[i, j] = P(noisy label j | clean label i) for :func:`flip_labels`: T = (1 − rate)·I + rate·D.

    D is the pattern's destination distribution; a class that a mapping does not name never flips.
    Use it for loss correction or to compute the expected realized flip rate 1 − Σ_i p_i T[i, i].

    Args:
        num_classes: C >= 2.
        rate: the flip probability in [0, 1].
        pattern: as :func:`flip_labels`.

    Returns:
        The [C, C] float matrix T; its rows sum to 1.

    Raises:
        TypeError, ValueError: ``num_classes``, ``rate`` or ``pattern`` out of range, naming it.

    >>> transition_matrix(2, 0.2)
    tensor([[0.8000, 0.2000],
            [0.2000, 0.8000]])
    """
    classes = check_int(num_classes, "num_classes", low=1)
    strength = check_strength(rate, name="rate", x=torch.empty(0), high=1.0)
    dest = _pattern_matrix(check_pattern(pattern, classes), classes, torch.device("cpu"))
    return (1.0 - strength) * torch.eye(classes) + strength * dest


def _draw_destinations(hard: Tensor, classes: int, pattern: Pattern, generator: torch.Generator | None) -> Tensor:
    shape, device = hard.shape, hard.device
    if pattern == "symmetric":
        other = torch.randint(0, classes - 1, shape, generator=generator, device=device)
        return other + (other >= hard).to(other.dtype)
    if pattern == "uniform":
        return torch.randint(0, classes, shape, generator=generator, device=device)
    dest = _pattern_matrix(pattern, classes, device)
    if not isinstance(pattern, Tensor):
        return dest.argmax(dim=1)[hard]
    rows = dest[hard.reshape(-1)]
    return torch.multinomial(rows, 1, generator=generator).reshape(shape) if rows.numel() else hard


def flip_labels(
    y: Tensor,
    rate: float | Tensor,
    *,
    num_classes: int | None = None,
    pattern: Pattern = "symmetric",
    ignore_index: int | None = -100,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """Label noise: each label is flipped with probability ``rate`` to a class drawn from ``pattern``.

    P(flip) = rate exactly (one uniform draw per label), so the realized rate is the stated one in
    expectation. Where a flipped label goes:

    - ``"symmetric"`` (default): uniformly to one of the C − 1 other classes (rate/(C − 1) each);
    - ``"pair"``: c → (c + 1) mod C;
    - ``"uniform"``: uniformly over all C classes, itself included (DisturbLabel);
    - a mapping ``{source: target}``, e.g. :data:`PATRINI_MNIST`; unnamed classes never flip;
    - a [C, C] tensor D: row c is the distribution of a flipped c (a zero row: never flips).

    Integer ids come back as ids of the same dtype; positions equal to ``ignore_index`` are kept.
    Soft targets come back as soft targets: a flip from the row's argmax a to b swaps columns a and b,
    so one-hot rows become the one-hot of b and smoothed rows stay smoothed.

    Paper: Patrini et al. 2017 (asymmetric maps); the flip rate is exact unlike some implementations.

    Args:
        y: class ids ``[batch, ...]`` or soft targets ``[batch, ..., C]``.
        rate: the flip probability in [0, 1]; a float or a tensor of shape [batch].
        num_classes: C, required with class ids.
        pattern: where a flipped label goes (above).
        ignore_index: a label left as it is (None: none).
        generator: a noisereg Stream (CPU) or torch.Generator; None: torch's global one.

    Returns:
        Noisy targets of y's shape and dtype, a new tensor.

    Raises:
        ValueError: ids outside [0, C), a rate outside [0, 1] or a malformed pattern.

    >>> flip_labels(torch.tensor([0, 1, 2]), 1.0, num_classes=3, pattern="pair").tolist()
    [1, 2, 0]
    """
    classes = class_count(y, num_classes)
    pattern = check_pattern(pattern, classes)
    soft_input = y.is_floating_point()
    if not soft_input:
        check_ids(y, classes, ignore_index)
    hard = y.argmax(dim=-1) if soft_input else y.long()
    ignored = None if soft_input or ignore_index is None else hard == ignore_index
    if ignored is not None:
        hard = hard.masked_fill(ignored, 0)
    generator = torch_generator(check_generator(generator, y))
    u = torch.rand(hard.shape, generator=generator, device=y.device)
    rate = check_strength(rate, name="rate", x=u, high=1.0)
    if is_identity(rate, 0.0):
        return y
    if pattern == "symmetric" and classes < 2:
        raise ValueError("pattern='symmetric' needs at least 2 classes")
    dest = _draw_destinations(hard, classes, pattern, generator)
    flip = u < rate
    if ignored is not None:
        flip &= ~ignored
    if not soft_input:
        return torch.where(flip, dest, y.long()).to(y.dtype)
    new = torch.where(flip, dest, hard)
    cols = torch.arange(classes, device=y.device).expand(y.shape).clone()
    cols.scatter_(-1, hard.unsqueeze(-1), new.unsqueeze(-1))
    cols.scatter_(-1, new.unsqueeze(-1), hard.unsqueeze(-1))
    return y.gather(-1, cols)


def disturb_labels(
    y: Tensor,
    alpha: float | Tensor,
    *,
    num_classes: int | None = None,
    ignore_index: int | None = -100,
    generator: NoiseGenerator | None = None,
) -> Tensor:
    """DisturbLabel (Xie et al. 2016): with probability α a label is redrawn uniformly over all C classes.

    The redraw can land on the true class, so a label changes with probability α·(C − 1)/C. This is
    :func:`flip_labels` with ``pattern="uniform"``.

    Args:
        y: class ids [batch, ...]; alpha: in [0, 1]; num_classes: C; ignore_index: a label left as
        it is (e.g. -100); generator: a noisereg Stream (CPU) or torch.Generator.

    Returns:
        The noisy class ids, a new tensor of y's shape and dtype.

    Raises:
        TypeError, ValueError: as :func:`flip_labels`.

    >>> disturb_labels(torch.tensor([0, 1, 2]), 0.0, num_classes=3).tolist()
    [0, 1, 2]
    """
    return flip_labels(
        y, alpha, num_classes=num_classes, pattern="uniform", ignore_index=ignore_index, generator=generator
    )
