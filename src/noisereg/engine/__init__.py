"""The replica engine: many trainings of one model (seeds × noise strengths × folds) as one batched model.

Describe the work with :class:`MLPSpec` (hand-written batched forward/backward, every noise site) or
:class:`ModuleSpec` (any ``nn.Module`` through ``torch.func``; input, target and gradient noise),
:class:`OptimSpec`, :class:`SiteNoise`, :class:`Replica` and :class:`Group`; give the data as
:class:`FoldData`; call :func:`train_group`. Each replica's initial weights, batch order and noise
streams derive from its own seed, so its result does not depend on the other replicas of its group,
nor on chunking or worker processes, up to floating-point rounding: another stack size may take
another kernel (vector width, blocking) that rounds differently, by about one unit in the last place.
The same group trained again on the same machine, in the same configuration, gives bitwise the same
results on CPU. ``tests/engine/test_equivalence.py`` checks a replica against a plain
``nn.Sequential`` + ``torch.optim`` loop given the same draws.
"""

from noisereg.engine.group import GroupResult, estimate_replica_bytes, plan_chunks, train_group
from noisereg.engine.modules import ModuleSpec, initial_module
from noisereg.engine.replicas import build_module, initial_state_dict
from noisereg.engine.specs import FoldData, Group, MLPSpec, OptimSpec, Replica, SiteNoise
from noisereg.engine.targets import LabelFlip, LabelSmoothing, label_flip, label_smoothing

__all__ = [
    "MLPSpec",
    "ModuleSpec",
    "OptimSpec",
    "SiteNoise",
    "Replica",
    "Group",
    "FoldData",
    "GroupResult",
    "train_group",
    "estimate_replica_bytes",
    "plan_chunks",
    "build_module",
    "initial_state_dict",
    "initial_module",
    "LabelSmoothing",
    "LabelFlip",
    "label_smoothing",
    "label_flip",
]
