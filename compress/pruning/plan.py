"""`PruningPlan`: plain data saying what to keep, and `apply_plan`, which performs it and records it in the config."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import nn

from ..models import get_adapter
from .record import attention_key, compose, get_record, iter_layers, mlp_key, sync_config
from .surgery import drop_layers, prune_attention, prune_mlp


@dataclass
class PruningPlan:
    """Kept units in *current* positions. Keys: `stack.layer.role` for attention, `stack.layer.mlp` for MLPs.

    Sites missing from a dict are left untouched. `kv_heads` is filled only for grouped-query attention."""

    heads: dict[str, list[int]] = field(default_factory=dict)
    kv_heads: dict[str, list[int]] = field(default_factory=dict)
    neurons: dict[str, list[int]] = field(default_factory=dict)
    layers: dict[str, list[int]] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)  # budgets asked for and reached, criterion, timings

    def to_dict(self) -> dict:
        return asdict(self)


def apply_plan(model: nn.Module, plan: PruningPlan) -> None:
    """Slice the model in place as `plan` says, then record the kept original indices in `config.compress`."""
    adapter = get_adapter(model)
    record = get_record(model.config, create=True)
    for stack, pos, orig, layer in list(iter_layers(model, adapter)):
        for role, site in adapter.attentions(layer).items():
            local_key, orig_key = attention_key(stack, pos, role), attention_key(stack, orig, role)
            if local_key not in plan.heads:
                continue
            keep_q, keep_kv = plan.heads[local_key], plan.kv_heads.get(local_key)
            if site.is_gqa and keep_kv is None:
                keep_kv = list(range(site.num_kv_heads))
            old = record["heads"].get(orig_key, {})
            new = {"q": compose(old.get("q"), keep_q), "kv": compose(old.get("kv"), keep_kv if site.is_gqa else keep_q)}
            prune_attention(site, keep_q, keep_kv if site.is_gqa else None)
            adapter.set_head_counts(site, new["q"])
            record["heads"][orig_key] = new
        local_key, orig_key = mlp_key(stack, pos), mlp_key(stack, orig)
        if local_key in plan.neurons:
            prune_mlp(adapter.mlp(layer), plan.neurons[local_key])
            record["neurons"][orig_key] = compose(record["neurons"].get(orig_key), plan.neurons[local_key])
    for stack, keep in plan.layers.items():
        layers = adapter.stacks(model)[stack]
        origins = record["layers"].get(stack)
        record["layers"][stack] = compose(origins, keep)
        dropped = set(compose(origins, range(len(layers)))) - set(record["layers"][stack])
        drop_layers(layers, keep)
        adapter.set_num_layers(model.config, stack, keep)  # local positions: config lists are current
        for key in [
            k for k in (*record["heads"], *record["neurons"]) if k.startswith(stack + ".") and _layer_of(k) in dropped
        ]:
            record["heads"].pop(key, None)
            record["neurons"].pop(key, None)
    sync_config(model, adapter)


def plan_to_match(model: nn.Module, target: dict):
    """The PruningPlan (local positions) that brings `model` to the widths of another pruning record `target`
    (used to rebuild a gradually pruned student before restoring its checkpoint). Layer drops are not replayed."""
    adapter = get_adapter(model)
    current = get_record(model.config) or {}
    plan = PruningPlan()
    for stack, pos, orig, layer in iter_layers(model, adapter):
        for role, site in adapter.attentions(layer).items():
            key = attention_key(stack, orig, role)
            want = target.get("heads", {}).get(key)
            have = current.get("heads", {}).get(key) or {
                "q": list(range(site.num_heads)),
                "kv": list(range(site.num_kv_heads)),
            }
            if want is not None and want["q"] != have["q"]:
                plan.heads[attention_key(stack, pos, role)] = [have["q"].index(h) for h in want["q"]]
                if site.is_gqa:
                    plan.kv_heads[attention_key(stack, pos, role)] = [have["kv"].index(h) for h in want["kv"]]
        want = target.get("neurons", {}).get(mlp_key(stack, orig))
        have = current.get("neurons", {}).get(mlp_key(stack, orig)) or list(range(adapter.mlp(layer).num_neurons))
        if want is not None and want != have:
            plan.neurons[mlp_key(stack, pos)] = [have.index(n) for n in want]
    return plan


def _layer_of(key: str) -> int:
    return int(key.split(".")[1])
