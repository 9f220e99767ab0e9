"""From scores and budgets to a `PruningPlan`: which heads, KV groups, neurons and layers to keep.

Budgets are fractions removed (heads / kv_heads / mlp), a layer count or fraction (layers), or a target parameter or
MAC count (solved for one common head+neuron fraction by bisection). `layout="uniform"` removes the same number in every
layer; `"global"` ranks units across layers (at least one head / `round_to` neurons stay in every layer);
`"adaptive"` removes the uniform total but spreads it by each layer's measured sensitivity (`adaptive.py` fills
`Budget.widths`; grouped-query attention heads stay uniform). Widths are rounded to a multiple of `round_to` (head
widths count head_dim per head).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import CompressError
from ..models import get_adapter
from ..models.base import in_features, out_features
from ..stats import attention_macs_per_token, linear_macs_per_token
from .importance import Scores
from .plan import PruningPlan
from .record import attention_key, iter_layers, mlp_key

LAYOUTS = ("uniform", "global", "adaptive")


@dataclass
class Budget:
    heads: float = 0.0
    kv_heads: float = 0.0
    mlp: float = 0.0
    layers: float | int = 0
    layout: str = "uniform"
    round_to: int = 1
    protect: list = field(default_factory=list)
    widths: dict = field(default_factory=dict)  # layout="adaptive": kept heads / neurons per site key (adaptive.py)

    def __post_init__(self):
        for name in ("heads", "kv_heads", "mlp"):
            r = getattr(self, name)
            if not isinstance(r, (int, float)) or not 0 <= r < 1:
                raise CompressError(name, f"ratio {r!r} is outside [0, 1)", "give the fraction to remove, e.g. 0.5")
        if (
            isinstance(self.layers, bool)
            or not isinstance(self.layers, (int, float))
            or self.layers < 0
            or (isinstance(self.layers, float) and self.layers >= 1)
        ):
            raise CompressError("layers", f"{self.layers!r} is not a layer count (int >= 0) or fraction in [0, 1)")
        if self.layout not in LAYOUTS:
            raise CompressError("layout", f"unknown layout {self.layout!r}", f"use one of {', '.join(LAYOUTS)}")
        if not isinstance(self.round_to, int) or self.round_to < 1:
            raise CompressError("round_to", f"{self.round_to!r} is not a positive integer", "use 1, 32, 64 or 128")

    def is_protected(self, stack: str, orig_layer: int) -> bool:
        return orig_layer in self.protect or f"{stack}.{orig_layer}" in self.protect


def _round_width(keep: int, multiple: int, total: int) -> int:
    """Nearest multiple of `multiple` (at least one multiple, at most everything)."""
    if multiple <= 1:
        return max(1, min(keep, total))
    rounded = max(multiple, int(round(keep / multiple)) * multiple)
    return total if rounded >= total else rounded


def _top(scores: torch.Tensor, k: int) -> list[int]:
    return sorted(torch.topk(scores.float(), k, largest=True, sorted=False).indices.tolist())


def _choose_layers(model, adapter, scores: Scores, budget: Budget) -> dict[str, list[int]]:
    plan: dict[str, list[int]] = {}
    if not budget.layers:
        return plan
    origins = {}
    for stack, _, orig, _ in iter_layers(model, adapter):
        origins.setdefault(stack, []).append(orig)
    for stack, orig in origins.items():
        n = len(orig)
        drop = budget.layers if isinstance(budget.layers, int) else int(round(budget.layers * n))
        candidates = [p for p in range(n) if not budget.is_protected(stack, orig[p])]
        if drop >= n or drop > len(candidates):
            raise CompressError(
                "layers",
                f"cannot remove {drop} of {n} {stack} layers ({n - len(candidates)} protected)",
                "remove fewer layers or protect fewer",
            )
        s = scores.layers[stack]
        dropped = sorted(candidates, key=lambda p: float(s[p]))[:drop]
        plan[stack] = [p for p in range(n) if p not in dropped]
    return plan


def _gqa_split(n_q: int, n_kv: int, keep_q: int, keep_kv: int, key: str) -> int:
    """Query heads per kept KV group, or a one-line error listing achievable head ratios."""
    per_group = n_q // n_kv
    if keep_q % keep_kv or not 1 <= keep_q // keep_kv <= per_group:
        ok = sorted({round(1 - keep_kv * j / n_q, 4) for j in range(1, per_group + 1)})
        raise CompressError(
            "heads",
            f"{keep_q} query heads cannot be spread equally over {keep_kv} KV groups at {key}",
            f"achievable `heads` ratios with this `kv_heads`: {ok}",
        )
    return keep_q // keep_kv


def _uniform_heads(site, scores: Scores, key: str, budget: Budget) -> tuple[list[int], list[int] | None]:
    n_q, hd = site.num_heads, site.head_dim
    step = budget.round_to // math.gcd(budget.round_to, hd)  # heads per width multiple
    keep_q = _round_width(n_q - int(round(budget.heads * n_q)), step, n_q)
    if not site.is_gqa:
        return _top(scores.heads[key], keep_q), None
    n_kv = site.num_kv_heads
    keep_kv = max(1, n_kv - int(round(budget.kv_heads * n_kv)))
    per_group = _gqa_split(n_q, n_kv, keep_q, keep_kv, key)
    return _gqa_pick(scores.heads[key], n_q // n_kv, _top(scores.kv_heads[key], keep_kv), per_group)


def _gqa_pick(head_scores, group_size, groups: list[int], per_group: int):
    q = []
    for g in groups:
        local = head_scores[g * group_size : (g + 1) * group_size]
        q += [g * group_size + j for j in _top(local, per_group)]
    return sorted(q), groups


def _global_select(units: dict[str, torch.Tensor], remove: int, min_keep: dict[str, int], field_name: str):
    """Remove the `remove` lowest-scored units across sites, keeping at least min_keep[key] in each."""
    pool = sorted(((float(v), key, i) for key, s in units.items() for i, v in enumerate(s)), key=lambda t: t[0])
    kept = {key: set(range(len(s))) for key, s in units.items()}
    removed = 0
    for _, key, i in pool:
        if removed == remove:
            break
        if len(kept[key]) > min_keep[key]:
            kept[key].discard(i)
            removed += 1
    if removed < remove:
        raise CompressError(
            field_name,
            f"cannot remove {remove} units while keeping the minimum in every layer",
            "lower the ratio or use layout=uniform",
        )
    return kept


def _global_heads(sites: dict, scores: Scores, budget: Budget):
    plan_q, plan_kv = {}, {}
    gqa = {k: s for k, s in sites.items() if s.is_gqa}
    if gqa and budget.kv_heads:
        total_kv = sum(s.num_kv_heads for s in gqa.values())
        kept_kv = _global_select(
            {k: scores.kv_heads[k] for k in gqa},
            int(round(budget.kv_heads * total_kv)),
            {k: 1 for k in gqa},
            "kv_heads",
        )
    else:
        kept_kv = {k: set(range(s.num_kv_heads)) for k, s in gqa.items()}
    total_q = sum(s.num_heads for s in sites.values())
    remove = int(round(budget.heads * total_q))
    # GQA sites drop whole "ranks" (the j-th weakest query head of every kept group) so groups stay equal
    units, min_keep, unit_size = {}, {}, {}
    for key, site in sites.items():
        if site.is_gqa:
            size = site.num_heads // site.num_kv_heads
            groups = sorted(kept_kv[key])
            remove -= (site.num_kv_heads - len(groups)) * size
            per_rank = torch.stack([scores.heads[key][g * size : (g + 1) * size].sort().values for g in groups]).sum(0)
            units[key], min_keep[key], unit_size[key] = per_rank, 1, len(groups)
        else:
            step = budget.round_to // math.gcd(budget.round_to, site.head_dim)
            units[key], min_keep[key], unit_size[key] = scores.heads[key], step, 1
    if remove < 0:
        raise CompressError(
            "heads",
            "removing the chosen KV groups already removes more query heads than `heads` asks",
            "raise `heads` to at least the fraction of query heads in the removed groups",
        )
    if all(u == 1 for u in unit_size.values()):
        kept = _global_select(units, remove, min_keep, "heads")
    else:  # weighted greedy by score per head removed; must land exactly on the budget
        kept = {k: set(range(len(u))) for k, u in units.items()}
        pool = sorted(((float(v) / unit_size[k], k, i) for k, u in units.items() for i, v in enumerate(u)))
        for _, k, i in pool:
            if remove >= unit_size[k] and len(kept[k]) > min_keep[k]:
                kept[k].discard(i)
                remove -= unit_size[k]
        if remove:
            raise CompressError(
                "heads",
                "the query-head budget cannot be met exactly with equal heads per KV group",
                "use a ratio that removes whole ranks of heads (a multiple of the KV group count)",
            )
    for key, site in sites.items():
        if site.is_gqa:
            size = site.num_heads // site.num_kv_heads
            groups = sorted(kept_kv[key])
            plan_q[key], plan_kv[key] = _gqa_pick(scores.heads[key], size, groups, len(kept[key]))
        else:
            step = budget.round_to // math.gcd(budget.round_to, site.head_dim)
            n = _round_width(len(kept[key]), step, site.num_heads)
            plan_q[key] = _top(scores.heads[key], n) if n != len(kept[key]) else sorted(kept[key])
    return plan_q, plan_kv


def build_plan(model: nn.Module, scores: Scores, budget: Budget) -> PruningPlan:
    """Turn scores into a plan that meets `budget` (see module docstring)."""
    adapter = get_adapter(model)
    plan = PruningPlan(layers=_choose_layers(model, adapter, scores, budget))
    att_sites, mlp_sites = {}, {}
    for stack, pos, orig, layer in iter_layers(model, adapter):
        if budget.is_protected(stack, orig) or (stack in plan.layers and pos not in plan.layers[stack]):
            continue
        for role, site in adapter.attentions(layer).items():
            att_sites[attention_key(stack, pos, role)] = site
        mlp_sites[mlp_key(stack, pos)] = adapter.mlp(layer)
    if budget.heads or budget.kv_heads:
        if budget.layout in ("uniform", "adaptive"):
            for key, site in att_sites.items():
                if key in budget.widths and not site.is_gqa:
                    plan.heads[key] = _top(scores.heads[key], budget.widths[key])
                    continue
                q, kv = _uniform_heads(site, scores, key, budget)
                plan.heads[key] = q
                if kv is not None:
                    plan.kv_heads[key] = kv
        else:
            plan.heads, plan.kv_heads = _global_heads(att_sites, scores, budget)
    if budget.mlp:
        if budget.layout in ("uniform", "adaptive"):
            for key, site in mlp_sites.items():
                n = site.num_neurons
                keep = budget.widths.get(key, _round_width(n - int(round(budget.mlp * n)), budget.round_to, n))
                plan.neurons[key] = _top(scores.neurons[key], keep)
        else:
            total = sum(s.num_neurons for s in mlp_sites.values())
            kept = _global_select(
                {k: scores.neurons[k] for k in mlp_sites},
                int(round(budget.mlp * total)),
                {k: budget.round_to for k in mlp_sites},
                "mlp",
            )
            for key, site in mlp_sites.items():
                n = _round_width(len(kept[key]), budget.round_to, site.num_neurons)
                plan.neurons[key] = _top(scores.neurons[key], n) if n != len(kept[key]) else sorted(kept[key])
    return plan


def plan_cost(model: nn.Module, plan: PruningPlan, seq_len: int = 128) -> tuple[int, int]:
    """(parameters, MACs per sequence of `seq_len` tokens) removed by `plan`, computed from module shapes."""
    adapter = get_adapter(model)
    params = macs = 0
    for stack, pos, _, layer in iter_layers(model, adapter):
        if stack in plan.layers and pos not in plan.layers[stack]:
            n = sum(p.numel() for p in layer.parameters())
            params += n
            macs += seq_len * (linear_macs_per_token(layer) + attention_macs_per_token(adapter, layer, seq_len))
            continue
        for role, site in adapter.attentions(layer).items():
            key = attention_key(stack, pos, role)
            if key not in plan.heads:
                continue
            hd, q_in = site.head_dim, in_features(site.qkv if site.qkv is not None else site.q)
            bias = 1 if (site.qkv if site.qkv is not None else site.q).bias is not None else 0
            gone_q = site.num_heads - len(plan.heads[key])
            gone_kv = (
                site.num_kv_heads - len(plan.kv_heads.get(key, range(site.num_kv_heads))) if site.is_gqa else gone_q
            )
            w = gone_q * hd * (q_in + out_features(site.o)) + gone_kv * 2 * hd * q_in
            params += w + (gone_q + 2 * gone_kv) * hd * bias
            macs += seq_len * (w + gone_q * 2 * seq_len * hd)
        if mlp_key(stack, pos) in plan.neurons:
            mlp = adapter.mlp(layer)
            gone = mlp.num_neurons - len(plan.neurons[mlp_key(stack, pos)])
            w = gone * (sum(in_features(m) for m in mlp.inputs) + out_features(mlp.output))
            params += w + gone * sum(1 for m in mlp.inputs if m.bias is not None)
            macs += seq_len * w
    return params, macs
