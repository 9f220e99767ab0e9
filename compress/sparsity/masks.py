"""Keep a sparsified model's zeros at zero while it trains (distillation): the zero pattern of every sparsified layer
is re-applied after each optimizer step, so KD recovers quality without filling the zeros back in."""

from __future__ import annotations

import torch
from torch import nn

from ..pruning.record import get_record


def zero_masks(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, where it is zero) for each layer the sparsity record names (missing names are skipped: a stack whose
    layers were dropped afterwards)."""
    entry = (get_record(model.config) or {}).get("sparsity")
    if not entry:
        return []
    modules = dict(model.named_modules())
    return [(modules[name].weight, modules[name].weight.detach() == 0) for name in entry["layers"] if name in modules]


def keep_zeros(model: nn.Module, optimizer: torch.optim.Optimizer):
    """Register a post-step hook on `optimizer` that zeroes the sparsified weights' zeros again; returns its handle
    (None when the model is not sparse). Call it again after the model's shapes change (gradual pruning)."""
    masks = zero_masks(model)
    if not masks:
        return None

    def reapply(opt, args, kwargs) -> None:
        with torch.no_grad():
            for weight, zero in masks:
                weight.masked_fill_(zero, 0.0)

    return optimizer.register_step_post_hook(reapply)
