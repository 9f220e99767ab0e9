"""The pruning record kept in `config.compress`: what survived, numbered as in the original model.

    config.compress = {
      "version": "0.1.0",
      "layers":  {"decoder": [0, 1, 3]},                         # kept original layers per stack (if any dropped)
      "heads":   {"decoder.3.self_attn": {"q": [...], "kv": [...]}},  # key: stack.original_layer.role
      "neurons": {"decoder.3.mlp": [...]},
      "history": [{"criterion": "fisher", "heads": 0.5, ...}],   # one entry per prune call
    }

Widths that are the same in every layer are also written to the standard config fields where the family's config can
express them (then plain `from_pretrained` loads the checkpoint); `rebuild` reshapes a freshly built model to the
record before its weights are loaded, which makes `compress.load` exact for every plan.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from ..version import __version__
from ..models import ModelAdapter, get_adapter
from ..models.base import AttentionSite
from .surgery import prune_attention, prune_mlp


def get_record(config, create: bool = False) -> dict | None:
    record = getattr(config, "compress", None)
    if record is None and create:
        record = {"version": __version__, "layers": {}, "heads": {}, "neurons": {}, "history": []}
        config.compress = record
    return record


def layer_origins(record: dict | None, stack: str, n: int) -> list[int]:
    """Original index of each current layer of `stack`."""
    kept = (record or {}).get("layers", {}).get(stack)
    return list(kept) if kept is not None else list(range(n))


def iter_layers(model: nn.Module, adapter: ModelAdapter) -> Iterator[tuple[str, int, int, nn.Module]]:
    """(stack, current position, original index, layer) for every layer."""
    record = get_record(model.config)
    for stack, layers in adapter.stacks(model).items():
        for pos, (orig, layer) in enumerate(zip(layer_origins(record, stack, len(layers)), layers)):
            yield stack, pos, orig, layer


def attention_key(stack: str, layer: int, role: str) -> str:
    return f"{stack}.{layer}.{role}"


def mlp_key(stack: str, layer: int) -> str:
    return f"{stack}.{layer}.mlp"


def sync_config(model: nn.Module, adapter: ModelAdapter) -> None:
    """Write widths that are equal in every layer of a stack into the standard config fields."""
    config = model.config
    by_stack: dict[str, dict[str, set]] = {}
    for stack, _, _, layer in iter_layers(model, adapter):
        s = by_stack.setdefault(stack, {"mlp": set(), "heads": set()})
        s["mlp"].add(adapter.mlp(layer).num_neurons)
        for site in adapter.attentions(layer).values():
            s["heads"].add((site.num_heads, site.num_kv_heads, site.head_dim))
    for stack, widths in by_stack.items():
        field = adapter.fields.mlp_width.get(stack)
        if field and len(widths["mlp"]) == 1:
            setattr(config, field, widths["mlp"].pop())
        head_fields = adapter.fields.heads.get(stack)
        if head_fields and adapter.explicit_head_dim and len(widths["heads"]) == 1:
            heads, kv, head_dim = widths["heads"].pop()
            config.head_dim = head_dim  # explicit, so head size no longer derives from hidden_size / heads
            setattr(config, head_fields[0], heads)
            setattr(config, head_fields[1], kv)


def _first_heads(site: AttentionSite, n_q: int, n_kv: int) -> tuple[list[int], list[int]]:
    """Positions to slice a freshly built site down to n_q / n_kv heads (weights are loaded afterwards)."""
    per_group = site.num_heads // site.num_kv_heads
    q_per_group = n_q // n_kv
    q = [g * per_group + j for g in range(n_kv) for j in range(q_per_group)]
    return q, list(range(n_kv))


def rebuild(model: nn.Module) -> None:
    """Reshape a model built from a pruned checkpoint's config to the recorded widths (before loading weights)."""
    record = get_record(model.config)
    if not record:
        return
    adapter = get_adapter(model)
    for stack, layers in adapter.stacks(model).items():
        kept_layers = record.get("layers", {}).get(stack)
        if kept_layers is not None and len(kept_layers) != len(layers):
            raise ValueError(f"config builds {len(layers)} {stack} layers but the record keeps {len(kept_layers)}")
    for stack, _, orig, layer in iter_layers(model, adapter):
        for role, site in adapter.attentions(layer).items():
            kept = record.get("heads", {}).get(attention_key(stack, orig, role))
            if kept is None:
                continue
            if site.num_heads != len(kept["q"]) or site.num_kv_heads != len(kept["kv"]):
                q, kv = _first_heads(site, len(kept["q"]), len(kept["kv"]))
                prune_attention(site, q, kv if site.is_gqa else None)
            adapter.set_head_counts(site, kept["q"])
        neurons = record.get("neurons", {}).get(mlp_key(stack, orig))
        mlp = adapter.mlp(layer)
        if neurons is not None and mlp.num_neurons != len(neurons):
            prune_mlp(mlp, list(range(len(neurons))))


def compose(old: list[int] | None, local: list[int]) -> list[int]:
    """Original indices of the kept `local` positions, given the original indices `old` of the current positions."""
    return [old[i] for i in local] if old is not None else [int(i) for i in local]
