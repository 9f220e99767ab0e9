"""What a model-family adapter answers: where the layers, attention projections and MLPs live.

Pruning, distillation and quantization only talk to models through these answers, so adding a family is one
file that subclasses `ModelAdapter` and registers itself (see `compress/models/__init__.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D


def out_features(module: nn.Module) -> int:
    return module.nf if isinstance(module, Conv1D) else module.out_features


def in_features(module: nn.Module) -> int:
    return module.nx if isinstance(module, Conv1D) else module.in_features


@dataclass
class AttentionSite:
    """One multi-head attention block. Head h owns rows [h*head_dim, (h+1)*head_dim) of q (and of k/v for its KV
    group) and the same columns of o. `qkv` is set instead of q/k/v when the projections are fused (GPT-2)."""

    module: nn.Module  # the attention module whose attributes must follow a slice
    o: nn.Module
    head_dim: int
    q: nn.Module | None = None
    k: nn.Module | None = None
    v: nn.Module | None = None
    qkv: nn.Module | None = None

    @property
    def num_heads(self) -> int:
        return in_features(self.o) // self.head_dim

    @property
    def num_kv_heads(self) -> int:
        if self.qkv is not None:
            return self.num_heads
        return out_features(self.k) // self.head_dim

    @property
    def is_gqa(self) -> bool:
        return self.num_kv_heads != self.num_heads


@dataclass
class MlpSite:
    """A feed-forward block: `inputs` (up, and gate for gated MLPs) produce the neurons, `output` (down) reads them."""

    inputs: list[nn.Module]
    output: nn.Module

    @property
    def num_neurons(self) -> int:
        return in_features(self.output)


@dataclass
class ConfigFields:
    """Config names a family uses, per layer stack, so a uniform plan can be written as a standard config."""

    num_layers: dict[str, str]
    mlp_width: dict[str, str] = field(default_factory=dict)
    # (query-heads field, kv-heads field) for families whose config has an explicit head_dim
    heads: dict[str, tuple[str, str]] = field(default_factory=dict)


# attributes attention modules keep about their own width; set after a slice so forward code stays consistent
_HEAD_COUNT_ATTRS = ("num_heads", "num_attention_heads", "n_heads")


class ModelAdapter:
    """Structural knowledge about one model family. Subclasses fill in the class attributes and two methods."""

    name: str = "base"
    model_types: tuple[str, ...] = ()
    fields: ConfigFields
    explicit_head_dim: bool = False  # config carries head_dim, so uniform head counts fit a standard config

    def stacks(self, model: nn.Module) -> dict[str, nn.ModuleList]:
        """Ordered layer stacks of the base model, e.g. {"encoder": ..., "decoder": ...}."""
        raise NotImplementedError

    def attentions(self, layer: nn.Module) -> dict[str, AttentionSite]:
        """Attention blocks in one layer by role ("self_attn", "cross_attn")."""
        raise NotImplementedError

    def mlp(self, layer: nn.Module) -> MlpSite:
        raise NotImplementedError

    def post_norms(self, layer: nn.Module) -> dict[str, nn.Module]:
        """Post-norm blocks (BERT-style): the norm applied to (sublayer output + residual), by sublayer role ("mlp"
        for the MLP). The refit then matches the dense norm's input, so it also cancels residual-stream drift. Pre-norm
        blocks return {} (their residual stream is checked from the layer's own input and output)."""
        return {}

    def set_head_counts(self, site: AttentionSite, original_kept: list[int]) -> None:
        """Bring attention attributes in step after its heads were sliced. `original_kept` are the kept heads
        numbered as in the unpruned model (some families, e.g. MPNet, index shared tensors by them)."""
        heads, kv = site.num_heads, site.num_kv_heads
        for attr in _HEAD_COUNT_ATTRS:
            if isinstance(getattr(site.module, attr, None), int):
                setattr(site.module, attr, heads)
        if hasattr(site.module, "all_head_size"):
            site.module.all_head_size = heads * site.head_dim
        if hasattr(site.module, "split_size"):
            site.module.split_size = heads * site.head_dim
        if hasattr(site.module, "num_key_value_groups"):
            site.module.num_key_value_groups = heads // kv

    def set_num_layers(self, config, stack: str, kept: list[int]) -> None:
        """Record in the config that `stack` keeps the layers at current positions `kept`."""
        setattr(config, self.fields.num_layers[stack], len(kept))

    def base_model(self, model: nn.Module) -> nn.Module:
        return getattr(model, "base_model", model)


def head_rows(heads, head_dim: int) -> torch.Tensor:
    """Row indices of a projection that belong to `heads`: (len(heads) * head_dim,)."""
    heads = torch.as_tensor(list(heads), dtype=torch.long)
    return (heads[:, None] * head_dim + torch.arange(head_dim)[None, :]).reshape(-1)
