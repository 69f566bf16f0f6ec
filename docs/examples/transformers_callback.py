"""How-to: NEFTune in a transformers Trainer with NEFTuneCallback, in place of neftune_noise_alpha.

requires: transformers
"""

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

import noisereg
from noisereg.integrations.transformers import NEFTuneCallback

# A tiny model built from a configuration: nothing is downloaded.
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=2, n_positions=16))


class Rows(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict:
        ids = torch.tensor([1 + i, 2, 3, 4, 0, 0])
        mask = torch.tensor([1, 1, 1, 1, 0, 0])  # L = 4 real tokens; the padding gets no noise
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


args = TrainingArguments(
    output_dir="neftune-out",
    max_steps=2,
    per_device_train_batch_size=4,
    use_cpu=True,
    report_to=[],
    save_strategy="no",
    logging_strategy="no",
    disable_tqdm=True,
)
callback = NEFTuneCallback(alpha=5.0, seed=0)  # attached at on_train_begin, removed at on_train_end
Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[callback]).train()
print(noisereg.noise_layers(model))  # [] : generate() and evaluation after training are noise-free
