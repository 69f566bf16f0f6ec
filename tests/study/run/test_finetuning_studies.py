"""The NoisyTune and SymNoise built-in studies, shrunk: they run through the own-model pipeline to a
report that states the claim; their generated tasks are what the study files say."""

from __future__ import annotations

import torch

from noisereg.study.config import UserStudyConfig, resolve_study
from noisereg.study.config.user import parse_user_config
from noisereg.study.model_file import run_config
from noisereg.study.tasks import finetune_data, pretrained_mlp, token_classifier, token_data


def _shrunk(name: str) -> UserStudyConfig:
    cfg = resolve_study(name)
    assert isinstance(cfg, UserStudyConfig) and cfg.topic == "fine-tuning gains" and cfg.claim
    raw = cfg.model_dump(mode="json")
    raw["seeds"], raw["training"] = 2, {**raw["training"], "epochs": 2, "eval_every": 1}
    raw["data"]["kwargs"] = {"n_train": 40, "n_test": 50}
    return parse_user_config(raw)


def test_noisytune_study_runs_and_its_noisy_arm_starts_from_perturbed_weights(tmp_path) -> None:
    result = run_config(_shrunk("noisytune"), tmp_path)
    assert result.summary["claim"].startswith("Wu, Wu, Qi & Huang 2022")
    assert [a["name"] for a in result.summary["arms"]] == ["no noise", "NoisyTune 0.15"]
    assert "**Published claim.**" in (tmp_path / "summary.md").read_text()


def test_symnoise_study_runs_with_both_embedding_noises(tmp_path) -> None:
    result = run_config(_shrunk("symnoise"), tmp_path)
    assert result.summary["claim"].startswith("Yadav & Singh 2023")
    arms = {a["name"]: a for a in result.summary["arms"]}
    assert list(arms) == ["no noise", "NEFTune 5", "SymNoise 5"]
    # SymNoise against its nearest relative, seed by seed, in the report's paired contrasts
    assert arms["SymNoise 5"]["versus"]["arm"] == "NEFTune 5" and arms["SymNoise 5"]["versus"]["n"] == 2
    assert "## Paired contrasts" in (tmp_path / "summary.md").read_text()


def test_versus_in_an_own_model_file_must_name_another_arm_without_a_grid() -> None:
    import pytest

    from noisereg.study.config import StudyConfigError

    raw = resolve_study("symnoise").model_dump(mode="json")
    raw["arms"][2]["versus"] = "NEFTune"
    with pytest.raises(StudyConfigError, match=r"versus='NEFTune' must name another arm"):
        parse_user_config(raw)
    raw["arms"][2]["versus"], raw["arms"][1]["grid"] = "NEFTune 5", [1.0, 5.0]
    with pytest.raises(StudyConfigError, match="compare arms without a grid"):
        parse_user_config(raw)


def test_pretrained_weights_are_the_same_every_call_and_leave_the_global_rng() -> None:
    state = torch.get_rng_state()
    a, b = pretrained_mlp(width=8, samples=64, epochs=1), pretrained_mlp(width=8, samples=64, epochs=1)
    assert torch.equal(state, torch.get_rng_state())
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q) and p is not q
    x, y = finetune_data(n_train=10, n_test=20)["train"]
    assert x.shape == (10, 16) and int(y.max()) < 8


def test_token_task_pads_with_zero_after_the_real_tokens() -> None:
    ids, labels = token_data(n_train=30, n_test=5)["train"]
    lengths = (ids != 0).sum(dim=1)
    assert ids.shape == (30, 24) and bool((lengths >= 4).all()) and bool((lengths <= 24).all())
    # padding only after the real tokens
    assert torch.equal(ids != 0, torch.arange(24).unsqueeze(0) < lengths.unsqueeze(1))
    assert set(labels.tolist()) <= {0, 1}
    out = token_classifier()(ids)
    assert out.shape == (30, 2)


def test_run_model_refuses_a_versus_that_names_no_plain_arm(tmp_path) -> None:
    import pytest
    from torch import nn

    from noisereg import noise
    from noisereg.study import run_model, site

    x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    arms = {"none": [], "input": [site(noise.Gaussian(std=0.1), at="input")]}
    with pytest.raises(ValueError, match="'inputs' is not an arm without a grid"):
        run_model(
            model=lambda: nn.Linear(3, 2),
            data=(x, y),
            arms=arms,
            out=tmp_path,
            epochs=1,
            seeds=1,
            versus={"inputs": "none"},
        )
    with pytest.raises(ValueError, match="compares an arm with itself"):
        run_model(
            model=lambda: nn.Linear(3, 2),
            data=(x, y),
            arms=arms,
            out=tmp_path,
            epochs=1,
            seeds=1,
            versus={"input": "input"},
        )
