"""The only place that touches private torch or Optuna internals: each behind a public-API fallback.

torch's and Optuna's private functions are faster or the only ones that take what we need (a
generator, a flat buffer, a trial's storage id), but they may change without notice. Each function
here uses the private path when it exists and falls back to public API otherwise;
``tests/test_compat.py`` forces every fallback and compares its numbers with the private path.
``PRIVATE["enabled"] = False`` switches the private paths off as a whole (the tests use it; a user hit
by a torch or Optuna change can too).

- :mod:`noisereg._compat.torch_private`: the fused optimizer kernels, the Dirichlet sampler, the
  functorch-transform check.
- :mod:`noisereg._compat.optuna_private`: trial ids and enqueued cells (no torch, so the report
  layer can read the store without it).
"""

__all__ = ["PRIVATE"]

PRIVATE = {"enabled": True}
"""``PRIVATE["enabled"] = False`` makes every function here take its public fallback."""
