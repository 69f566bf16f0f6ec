"""noisereg where users already train: each framework an optional extra, imported on first use.

- :mod:`noisereg.integrations.lightning`: ``NoiseCallback`` for a Lightning ``Trainer``
  (``pip install "noisereg[lightning]"``);
- :mod:`noisereg.integrations.transformers`: input-embedding noise for a ``PreTrainedModel`` and a
  ``TrainerCallback`` (``pip install "noisereg[transformers]"``);
- :mod:`noisereg.integrations.vision`: per-item seeded image noise as a data-pipeline transform
  (a torchvision v2 ``Transform`` where torchvision imports).

:class:`Attach` describes one ``noisereg.attach`` call that a callback makes when the model is ready;
:class:`UnusedNoiseWarning` says that training never reached a noise a callback attached (filter it
with ``warnings.filterwarnings("error", category=UnusedNoiseWarning)`` to make it fatal);
:func:`require` imports an optional package or raises an ImportError that names it, the original
error and the fix (a package that is installed but broken included).
"""

from noisereg._optional import require
from noisereg.integrations.spec import Attach, UnusedNoiseWarning

__all__ = ["Attach", "UnusedNoiseWarning", "require"]
