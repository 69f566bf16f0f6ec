"""The problems of ``benchmarks/selection.py`` beyond its 24 generated ones: issue 24's failure (in the
tuning family) and the held-out family, on which the default selection procedure was run once, after it
had been fixed on the tuning family alone.

The held-out family was written down here before any of its problems was trained: scikit-learn's
shipped tables (breast cancer, wine, iris, digits) subsampled to 30–150 training points, and generated
tables (``make_classification``) of other dimensions, classes and sizes than anything in the tuning
family; Gaussian noise on the input or before the first hidden activation; MLP 100 ReLU or 50×50 tanh.
A shipped table's test set is every row not drawn for training (at most ``TEST_ROWS``); a generated
table's is a fresh sample of 2000 rows. Features are standardized with training statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine, make_classification

TEST_ROWS = 1000
GENERATED_TEST = 2000
SHIPPED = {"breast cancer": load_breast_cancer, "wine": load_wine, "iris": load_iris, "digits": load_digits}


@dataclass(frozen=True)
class TableProblem:
    """A classification table: a shipped data set (``source`` in :data:`SHIPPED`) or ``generated``
    (``make_classification`` with ``features``, ``informative`` and ``classes``)."""

    source: str
    n_train: int
    widths: tuple[int, ...]
    activation: str
    site: str
    seed: int
    features: int = 0
    informative: int = 0
    classes_: int = 0

    @property
    def name(self) -> str:
        arch = "x".join(map(str, self.widths))
        what = self.source if self.source != "generated" else f"table {self.features}f {self.classes_}c"
        return f"{what} n={self.n_train}, {arch} {self.activation}, {self.site}"

    @property
    def regression(self) -> bool:
        return False

    @property
    def classes(self) -> int:
        return self.classes_ if self.source == "generated" else int(SHIPPED[self.source](return_X_y=True)[1].max()) + 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x_train, y_train, x_test, y_test), standardized with training statistics."""
        rng = np.random.default_rng(self.seed)
        if self.source == "generated":
            x_all, y_all = make_classification(
                self.n_train + GENERATED_TEST,
                n_features=self.features,
                n_informative=self.informative,
                n_redundant=min(2, self.features - self.informative),
                n_classes=self.classes_,
                random_state=self.seed,
            )
            order = rng.permutation(len(y_all))
        else:
            x_all, y_all = SHIPPED[self.source](return_X_y=True)
            order = rng.permutation(len(y_all))
            # every class in the training part: draw again until it is (small n_train on 3 or 10 classes)
            while len(np.unique(y_all[order[: self.n_train]])) < self.classes:
                order = rng.permutation(len(y_all))
        tr, te = order[: self.n_train], order[self.n_train :][: TEST_ROWS if self.source != "generated" else None]
        x, xt = x_all[tr].astype(np.float64), x_all[te].astype(np.float64)
        mean, std = x.mean(0), x.std(0)
        std = np.where(std > 0, std, 1.0)  # digits: some pixels are constant on a small sample
        return (x - mean) / std, y_all[tr].astype(np.int64), (xt - mean) / std, y_all[te].astype(np.int64)


def issue_failure() -> TableProblem:
    """Issue 24's failure as reproduced here: four classes, ten features, 100 training points, input
    noise; the default procedure of the time chose σ = 1, significantly worse than no noise on test.
    Part of the tuning family."""
    return TableProblem("generated", 100, (100,), "relu", "input", seed=2, features=10, informative=5, classes_=4)


def heldout() -> list[TableProblem]:
    """The held-out family (module docstring): 12 problems, fixed before any was trained."""
    shipped = [
        ("breast cancer", 30), ("breast cancer", 150),
        ("wine", 40), ("wine", 100),
        ("iris", 30), ("iris", 90),
        ("digits", 100), ("digits", 150),
    ]  # fmt: skip
    generated = [(20, 4, 3, 60), (8, 3, 2, 40), (12, 6, 5, 150), (16, 8, 4, 80)]  # features, informative, classes, n
    out = []
    for i, (source, n) in enumerate(shipped):
        widths, activation = ((100,), "relu") if i % 2 == 0 else ((50, 50), "tanh")
        out.append(TableProblem(source, n, widths, activation, "input" if i % 4 < 2 else "before", seed=500 + i))
    for j, (features, informative, classes, n) in enumerate(generated):
        widths, activation = ((100,), "relu") if j % 2 == 0 else ((50, 50), "tanh")
        site = "input" if j < 2 else "before"
        out.append(TableProblem("generated", n, widths, activation, site, 600 + j, features, informative, classes))
    return out
