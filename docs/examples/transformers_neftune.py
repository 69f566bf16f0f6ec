"""How-to: NEFTune on a Transformers model's word embeddings, padding untouched.

requires: transformers
"""

import torch
from transformers import BertConfig, BertForSequenceClassification

import noisereg

# A tiny model built from a configuration: nothing is downloaded.
config = BertConfig(
    vocab_size=100,
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=16,
    num_labels=2,
)
torch.manual_seed(0)
model = BertForSequenceClassification(config)
# Only the word embeddings (not positions or token types); the attention mask is read from the
# model's forward argument, so L is each sequence's real length and padding gets no noise.
handle = noisereg.attach(
    model,
    noisereg.NEFTune(alpha=5.0),
    at="embeddings",
    select="bert.embeddings.word_embeddings",
    mask="attention_mask",
    seed=0,
)

ids = torch.tensor([[5, 7, 9, 0], [3, 4, 0, 0]])
mask = (ids != 0).long()
model.train()
out = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1]))
out.loss.backward()
print(noisereg.describe(model))
handle.remove()
