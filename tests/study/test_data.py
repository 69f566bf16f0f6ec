"""Data sets, files, splits, folds and standardization against scikit-learn."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.datasets import load_diabetes, make_circles
from sklearn.preprocessing import StandardScaler

from noisereg.study.config import DataConfig, SplitConfig
from noisereg.study.data import DataError, load_dataset, make_folds


def circles(**kw) -> DataConfig:
    return DataConfig(source="circles", n_samples=100, noise=0.1, random_state=1, **kw)


def test_holdout_is_the_first_n_samples_standardized_with_training_statistics() -> None:
    data = load_dataset(circles())
    [fold] = make_folds(data, SplitConfig(kind="holdout", n_train=30), circles())
    x, y = make_circles(n_samples=100, noise=0.1, random_state=1)
    scaler = StandardScaler().fit(x[:30])
    np.testing.assert_allclose(fold.x_train, scaler.transform(x[:30]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fold.x_test, scaler.transform(x[30:]), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(fold.y_train, y[:30])
    np.testing.assert_array_equal(fold.y_test, y[30:])
    assert fold.role == "test" and fold.shape_key == (30, 0, 70)


def test_a_fresh_test_sample_comes_from_the_same_generator_with_another_seed() -> None:
    cfg = circles(test_samples=500)
    [fold] = make_folds(load_dataset(cfg), SplitConfig(kind="holdout", n_train=100), cfg)
    x, y = make_circles(n_samples=500, noise=0.1, random_state=2)
    np.testing.assert_array_equal(fold.y_test, y)
    assert fold.x_test.shape == (500, 2) and fold.x_train.shape == (100, 2)


def test_cv_folds_partition_the_training_part_and_keep_the_test_part() -> None:
    raw = circles(standardize=False)
    folds = make_folds(load_dataset(raw), SplitConfig(kind="holdout", n_train=30), raw, cv_folds=5)
    x, _ = make_circles(n_samples=100, noise=0.1, random_state=1)
    cv = folds[1:]
    assert [f.role for f in cv] == ["cv"] * 5 and all(f.shape_key == (24, 0, 6) for f in cv)
    rows = {tuple(r): i for i, r in enumerate(x[:30])}
    held_out = sorted(rows[tuple(r)] for f in cv for r in f.x_test)
    assert held_out == list(range(30))
    for f in cv:
        assert sorted(rows[tuple(r)] for r in np.vstack([f.x_train, f.x_test])) == list(range(30))
    np.testing.assert_array_equal(folds[0].x_test, x[30:])
    scaled = make_folds(load_dataset(circles()), SplitConfig(kind="holdout", n_train=30), circles(), cv_folds=5)
    for f in scaled[1:]:  # each CV fold is standardized with its own training rows
        assert np.abs(f.x_train.mean(axis=0)).max() < 1e-12
        np.testing.assert_allclose(f.x_train.std(axis=0), 1.0, atol=1e-12)


def test_nested_folds_hold_each_outer_fold_out_of_its_inner_cross_validation() -> None:
    raw = circles(standardize=False)
    folds = make_folds(load_dataset(raw), SplitConfig(kind="holdout", n_train=30), raw, cv_folds=3, nested=True)
    x, _ = make_circles(n_samples=100, noise=0.1, random_state=1)
    rows = {tuple(r): i for i, r in enumerate(x[:30])}

    def ids(a: np.ndarray) -> set[int]:
        return {rows[tuple(r)] for r in a}

    cv = [f for f in folds if f.role == "cv"]
    outer = [f for f in folds if f.role == "nested_test"]
    assert [f.outer for f in outer] == [0, 1, 2] and len([f for f in folds if f.role == "nested_cv"]) == 9
    for o, fold in enumerate(outer):
        assert ids(fold.x_test) == ids(cv[o].x_test) and ids(fold.x_train) == set(range(30)) - ids(fold.x_test)
        inner = [f for f in folds if f.role == "nested_cv" and f.outer == o]
        assert sorted(r for f in inner for r in ids(f.x_test)) == sorted(ids(fold.x_train))  # a partition
        for f in inner:  # the outer fold's held-out rows never reach its inner folds
            assert not (ids(f.x_train) | ids(f.x_test)) & ids(fold.x_test)


def test_validation_rows_are_split_from_each_training_part() -> None:
    cfg = circles()
    folds = make_folds(load_dataset(cfg), SplitConfig(kind="holdout", n_train=30), cfg, cv_folds=3, validation=0.2)
    assert [f.shape_key for f in folds] == [(24, 6, 70), (16, 4, 10), (16, 4, 10), (16, 4, 10)]
    assert all(np.bincount(f.y_val).tolist() in ([3, 3], [2, 2]) for f in folds)
    with pytest.raises(DataError, match="training.validation=0.01"):
        make_folds(load_dataset(cfg), SplitConfig(kind="holdout", n_train=30), cfg, validation=0.01)


def test_stratified_kfold_tests_every_sample_once() -> None:
    cfg = DataConfig(source="iris")
    folds = make_folds(load_dataset(cfg), SplitConfig(kind="kfold", folds=5), cfg)
    assert len(folds) == 5 and sum(len(f.y_test) for f in folds) == 150
    for f in folds:
        assert np.bincount(f.y_test).tolist() == [10, 10, 10]


def test_regression_targets_are_standardized_on_the_training_part() -> None:
    cfg = DataConfig(source="diabetes")
    [fold] = make_folds(load_dataset(cfg), SplitConfig(kind="holdout", n_train=300), cfg)
    y = load_diabetes().target
    mean, std = y[:300].mean(), y[:300].std()
    np.testing.assert_allclose(fold.y_test, (y[300:] - mean) / std, atol=1e-12)


@pytest.mark.parametrize(
    ("split", "cv", "message"),
    [
        (SplitConfig(kind="kfold", folds=60), None, r"class\(es\) .* fewer members than folds"),
        (SplitConfig(kind="holdout", n_train=100), None, "leaves no test samples"),
        (SplitConfig(kind="holdout", n_train=4), 5, "selection.folds=5 but only 4 sample"),
    ],
)
def test_splits_that_cannot_work_are_refused(split: SplitConfig, cv: int | None, message: str) -> None:
    cfg = circles()
    with pytest.raises(DataError, match=message):
        make_folds(load_dataset(cfg), split, cfg, cv_folds=cv)


def file_config(path, **kw) -> DataConfig:
    return DataConfig(
        source="file", path=str(path), target=kw.pop("target", "y"), task=kw.pop("task", "classification"), **kw
    )


def test_csv_with_string_labels(tmp_path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n1,2,cat\n3,4,dog\n5,6,cat\n")
    data = load_dataset(file_config(path))
    assert data.classes == ("cat", "dog") and data.y.tolist() == [0, 1, 0]
    assert data.x.tolist() == [[1, 2], [3, 4], [5, 6]] and data.feature_names == ("a", "b")


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        (
            "a,b,y\n1,2,0\n3,nan,1\n4,5,0\nnan,1,1\n",
            "y",
            r"NaN in column 'a' at data rows \[4\]; NaN in column 'b' at data rows \[2\]",
        ),
        ("a,b,y\n1,2,0\n3,inf,1\n", "y", r"inf in column 'b' at data rows \[2\]"),
        ("a,b,y\n1,2,0\n", "label", r"data.target='label' is not a column .* columns: \['a', 'b', 'y'\]"),
        ("a,b,lable\n1,2,0\n", "label", "did you mean 'lable'"),
        ("a,b,y\n1,x,0\n", "y", "feature column 'b' is not numeric"),
        ("a,b,y\n1,2\n", "y", r"lines \[2\] have a different number of fields"),
        ("a,b,y\n", "y", "no data rows"),
    ],
)
def test_bad_csv_files_say_what_and_where(tmp_path, text: str, target: str, message: str) -> None:
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        load_dataset(file_config(path, target=target))


def test_missing_and_unknown_files(tmp_path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_dataset(file_config(tmp_path / "nope.csv"))
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(DataError, match=r"must end in .csv, .npz or .parquet"):
        load_dataset(file_config(tmp_path / "d.txt"))
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(file_config(tmp_path / "broken.npz"))


def test_npz_columns_and_matrices(tmp_path) -> None:
    path = tmp_path / "d.npz"
    x = np.arange(12.0).reshape(4, 3)
    np.savez(path, x=x, w=np.ones(4), y=np.array([0.5, 1.5, 2.5, 3.5]))
    data = load_dataset(file_config(path, task="regression"))
    assert data.feature_names == ("x[0]", "x[1]", "x[2]", "w") and data.task == "regression"
    np.testing.assert_array_equal(data.x, np.column_stack([x, np.ones(4)]))


def test_parquet_is_read_with_pyarrow_or_refused_with_the_fix(tmp_path) -> None:
    path = tmp_path / "d.parquet"
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        path.write_bytes(b"PAR1")
        with pytest.raises(DataError, match=r'pip install "noisereg\[parquet\]"'):
            load_dataset(file_config(path))
        return
    pq.write_table(pa.table({"a": [1.0, 2.0], "y": [0, 1]}), path)
    assert load_dataset(file_config(path)).x.tolist() == [[1.0], [2.0]]


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch) -> None:
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1")
    for name in ("pyarrow", "pyarrow.parquet"):  # what an environment without pyarrow imports
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(DataError, match=r'not installed: pip install "noisereg\[parquet\]"'):
        load_dataset(file_config(path))


def test_parquet_with_a_broken_pyarrow_says_so(tmp_path, monkeypatch) -> None:
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # pyarrow there, its parquet module not
    with pytest.raises(DataError, match=r"'pyarrow', which is installed but fails to import .*pip uninstall pyarrow"):
        load_dataset(file_config(path))


def test_task_must_match_a_bundled_data_set() -> None:
    with pytest.raises(DataError, match="regression data set"):
        load_dataset(DataConfig(source="diabetes", task="classification"))
