"""Bias compensation (FLAP, An et al. 2024): fold the average contribution of removed heads/neurons into the output
projection's bias, so the pruned layer's output keeps its mean over calibration tokens. Free at inference time; only
for projections that have a bias (BERT-style, ViT, Whisper, GPT-2; Llama-family o/down have none)."""

from __future__ import annotations

import torch
from torch import nn

from ..models.base import head_rows, in_features
from .masks import output_projections
from .plan import PruningPlan


@torch.no_grad()
def compensate_bias(model: nn.Module, plan: PruningPlan, input_means: dict[str, torch.Tensor]) -> int:
    """Add W[:, removed] @ mean(x[removed]) to each output bias; returns how many projections were adjusted."""
    adjusted = 0
    for key, (module, width) in output_projections(model).items():
        kept = plan.heads.get(key) if width > 1 else plan.neurons.get(key)
        if kept is None or module.bias is None or key not in input_means:
            continue
        removed = sorted(set(range(in_features(module) // width)) - set(kept))
        if not removed:
            continue
        idx = head_rows(removed, width).to(module.weight.device)
        mean = input_means[key].to(module.weight.device, module.weight.dtype)[idx]
        w = module.weight.data
        module.bias.data += w[:, idx] @ mean if isinstance(module, nn.Linear) else mean @ w[idx, :]
        adjusted += 1
    return adjusted
