"""The replica engine: many trainings of one model (seeds × noise strengths × folds) as one batched model.

Describe the work with :class:`MLPSpec` (hand-written batched forward/backward, every noise site) or
:class:`ModuleSpec` (any ``nn.Module`` through ``torch.func``; input, hidden, target and gradient noise),
:class:`OptimSpec`, :class:`SiteNoise`, :class:`Replica` and :class:`Group`; give the data as
:class:`FoldData`; call :func:`train_group`. Each replica's initial weights, batch order and noise
streams derive from its own seed, so its result does not depend on the other replicas of its group,
nor on chunking or worker processes, up to floating-point rounding: another stack size may take
another kernel (vector width, blocking) that rounds differently, by about one unit in the last place.
The same group trained again on the same machine, in the same configuration, gives bitwise the same
results on CPU. ``tests/engine/test_equivalence.py`` checks a replica against a plain
``nn.Sequential`` + ``torch.optim`` loop given the same draws.

The studies of a user's own model train through :mod:`noisereg.engine.vectorized_training`: its
replicas stacked on this engine's MLP kernels where the model is an ``nn.Sequential`` MLP
(:mod:`noisereg.engine.lowering`), else under ``torch.func.vmap`` (:mod:`noisereg.engine.vectorized`,
any model that ``torch.func`` can batch) — or through :mod:`noisereg.engine.loop` (one replica at a
time, every model and site).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from noisereg._lazy import lazy_names

# public name -> module that defines it; loaded on first use (PEP 562) so that study files can read
# the engine's vocabulary (noisereg.engine.vocabulary) without importing torch
_PUBLIC = {
    "MLPSpec": "noisereg.engine.specs",
    "ModuleSpec": "noisereg.engine.modules",
    "OptimSpec": "noisereg.engine.specs",
    "SiteNoise": "noisereg.engine.specs",
    "Replica": "noisereg.engine.specs",
    "Group": "noisereg.engine.specs",
    "FoldData": "noisereg.engine.specs",
    "GroupResult": "noisereg.engine.group",
    "train_group": "noisereg.engine.group",
    "estimate_replica_bytes": "noisereg.engine.group",
    "plan_chunks": "noisereg.engine.group",
    "build_module": "noisereg.engine.replicas",
    "initial_state_dict": "noisereg.engine.replicas",
    "initial_module": "noisereg.engine.modules",
}

__all__ = list(_PUBLIC)


__getattr__, __dir__ = lazy_names("noisereg.engine", _PUBLIC, globals())


if TYPE_CHECKING:
    from noisereg.engine.group import GroupResult, estimate_replica_bytes, plan_chunks, train_group
    from noisereg.engine.modules import ModuleSpec, initial_module
    from noisereg.engine.replicas import build_module, initial_state_dict
    from noisereg.engine.specs import FoldData, Group, MLPSpec, OptimSpec, Replica, SiteNoise
