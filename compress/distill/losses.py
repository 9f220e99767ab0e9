"""Distillation losses as small pure functions on tensors."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _masked_mean(per_position: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return per_position.mean()
    mask = mask.to(per_position.dtype)
    return (per_position * mask).sum() / mask.sum().clamp(min=1)


def kl_logits(student: torch.Tensor, teacher: torch.Tensor, temperature: float, mask: torch.Tensor | None = None):
    """KL(teacher || student) of softened distributions, x T^2 (Hinton et al.). Logits (..., V); mask (...)."""
    t = temperature
    log_p_s = F.log_softmax(student.float() / t, dim=-1)
    log_p_t = F.log_softmax(teacher.float() / t, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)  # (...)
    return _masked_mean(kl, mask) * t * t


def kl_topk(
    student: torch.Tensor,
    top_values: torch.Tensor,
    top_indices: torch.Tensor,
    temperature: float,
    mask: torch.Tensor | None = None,
):
    """KL on the teacher's top-k logits only (renormalised over those k): the cached form, memory O(k)."""
    t = temperature
    log_p_s = F.log_softmax(student.float() / t, dim=-1).gather(-1, top_indices.long())
    log_p_t = F.log_softmax(top_values.float() / t, dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    return _masked_mean(kl, mask) * t * t


def hidden_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str, mask: torch.Tensor | None = None):
    """Hidden states (B, T, D): mean squared error or 1 - cosine per position."""
    s, t = student.float(), teacher.float()
    per_pos = (s - t).pow(2).mean(-1) if kind == "mse" else 1 - F.cosine_similarity(s, t, dim=-1)
    return _masked_mean(per_pos, mask)


def embedding_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """1 - cos between pooled sentence embeddings (B, D)."""
    return (1 - F.cosine_similarity(student.float(), teacher.float(), dim=-1)).mean()
