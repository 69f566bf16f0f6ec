"""NEFTune on tiny, randomly initialized transformers models built from configs (nothing downloaded):
input embeddings only, real lengths, packed documents, the Trainer's numbers with length="padded",
PEFT wrappers, generate noise-free, and the TrainerCallback inside a real Trainer."""

from __future__ import annotations

import os
import shutil
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.integrations.neftune import neftune_post_forward_hook

from noisereg import describe, noise_layers
from noisereg.integrations import UnusedNoiseWarning
from noisereg.integrations.transformers import STATE_FILE, NEFTuneCallback, embedding_noise
from noisereg.noise.base import rand
from noisereg.schedules import Linear
from noisereg.seeding import derive_seed, noise_generator
from noisereg.sites import NEFTune, attach, neftune

D = 16


def _gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=40, n_embd=D, n_layer=1, n_head=2, n_positions=32, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


def _bert() -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=40,
        hidden_size=D,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
    )
    return BertModel(config)


def _observe(module: nn.Module) -> list[torch.Tensor]:
    """Outputs of ``module`` after every hook registered before this one (the noise included)."""
    seen: list[torch.Tensor] = []
    module.register_forward_hook(lambda m, a, out: seen.append(out.detach().clone()))
    return seen


def _unit(seed: int, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """2u − 1 as the noise layer of ``name`` draws it: its stream, one row per position."""
    generator = noise_generator(derive_seed(seed, "embeddings", name))
    return rand(shape, generator, dtype=torch.float32, device=torch.device("cpu")) * 2 - 1


def test_bert_padded_batch_real_lengths_and_only_the_input_embeddings():
    model = _bert()
    handle = embedding_noise(model, 5.0, seed=3)
    assert [e.where for e in describe(model)] == ["after 'embeddings.word_embeddings'"]
    seen = _observe(model.embeddings.word_embeddings)
    position = _observe(model.embeddings.position_embeddings)
    token_type = _observe(model.embeddings.token_type_embeddings)
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    model.train()(ids, attention_mask=mask)
    clean = model.embeddings.word_embeddings.weight[ids].detach()
    lengths = torch.tensor([6.0, 3.0]).view(2, 1, 1)
    expected = 5.0 / torch.sqrt(lengths * D) * _unit(3, "embeddings.word_embeddings", (12, D)).view(2, 6, D)
    expected = torch.where(mask.bool().unsqueeze(-1), expected, torch.zeros(()))
    # float32: x + a·(2u − 1) rounds once more than the reference difference
    torch.testing.assert_close(seen[0] - clean, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(seen[0][1, 3:], clean[1, 3:])  # padding bit for bit
    assert torch.equal(position[0], model.embeddings.position_embeddings.weight[:6].unsqueeze(0))
    assert torch.equal(token_type[0], model.embeddings.token_type_embeddings.weight[torch.zeros_like(ids)])
    handle.remove()


@pytest.mark.parametrize("packing", ["position_ids", "cu_seq_lens"])
def test_gpt2_packed_documents_each_scaled_by_its_own_length(packing):
    model = _gpt2()
    embedding_noise(model, 10.0, seed=1)
    seen = _observe(model.transformer.wte)
    ids = torch.arange(1, 11).unsqueeze(0)
    sizes = [3, 5, 2]
    if packing == "position_ids":
        extra = {"position_ids": torch.cat([torch.arange(n) for n in sizes]).unsqueeze(0)}
    else:
        cu = torch.tensor([0, 3, 8, 10], dtype=torch.int32)
        extra = {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": 5, "max_length_k": 5}
    model.train()(ids, **extra)
    clean = model.transformer.wte.weight[ids].detach()
    lengths = torch.tensor([float(n) for n in sizes for _ in range(n)]).view(1, 10, 1)
    expected = 10.0 / torch.sqrt(lengths * D) * _unit(1, "transformer.wte", (10, D)).view(1, 10, D)
    torch.testing.assert_close(seen[0] - clean, expected, rtol=1e-5, atol=1e-6)


def test_length_padded_gives_the_trainer_hook_numbers():
    model = _gpt2()
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    clean = model.transformer.wte(ids).detach()
    host = nn.Module()
    host.neftune_noise_alpha = 5.0
    torch.manual_seed(7)
    reference = neftune_post_forward_hook(host, (ids,), clean)
    embedding_noise(model, 5.0, length="padded")  # no seed: torch's global generator, as transformers
    seen = _observe(model.transformer.wte)
    torch.manual_seed(7)
    model.train()(ids, attention_mask=torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]))
    # Same draws: bit for bit on this machine (the Trainer computes u·2m − m, noisereg (2u − 1)·m,
    # so the claim is equality to float rounding).
    torch.testing.assert_close(seen[0], reference, rtol=1e-6, atol=1e-6)
    torch.manual_seed(7)
    real = neftune(clean, 5.0, mask=torch.tensor([[0, 0, 0, 0], [0, 0, 1, 1]]).bool().unsqueeze(-1))
    assert not torch.allclose(real, reference)  # the default differs: the comparison is not void


def test_peft_wrapped_model_and_generate_without_noise():
    base = _gpt2()
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["c_attn"], lora_dropout=0.0))
    handle = embedding_noise(peft_model, 5.0, seed=0)
    assert handle.places == ["after 'transformer.wte'"]
    ids = torch.tensor([[1, 2, 3, 4]])
    peft_model.train()
    peft_model(input_ids=ids, attention_mask=torch.ones_like(ids))
    assert handle.layers[0].applied == 1
    noisy = peft_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
    assert handle.layers[0].applied == 1
    handle.remove()
    clean = peft_model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
    assert torch.equal(noisy, clean)


