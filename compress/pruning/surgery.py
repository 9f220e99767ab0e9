"""Physical removal: slice projection weights, drop layers, and keep module attributes and config in step.

Every function here takes *local* indices (positions in the model as it is now). What was kept, numbered as in the
original model, is composed into `config.compress` (see `record.py`) so a saved model can be rebuilt exactly.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..models.base import AttentionSite, MlpSite, head_rows


def _param(t: torch.Tensor, like: nn.Parameter) -> nn.Parameter:
    return nn.Parameter(t.clone(), requires_grad=like.requires_grad)


def slice_out(module: nn.Module, idx: torch.Tensor) -> None:
    """Keep output features `idx` of a Linear or (transposed) Conv1D."""
    idx = idx.to(module.weight.device)
    if isinstance(module, Conv1D):  # weight: (in, out)
        module.weight = _param(module.weight.data.index_select(1, idx), module.weight)
        module.nf = len(idx)
    else:  # nn.Linear weight: (out, in)
        module.weight = _param(module.weight.data.index_select(0, idx), module.weight)
        module.out_features = len(idx)
    if module.bias is not None:
        module.bias = _param(module.bias.data.index_select(0, idx), module.bias)


def slice_in(module: nn.Module, idx: torch.Tensor) -> None:
    """Keep input features `idx` of a Linear or Conv1D (the bias is unaffected)."""
    idx = idx.to(module.weight.device)
    if isinstance(module, Conv1D):
        module.weight = _param(module.weight.data.index_select(0, idx), module.weight)
        module.nx = len(idx)
    else:
        module.weight = _param(module.weight.data.index_select(1, idx), module.weight)
        module.in_features = len(idx)


def prune_attention(site: AttentionSite, keep_q: list[int], keep_kv: list[int] | None = None) -> None:
    """Keep query heads `keep_q` (and KV heads `keep_kv` for grouped-query attention; else the same heads)."""
    hd = site.head_dim
    q_rows = head_rows(keep_q, hd)
    if site.qkv is not None:  # fused q|k|v along the output dimension
        width = site.num_heads * hd
        slice_out(site.qkv, torch.cat([q_rows, q_rows + width, q_rows + 2 * width]))
    else:
        kv_rows = head_rows(keep_kv if keep_kv is not None else keep_q, hd)
        slice_out(site.q, q_rows)
        slice_out(site.k, kv_rows)
        slice_out(site.v, kv_rows)
    slice_in(site.o, q_rows)


def prune_mlp(site: MlpSite, keep: list[int]) -> None:
    """Keep neurons `keep`: rows of every input projection (gate and up together), columns of the output one."""
    idx = torch.as_tensor(list(keep), dtype=torch.long)
    for module in site.inputs:
        slice_out(module, idx)
    slice_in(site.output, idx)


def drop_layers(layers: nn.ModuleList, keep: list[int]) -> None:
    """Keep layers `keep` of a stack and renumber `layer_idx` attributes (KV caches index layers by them)."""
    kept = [layers[i] for i in keep]
    for pos, layer in enumerate(kept):
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = pos
    for i in range(len(layers) - 1, -1, -1):
        del layers[i]
    layers.extend(kept)
