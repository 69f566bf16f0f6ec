"""What optuna-dashboard shows of a real (tiny) study, read through the dashboard's own JSON API."""

from __future__ import annotations

import json
import threading
import urllib.request
import wsgiref.simple_server
from pathlib import Path

import pytest

from noisereg.study.run.runner import run_study
from noisereg.study.store import default_url
from tests.study.fakes import tiny_config

optuna_dashboard = pytest.importorskip("optuna_dashboard")


class _Quiet(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _dashboard_view(url: str) -> dict:
    """The study as the dashboard's browser page receives it (its WSGI app on 127.0.0.1)."""
    server = wsgiref.simple_server.make_server("127.0.0.1", 0, optuna_dashboard.wsgi(url), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/api/studies"
        with urllib.request.urlopen(base, timeout=30) as response:
            (summary,) = json.load(response)["study_summaries"]
        with urllib.request.urlopen(f"{base}/{summary['study_id']}?after=0", timeout=30) as response:
            return json.load(response)
    finally:
        server.shutdown()
        server.server_close()


def test_dashboard_shows_arms_cv_objective_and_curves(tmp_path: Path) -> None:
    config = tiny_config(curve_points=3)
    run_study(config, tmp_path)
    view = _dashboard_view(default_url(tmp_path))
    assert view["objective_names"] == ["cv_val_loss"]
    trials = {next(p["param_external_value"] for p in t["params"] if p["name"] == "cell"): t
              for t in view["trials"]}
    for key, trial in trials.items():
        params = {p["name"]: p["param_external_value"] for p in trial["params"]}
        assert params["arm"] == key.split("[")[0]
        assert len(trial["intermediate_values"]) == 3
        if params["arm"] == "grid":  # cross-validated: the trial value is the CV loss
            assert len(trial["values"]) == 1 and params["site"] == "pre"
            assert float(params["strength"]) in (0.0, 0.1, 1.0)
        else:  # no CV: no value, so never the dashboard's best trial
            assert "values" not in trial or trial["values"] is None
    assert params_of_best(view) <= {k for k in trials if k.startswith("grid")}
    none = {p["name"]: p["param_external_value"] for p in trials["none"]["params"]}
    assert none["site"] == "none"


def params_of_best(view: dict) -> set[str]:
    return {next(p["param_external_value"] for p in t["params"] if p["name"] == "cell") for t in view["best_trials"]}