def test_attach_on_a_transformers_model_defaults_to_the_input_embeddings():
    model = _bert()
    handle = attach(model, NEFTune(5.0), at="embeddings", seed=0)
    assert handle.places == ["after 'embeddings.word_embeddings'"]


def test_embedding_noise_refuses_a_model_without_input_embeddings():
    with pytest.raises(TypeError, match="get_input_embeddings"):
        embedding_noise(nn.Linear(2, 2), 5.0)
    with pytest.raises(ValueError, match="length"):
        embedding_noise(_gpt2(), 5.0, length="batch")


class _Rows(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict:
        ids = torch.tensor([1 + i, 2, 3, 4, 5, 6])
        return {"input_ids": ids, "attention_mask": torch.ones(6, dtype=torch.long), "labels": ids}


def _arguments(tmp_path, **options) -> TrainingArguments:
    settings = dict(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    settings.update(options)
    return TrainingArguments(**settings)


def test_trainer_callback_attaches_for_training_only(tmp_path):
    model = _gpt2()
    callback = NEFTuneCallback(alpha=5.0, seed=0)
    counts: list[int] = []
    model.register_forward_hook(lambda m, a, out: counts.append(sum(layer.applied for layer in noise_layers(model))))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(model=model, args=_arguments(tmp_path), train_dataset=_Rows(), callbacks=[callback]).train()
    assert counts == [1, 2, 3]
    assert noise_layers(model) == [] and callback.handle is None
    assert not [w for w in caught if issubclass(w.category, UnusedNoiseWarning)]


def test_trainer_callback_refuses_the_trainers_own_neftune(tmp_path):
    with pytest.raises(ValueError, match="neftune_noise_alpha"):
        Trainer(
            model=_gpt2(),
            args=_arguments(tmp_path, neftune_noise_alpha=5.0),
            train_dataset=_Rows(),
            callbacks=[NEFTuneCallback(alpha=5.0)],
        )


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


class _Stop(TrainerCallback):
    """Raises ``error`` at the end of optimizer step ``at`` (after that step's checkpoint, if any)."""

    def __init__(self, at: int | None, error: BaseException) -> None:
        self.at, self.error = at, error

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise self.error

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at and args.save_strategy == "no":
            raise self.error


def _fails_in_forward(model: nn.Module, at_call: int) -> dict:
    """A forward pre-hook on the LM head that raises on call ``at_call`` while ``armed``."""
    calls = {"n": 0, "armed": True}

    def hook(module, args):
        calls["n"] += 1
        if calls["armed"] and calls["n"] == at_call:
            raise RuntimeError("a failing forward")

    model.lm_head.register_forward_pre_hook(hook)
    return calls


@pytest.mark.parametrize("where", ["forward", "callback", "interrupt"])
def test_an_exception_inside_train_leaves_the_model_clean_and_the_callback_reusable(tmp_path, where):
    model = _gpt2()
    callback = NEFTuneCallback(alpha=5.0, seed=0)
    error = {"forward": RuntimeError, "callback": RuntimeError, "interrupt": KeyboardInterrupt}[where]
    stop = _Stop(None if where == "forward" else 2, error())
    calls = _fails_in_forward(model, 2) if where == "forward" else None
    before = _hooks(model)
    trainer = Trainer(model=model, args=_arguments(tmp_path), train_dataset=_Rows(), callbacks=[callback, stop])
    with pytest.raises(error):
        trainer.train()
    assert noise_layers(model) == [] and _hooks(model) == before and callback.handle is None
    # the same trainer and callback train again, with noise, and end clean
    stop.at = None
    if calls is not None:
        calls["armed"] = False
    seen: list[int] = []
    model.register_forward_hook(lambda m, a, out: seen.append(sum(layer.applied for layer in noise_layers(model))))
    trainer.train()
    assert seen == [1, 2, 3] and noise_layers(model) == []


def test_a_callback_added_after_init_cleans_up_when_the_next_train_begins(tmp_path):
    model = _gpt2()
    stop = _Stop(2, RuntimeError("a failing callback"))
    trainer = Trainer(model=model, args=_arguments(tmp_path), train_dataset=_Rows(), callbacks=[stop])
    callback = NEFTuneCallback(alpha=5.0, seed=0)
    trainer.add_callback(callback)  # no on_init_end: this first train() is not wrapped
    with pytest.raises(RuntimeError, match="failing callback"):
        trainer.train()
    stop.at = None
    trainer.train()  # begins by removing what the failed one left, instead of refusing
    assert noise_layers(model) == [] and len(describe(model)) == 0
    stop.at = 1  # from here on train() is wrapped: an exception leaves the model clean at once
    with pytest.raises(RuntimeError, match="failing callback"):
        trainer.train()
    assert noise_layers(model) == []


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _six_steps(out, *, resume=None, seed: int = 0, stop_at: int | None = None, alpha=5.0) -> list[torch.Tensor]:
    model = _gpt2()
    args = _arguments(out, max_steps=6, save_strategy="steps", save_steps=3, seed=11)
    callbacks = [NEFTuneCallback(alpha=alpha, seed=seed), _Stop(stop_at, RuntimeError("interrupted"))]
    trainer = Trainer(model=model, args=args, train_dataset=_Rows(), callbacks=callbacks)
    if stop_at is None:
        trainer.train(resume_from_checkpoint=resume)
    else:
        with pytest.raises(RuntimeError, match="interrupted"):
            trainer.train()
    assert noise_layers(model) == []
    return _params(model)


@pytest.mark.bitwise
@pytest.mark.parametrize("resume", ["last checkpoint", "moved folder"])
def test_resume_from_checkpoint_at_step_3_of_6_equals_the_uninterrupted_run(tmp_path, resume):
    alpha = Linear(5.0, 15.0, steps=6)  # a schedule too: the resumed clock must continue it
    whole = _six_steps(tmp_path / "whole", alpha=alpha)
    _six_steps(tmp_path / "parts", stop_at=3, alpha=alpha)  # saves checkpoint-3, then raises
    checkpoint = tmp_path / "parts" / "checkpoint-3"
    assert (checkpoint / STATE_FILE).is_file()
    if resume == "moved folder":
        checkpoint = shutil.move(checkpoint, tmp_path / "elsewhere")
        resumed = _six_steps(tmp_path / "other", resume=str(checkpoint), alpha=alpha)
    else:
        resumed = _six_steps(tmp_path / "parts", resume=True, alpha=alpha)
    assert all(torch.equal(a, b) for a, b in zip(whole, resumed, strict=True))


def test_resume_without_the_noise_state_warns_and_differs(tmp_path):
    whole = _six_steps(tmp_path / "whole")
    _six_steps(tmp_path / "parts", stop_at=3)
    (tmp_path / "parts" / "checkpoint-3" / STATE_FILE).unlink()
    with pytest.warns(UserWarning, match="without NEFTuneCallback's noise state"):
        resumed = _six_steps(tmp_path / "parts", resume=True)
    assert not all(torch.equal(a, b) for a, b in zip(whole, resumed, strict=True))


def test_resume_with_another_seed_is_refused(tmp_path):
    _six_steps(tmp_path / "parts", stop_at=3)
    with pytest.raises(ValueError, match="resume with the same seed"):
        _six_steps(tmp_path / "parts", resume=True, seed=1)


class _Embedded(torch.utils.data.Dataset):
    """Batches of inputs_embeds: the model's input embeddings never run."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict:
        embeds = torch.randn(6, D, generator=torch.Generator().manual_seed(i))
        return {"inputs_embeds": embeds, "attention_mask": torch.ones(6, dtype=torch.long), "labels": torch.arange(6)}


def test_an_epoch_without_embedding_noise_warns_with_the_cause(tmp_path):
    callback = NEFTuneCallback(alpha=5.0, seed=0)
    trainer = Trainer(model=_gpt2(), args=_arguments(tmp_path), train_dataset=_Embedded(), callbacks=[callback])
    with pytest.warns(UnusedNoiseWarning, match="embeddings after 'transformer.wte' .* inputs_embeds"):
        trainer.train()
