"""What optuna-dashboard shows of a real (tiny) study, read through the dashboard's own JSON API
(its WSGI app, with the run directory's artifact store, as ``optuna-dashboard --artifact-dir`` serves it)."""

from __future__ import annotations

import json
import threading
import urllib.request
import wsgiref.simple_server
from pathlib import Path

import numpy as np
import optuna
import pytest

from noisereg.study.store.artifacts import CURVES_ARTIFACT, artifact_dir
from noisereg.study.run.runner import run_study
from noisereg.study.store import Store, default_url
from tests.study.fakes import tiny_config

optuna_dashboard = pytest.importorskip("optuna_dashboard")


class _Quiet(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _dashboard_view(url: str) -> tuple[dict, dict[tuple[int, str], dict]]:
    """The study as the dashboard's browser page receives it (its WSGI app on 127.0.0.1), and each
    trial's artifact as the dashboard serves it: {(trial id, file name): JSON}."""
    artifacts = optuna.artifacts.FileSystemArtifactStore(artifact_dir(url))
    app = optuna_dashboard.wsgi(url, artifact_store=artifacts)
    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        root = f"http://127.0.0.1:{server.server_address[1]}"
        with urllib.request.urlopen(f"{root}/api/studies", timeout=30) as response:
            (summary,) = json.load(response)["study_summaries"]
        study = summary["study_id"]
        with urllib.request.urlopen(f"{root}/api/studies/{study}?after=0", timeout=30) as response:
            view = json.load(response)
        files = {}
        for trial in view["trials"]:
            for meta in trial["artifacts"]:
                address = f"{root}/artifacts/{study}/{trial['trial_id']}/{meta['artifact_id']}"
                with urllib.request.urlopen(address, timeout=30) as response:
                    files[(trial["trial_id"], meta["filename"])] = json.load(response)
        return view, files
    finally:
        server.shutdown()
        server.server_close()


def _params(trial: dict) -> dict:
    return {p["name"]: p["param_external_value"] for p in trial["params"]}


def test_dashboard_shows_arms_cv_objective_and_curves(tmp_path: Path) -> None:
    config = tiny_config(curve_points=3)
    run_study(config, tmp_path)
    view, files = _dashboard_view(default_url(tmp_path))
    with Store(default_url(tmp_path), "tiny") as store:
        done = store.completed()
    assert view["objective_names"] == ["cv_val_loss"]
    trials = {_params(t)["cell"]: t for t in view["trials"]}
    assert set(trials) == set(done)
    for key, trial in trials.items():
        params, results = _params(trial), done[key]
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert params["arm"] == key.split("[")[0]
        # the learning curve: mean over seeds of the stored test_loss curve at each kept epoch
        assert attrs["intermediate"] == "test_loss"
        steps = [(v["step"], v["value"]) for v in trial["intermediate_values"]]
        assert [s for s, _ in steps] == results["epochs"]
        assert [v for _, v in steps] == pytest.approx(np.mean(results["curve:test_loss"], axis=0).tolist(), rel=1e-12)
        # the curves are the trial's artifact, not user attributes
        assert not any(k.startswith("curve:") for k in attrs) and [a["filename"] for a in trial["artifacts"]] == [
            CURVES_ARTIFACT
        ]
        curves = files[(trial["trial_id"], CURVES_ARTIFACT)]
        assert {k: curves[k] for k in curves if k != "cv"} == {
            k: v for k, v in results.items() if k.startswith("curve:")
        }
        if params["arm"] == "grid":  # cross-validated: the trial value is the mean CV validation loss
            assert params["site"] == "before" and float(params["strength"]) in (0.0, 0.1, 1.0)
            assert trial["values"] == [pytest.approx(float(np.mean(results["cv"]["val_loss"])), rel=1e-12)]
            assert curves["cv"]["val_loss_curve"] == results["cv"]["val_loss_curve"]
        else:  # no CV: no value, so never the dashboard's best trial, never a test score
            assert "values" not in trial or trial["values"] is None
    best = {_params(t)["cell"] for t in view["best_trials"]}
    assert best and best <= {k for k in trials if k.startswith("grid")}
    assert _params(trials["none"])["site"] == "none"
    assert "strength" not in _params(trials["none"])
