"""Head and neuron masks applied at the input of the output projections (o / down), through forward pre-hooks.

Zeroing the input columns of o-proj for a head is exactly "this head's output is removed", and zeroing a down-proj input
is "this neuron is removed", so a masked dense model must equal the physically pruned one. The same hook points give
gradient-based importance (the gradient of the loss w.r.t. a mask of ones, Kwon et al. 2022) and activation norms.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..models import get_adapter
from ..models.base import in_features
from .record import attention_key, iter_layers, mlp_key


class HookSet:
    """Handles of registered hooks; use as a context manager so they are always removed."""

    def __init__(self):
        self.handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles.clear()


class StopForward(Exception):
    """Raised from a hook to end a forward pass once what is needed has been seen."""


def forward_without_head(model: nn.Module, batch: dict) -> None:
    """model(**batch) for statistics of its layers, stopped where the output embeddings (an LM head) would run: their
    logits, (tokens, vocabulary), are by far the largest activation and no layer statistic needs them (32 x 256
    tokens of SmolLM2: 1.6 GB of float32 logits)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, nn.Module):
        model(**batch)
        return

    def stop(module, args):
        raise StopForward

    handle = head.register_forward_pre_hook(stop)
    try:
        model(**batch)
    except StopForward:
        pass
    finally:
        handle.remove()


def output_projections(model: nn.Module) -> dict[str, tuple[nn.Module, int]]:
    """key -> (module whose input carries the units, width of one unit): head_dim for attention, 1 for MLPs."""
    adapter = get_adapter(model)
    points = {}
    for stack, pos, _, layer in iter_layers(model, adapter):
        for role, site in adapter.attentions(layer).items():
            points[attention_key(stack, pos, role)] = (site.o, site.head_dim)
        points[mlp_key(stack, pos)] = (adapter.mlp(layer).output, 1)
    return points


def hook_unit_inputs(
    model: nn.Module, fn: Callable[[str, torch.Tensor], torch.Tensor | None], keys: set[str] | None = None
) -> HookSet:
    """Call fn(key, x) with the input of each output projection, x: (..., units * unit_width); a returned tensor
    replaces the input."""
    hooks = HookSet()
    for key, (module, _) in output_projections(model).items():
        if keys is not None and key not in keys:
            continue

        def pre(module, args, key=key):
            new = fn(key, args[0])
            return None if new is None else (new, *args[1:])

        hooks.handles.append(module.register_forward_pre_hook(pre))
    return hooks


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> HookSet:
    """Multiply each unit (head or neuron) by masks[key] (shape: (units,)). Returns the hooks to remove."""
    widths = {k: w for k, (_, w) in output_projections(model).items()}

    def scale(key, x):
        m = masks[key].to(x.dtype).repeat_interleave(widths[key])
        return x * m

    return hook_unit_inputs(model, scale, keys=set(masks))


def keep_masks(model: nn.Module, plan) -> dict[str, torch.Tensor]:
    """0/1 masks equivalent to a PruningPlan's head and neuron choices (for checks against the pruned model)."""
    masks = {}
    for key, (module, width) in output_projections(model).items():
        kept = plan.heads.get(key) if width > 1 else plan.neurons.get(key)
        if kept is None:
            continue
        units = in_features(module) // width
        m = torch.zeros(units)
        m[list(kept)] = 1.0
        masks[key] = m
    return masks
