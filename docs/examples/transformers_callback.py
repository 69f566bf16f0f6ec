"""How-to: NEFTune in a transformers Trainer with NEFTuneCallback, in place of neftune_noise_alpha;
removed on any exit of train(), resumed from a checkpoint.

requires: transformers
"""

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

import noisereg
from noisereg.integrations.transformers import NEFTuneCallback


def tiny_model() -> GPT2LMHeadModel:
    # A tiny model built from a configuration: nothing is downloaded.
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2, n_positions=16))


class Rows(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict:
        ids = torch.tensor([1 + i, 2, 3, 4, 0, 0])
        mask = torch.tensor([1, 1, 1, 1, 0, 0])  # L = 4 real tokens; the padding gets no noise
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def train(folder: str, resume: str | None = None) -> GPT2LMHeadModel:
    args = TrainingArguments(
        output_dir=folder,
        max_steps=4,
        per_device_train_batch_size=4,
        use_cpu=True,
        report_to=[],
        save_strategy="steps",
        save_steps=2,  # each checkpoint folder also holds the callback's noise state, noisereg_noise.pt
        logging_strategy="no",
        disable_tqdm=True,
    )
    model = tiny_model()
    # Attached at on_train_begin; removed when train() returns or raises (an exception or Ctrl-C
    # leaves the model clean, and the callback ready for the next train()).
    callback = NEFTuneCallback(alpha=5.0, seed=0)
    Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[callback]).train(resume_from_checkpoint=resume)
    return model


whole = train("neftune-out")
print(noisereg.noise_layers(whole))  # [] : generate() and evaluation after training are noise-free
# Resuming at step 2 of 4 restores the noise stream too: the same weights as the uninterrupted run.
resumed = train("neftune-resumed", resume="neftune-out/checkpoint-2")
print(all(torch.equal(a, b) for a, b in zip(whole.parameters(), resumed.parameters(), strict=True)))  # True
