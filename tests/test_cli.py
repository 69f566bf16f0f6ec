"""The command line, in-process: exit codes, messages, files; and kill -9 then resume, for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import optuna

from noisereg.cli import main
from tests.study.fakes import assert_stored_close, tiny_raw

SRC = Path(__file__).resolve().parents[1] / "src"


def toml_value(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else repr(value)


def write_study(path: Path, raw: dict) -> Path:
    raw = {k: v for k, v in raw.items() if v is not None}
    lines = [f"{k} = {toml_value(v)}" for k, v in raw.items() if k != "arms"]
    lines += ["arms = " + toml_value(raw["arms"])]
    path.write_text("\n".join(lines) + "\n")
    assert tomllib.loads(path.read_text()) == raw
    return path


def test_list_shows_the_builtin_studies(capsys) -> None:
    assert main(["study", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("case-study", "moons", "digits", "breast-cancer", "diabetes"):
        assert f"{name}:" in out


def test_list_groups_the_builtin_studies_by_the_claim_they_test(capsys) -> None:
    from noisereg.study.config import builtin_studies, builtin_topics
    from noisereg.study.config.files import UNGROUPED

    groups = builtin_topics()
    assert sorted(n for names in groups.values() for n in names) == sorted(builtin_studies())
    assert list(groups)[-1] == UNGROUPED and "label-noise-sgd" in groups["flat minima"]
    assert main(["study", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # each study is listed, indented, after the heading of its topic and before the next heading
    heading = lines.index("flat minima")
    # (the next heading: a long description wraps onto lines that are not indented either)
    following = next((i for i in range(heading + 1, len(lines)) if lines[i] in groups), len(lines))
    assert any(line.startswith("  label-noise-sgd:") for line in lines[heading:following])


def test_study_runs_prints_the_table_and_report_rebuilds(tmp_path, capsys) -> None:
    study = write_study(tmp_path / "tiny.toml", tiny_raw(selection=None, arms=tiny_raw()["arms"][:3]))
    out_dir = tmp_path / "run"
    assert main(["study", str(study), "--out", str(out_dir), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "input" in printed and "Verdict." in printed and "Recommendation." in printed and "95% CI" in printed
    assert "Δ boot 95% CI" in printed and "P(better)" in printed and "MDE" in printed
    assert {p.name for p in out_dir.iterdir()} >= {
        "study.db",
        "run.json",
        "summary.json",
        "summary.md",
        "report.html",
        "plots",
    }
    (out_dir / "summary.json").unlink()
    assert main(["report", str(out_dir), "--quiet"]) == 0
    assert json.loads((out_dir / "summary.json").read_text())["baseline"] == "none"
    assert capsys.readouterr().out == ""


def test_default_run_directory_is_runs_slash_name(tmp_path, monkeypatch) -> None:
    study = write_study(tmp_path / "tiny.toml", tiny_raw(selection=None, arms=tiny_raw()["arms"][:1]))
    monkeypatch.chdir(tmp_path)
    assert main(["study", str(study), "--quiet", "--workers", "1"]) == 0
    assert (tmp_path / "runs" / "tiny" / "summary.json").is_file()


def test_storage_url_option_and_report_from_it(tmp_path, capsys) -> None:
    study = write_study(tmp_path / "tiny.toml", tiny_raw(selection=None, arms=tiny_raw()["arms"][:2]))
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    run_dir = tmp_path / "run"
    assert main(["study", str(study), "--out", str(run_dir), "--storage", url, "--quiet", "--workers", "1"]) == 0
    assert json.loads((run_dir / "run.json").read_text()) == {"study": "tiny", "storage": url}
    assert main(["report", str(run_dir)]) == 0 and "Verdict." in capsys.readouterr().out
    assert main(["report", str(tmp_path / "elsewhere"), "--storage", url, "--study", "tiny", "-q"]) == 0
    assert (tmp_path / "elsewhere" / "report.html").is_file()


def test_bad_study_exits_2_naming_the_key(tmp_path, capsys) -> None:
    raw = tiny_raw()
    raw["arms"][1]["noise"]["std"] = -0.1
    study = write_study(tmp_path / "bad.toml", raw)
    assert main(["study", str(study), "--out", str(tmp_path / "run")]) == 2
    assert "arms[1].noise.std: must be >= 0, got -0.1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_earlier_site_names_warn_on_one_line_each_and_train_the_same(tmp_path, capsys) -> None:
    arms = tiny_raw()["arms"][:3]
    new = write_study(tmp_path / "new.toml", tiny_raw(selection=None, arms=arms))
    assert main(["study", str(new), "--out", str(tmp_path / "new"), "--quiet", "--workers", "1"]) == 0
    assert "warning" not in capsys.readouterr().err
    arms[2]["noise"] = {"site": "pre", "kind": "gaussian", "std": 0.1}  # as built-in files were written before
    old = write_study(tmp_path / "old.toml", tiny_raw(selection=None, arms=arms))
    assert main(["study", str(old), "--out", str(tmp_path / "old"), "--quiet", "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"warning: {old}: arms[2].noise.site = 'pre' is deprecated: write at = 'activations', where = 'before'"
    ]
    results = [json.loads((tmp_path / run / "summary.json").read_text())["arms"] for run in ("new", "old")]
    assert results[0] == [{**arm, "elapsed_s": results[0][i]["elapsed_s"]} for i, arm in enumerate(results[1])]


def test_noise_generator_option_overrides_the_file_and_is_stored(tmp_path, capsys) -> None:
    study = write_study(tmp_path / "tiny.toml", tiny_raw(selection=None, arms=tiny_raw()["arms"][:2]))
    base = ["study", str(study), "--quiet", "--no-train"]
    assert main([*base, "--out", str(tmp_path / "torch"), "--noise-generator", "torch"]) == 0
    assert main([*base, "--out", str(tmp_path / "philox")]) == 0
    for family in ("torch", "philox"):
        stored = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / family / 'study.db'}")
        assert stored.user_attrs["config"]["noise_generator"] == family
    assert main([*base, "--out", str(tmp_path / "torch"), "--noise-generator", "philox"]) == 2
    assert "differs at: noise_generator" in capsys.readouterr().err
    assert main([*base, "--noise-generator", "mt"]) == 2


def test_refusals_and_usage_errors(tmp_path, capsys) -> None:
    assert main(["study", "nosuch", "--out", str(tmp_path / "d")]) == 2
    assert "neither a study file nor a built-in study" in capsys.readouterr().err
    assert main(["study", "--device", "tpu"]) == 2
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no run.json" in capsys.readouterr().err


def _states(db: Path) -> list[str]:
    try:
        study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{db}")
    except (KeyError, Exception):
        return []
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def test_kill_9_loses_no_finished_cell_and_the_rerun_resumes(tmp_path) -> None:
    raw = tiny_raw(seeds=2, training={"epochs": 1500, "batch_size": 32, "eval_every": 50})
    study = write_study(tmp_path / "tiny.toml", raw)
    run_dir = tmp_path / "run"
    args = ["study", str(study), "--out", str(run_dir), "--quiet", "--heartbeat", "1", "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-m", "noisereg", *args], env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            states = _states(run_dir / "study.db")
            if "COMPLETE" in states and "RUNNING" in states:
                # A cell seen running may finish before a kill lands (more often on a loaded machine):
                # freeze the study's processes, look again, and kill only with a cell still running.
                os.killpg(proc.pid, signal.SIGSTOP)
                states = _states(run_dir / "study.db")
                if "RUNNING" in states:
                    break
                os.killpg(proc.pid, signal.SIGCONT)
            ended = proc.poll()
            assert ended is None, f"the study ended (exit {ended}; its error is above) before it could be killed"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    study_db = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir / 'study.db'}")
    before = {
        t.params["cell"]: (t.number, t.user_attrs["final"]) for t in study_db.get_trials() if t.state.name == "COMPLETE"
    }
    killed = [t.params["cell"] for t in study_db.get_trials() if t.state.name == "RUNNING"]
    assert before and killed

    assert main(args) == 0  # resumes: waits out the dead cells' grace period, retries them
    after = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir / 'study.db'}").get_trials()
    complete = [t for t in after if t.state.name == "COMPLETE"]
    assert sorted(t.params["cell"] for t in complete) == sorted(
        json.loads((run_dir / "summary.json").read_text())["arms"][i]["name"] for i in range(6)
    )
    for cell, (number, final) in before.items():  # finished cells were neither redone nor duplicated
        [t] = [t for t in complete if t.params["cell"] == cell]
        assert (t.number, t.user_attrs["final"]) == (number, final)
    assert sorted(t.params["cell"] for t in after if t.state.name == "FAIL") == sorted(killed)

    clean = tmp_path / "clean"
    assert main(["study", str(study), "--out", str(clean), "--quiet", "--workers", "1"]) == 0
    # Every cell's stored results equal a clean run's. Retried cells may train in stacks of another
    # size, which the engine promises to agree to rounding only: compare at the stored precision.
    final = lambda d: {
        t.params["cell"]: t.user_attrs["final"]
        for t in optuna.load_study(study_name="tiny", storage=f"sqlite:///{d / 'study.db'}").get_trials()
        if t.state.name == "COMPLETE"
    }  # noqa: E731
    assert_stored_close(final(clean), final(run_dir))


def test_robustness_measures_the_stored_models_of_a_finished_study(tmp_path, capsys) -> None:
    raw = tiny_raw(selection=None, arms=tiny_raw()["arms"][:2], seeds=2, robustness={"enabled": False})
    study = write_study(tmp_path / "tiny.toml", raw)
    run_dir = tmp_path / "run"
    assert main(["study", str(study), "--out", str(run_dir), "--quiet", "--workers", "1"]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["arms"][0]["certified"] is None
    capsys.readouterr()

    assert main(["robustness", str(run_dir), "--n", "60", "--n0", "5", "--inputs", "3"]) == 0
    out = capsys.readouterr().out
    assert "Calibration" in out and "Corruption robustness" in out and "Certified accuracy" in out
    arms = json.loads((run_dir / "summary.json").read_text())["arms"]
    assert [(a["certified"]["n"], a["certified"]["inputs"], a["certified"]["seeds"]) for a in arms] == [(60, 3, 2)] * 2

    assert main(["robustness", str(run_dir), "--n0", "80", "--n", "60", "-q"]) == 2
    assert "robustness.smoothing: n0=80 must be < n=60" in capsys.readouterr().err
    assert main(["robustness", str(tmp_path / "nothing"), "-q"]) == 2
    for path in (run_dir / "models").iterdir():
        path.unlink()
    assert main(["robustness", str(run_dir), "--n", "70", "--n0", "5", "--inputs", "3", "-q"]) == 1
    assert "2 cell(s) have no stored models" in capsys.readouterr().err


def test_a_failed_training_is_one_line_naming_the_cells_and_debug_shows_the_traceback(
    tmp_path, capsys, monkeypatch
) -> None:
    from noisereg.study.run import runner

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore torch detail")

    monkeypatch.setattr(runner, "_train_batch", out_of_memory)
    study = write_study(tmp_path / "tiny.toml", tiny_raw(selection=None, arms=tiny_raw()["arms"][:2]))
    args = ["study", str(study), "--out", str(tmp_path / "run"), "--quiet", "--workers", "1"]
    assert main(args) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "training cell(s) none failed: RuntimeError: CUDA out of memory. Tried to allocate 20.00 GiB" in err
    assert "more torch detail" not in err and "Traceback" not in err and "--debug" in err
    assert sorted(_states(tmp_path / "run" / "study.db")) == ["FAIL", "WAITING"]  # the failed cell keeps its traceback
    assert main(["--debug", *args]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "more torch detail" in err
