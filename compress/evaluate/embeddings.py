"""Sentence-embedding fidelity: mean-pooled, L2-normalised embeddings (as sentence-transformers' all-MiniLM-L6-v2),
compared by cosine similarity with the dense model's embeddings of the same sentences."""

from __future__ import annotations

import torch
from torch import nn


def mean_pool(last_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, D), (B, T) -> (B, D) L2-normalised mean over real tokens."""
    m = attention_mask[..., None].to(last_hidden.dtype)
    pooled = (last_hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return nn.functional.normalize(pooled, dim=-1)


@torch.inference_mode()
def embed(model: nn.Module, batches: list[dict]) -> torch.Tensor:
    model.eval()
    out = []
    for b in batches:
        inputs = {k: v for k, v in b.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = model(**inputs)[0]
        out.append(mean_pool(hidden.float(), b["attention_mask"]))
    return torch.cat(out)


def cosine_fidelity(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """Mean cosine similarity between matching rows."""
    return float(nn.functional.cosine_similarity(reference, candidate, dim=-1).mean())
