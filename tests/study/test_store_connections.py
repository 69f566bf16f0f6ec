"""A store gives its database connections back: a server has only ``max_connections`` of them."""

from __future__ import annotations

import gc
from pathlib import Path

import sqlalchemy

from noisereg.cli import main
from noisereg.study.store import Store
from tests.study.fakes import tiny_raw
from tests.study.run.processes import wait_for
from tests.test_cli import write_study


def open_connections(url: str) -> int:
    """Connections to the study's database other than the one that asks."""
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            query = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return int(connection.exec_driver_sql(query).scalar_one())
    finally:
        engine.dispose()


def test_a_closed_store_holds_no_connection(postgres_url) -> None:
    gc.disable()  # a pool that only the garbage collector closes must not pass for a closed one
    try:
        before = open_connections(postgres_url)
        with Store(postgres_url, "connections") as store:
            store.create({"x": 1}, {"a": {"arm": "a"}}, {"task": "classification"})
            store.enqueue(["a"])
            [claim] = store.claim(1)
            store.complete(claim, 0.5, {"final": {}})
            assert open_connections(postgres_url) > before
        wait_for(lambda: open_connections(postgres_url) <= before, "the store's connections to close", timeout=30)
    finally:
        gc.enable()


def test_a_study_and_its_report_leave_no_connection_open(tmp_path: Path, postgres_url) -> None:
    study = write_study(tmp_path / "study.toml", {**tiny_raw(name="leaves-none"), "robustness": {"enabled": False}})
    gc.disable()
    try:
        before = open_connections(postgres_url)
        assert main(["study", str(study), "--storage", postgres_url, "--out", str(tmp_path / "run"), "--quiet"]) == 0
        assert main(["report", str(tmp_path / "run")]) == 0
        assert main(["export", str(tmp_path / "run"), "--to", "csv"]) == 0
        wait_for(lambda: open_connections(postgres_url) <= before, "the study's connections to close", timeout=30)
    finally:
        gc.enable()
