"""The replica engine: many trainings of one MLP (seeds x noise strengths x folds) as one batched model.

Describe the work with :class:`MLPSpec`, :class:`OptimSpec`, :class:`SiteNoise`, :class:`Replica` and
:class:`Group`, give the data as :class:`FoldData`, and call :func:`train_group`.
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
