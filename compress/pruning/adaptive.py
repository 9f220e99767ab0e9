"""`layout="adaptive"`: the uniform budget, spread over layers by how much each layer's cut hurts.

Sensitivity of a sublayer (attention or MLP output projection): prune that sublayer alone at the target ratio (its
uniform kept set, chosen by the criterion's scores), refit its kept columns by ridge least squares on calibration
tokens (as `reconstruct` does), and measure the remaining output error, relative to the energy of the residual stream
entering the layer (so that errors are comparable across layers). Everything comes from one forward pass of the
unpruned model: the Gram matrix G = [x 1]ᵀ[x 1] of each projection's input gives the error of any kept set in closed
form (the target is the projection's own output Y = [x 1]·W, so XᵀY = G·W).

The total removed (heads, and separately neurons) equals the uniform layout's; each site's share moves away from the
common ratio r by up to ±`spread` (default 0.2) in proportion to its log-sensitivity's deviation from the mean: less
removed where it hurts, more where it doesn't. Widths stay multiples of `round_to`; grouped-query attention heads stay
uniform (equal heads per KV group, and a standard config).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from ..models import get_adapter
from ..models.base import head_rows
from ..progress import track
from .budget import Budget, build_plan
from .importance import Scores
from .masks import forward_without_head, hook_unit_inputs, output_projections
from .reconstruct import _to, _token_mask, augmented_weight, fit_error, ridge_refit
from .record import attention_key, iter_layers, mlp_key


def spread_budget(sizes: dict[str, int], remove: int, sensitivity: dict[str, float], spread: float = 0.2) -> dict:
    """Units to remove per site (integers summing to `remove`, each in [0, size - 1]): ratio r - spread·z, where z is
    the site's centred log-sensitivity scaled to [-1, 1], shifted by one common offset to meet the total exactly."""
    keys = list(sizes)
    if not keys:
        return {}
    total = sum(sizes.values())
    r = remove / total
    logs = {k: math.log(max(sensitivity.get(k, 0.0), 1e-30)) for k in keys}
    mean = sum(logs.values()) / len(keys)
    scale = max(abs(v - mean) for v in logs.values()) or 1.0
    z = {k: (logs[k] - mean) / scale for k in keys}
    hi = {k: sizes[k] - 1 for k in keys}

    def amounts(shift: float) -> dict[str, float]:
        return {k: min(max(sizes[k] * (r - spread * z[k] + shift), 0.0), hi[k]) for k in keys}

    lo_s, hi_s = -1.0 - spread, 1.0 + spread
    for _ in range(60):  # bisection on the common shift: sum(amounts) is monotone in it
        mid = (lo_s + hi_s) / 2
        lo_s, hi_s = (mid, hi_s) if sum(amounts(mid).values()) < remove else (lo_s, mid)
    x = amounts(hi_s)
    out = {k: int(math.floor(v)) for k, v in x.items()}
    order = sorted(keys, key=lambda k: x[k] - out[k], reverse=True)  # largest remainders first
    i = 0
    while sum(out.values()) < remove and i < 10 * len(keys):
        k = order[i % len(keys)]
        if out[k] < hi[k]:
            out[k] += 1
        i += 1
    while sum(out.values()) > remove:  # only possible through rounding at the bounds
        k = max((k for k in keys if out[k] > 0), key=lambda k: out[k] - x[k])
        out[k] -= 1
    return out


@torch.no_grad()
def sensitivities(
    model: nn.Module, calibration: Iterable[dict], kept: dict[str, torch.Tensor], ridge: float = 1e-2
) -> dict[str, float]:
    """Relative output error of each site in `kept` (key -> kept input features of its output projection) when it
    alone is cut to those features and refit; see the module docstring."""
    adapter = get_adapter(model)
    points = output_projections(model)
    grams: dict[str, torch.Tensor] = {}
    energy: dict[str, float] = {}
    layer_of = {}
    for stack, pos, _, layer in iter_layers(model, adapter):
        for key in [attention_key(stack, pos, r) for r in adapter.attentions(layer)] + [mlp_key(stack, pos)]:
            layer_of[key] = (stack, pos, layer)
    current: dict = {}

    def gram(key, x):
        keep = _token_mask(current, x)
        flat = x.detach().reshape(-1, x.shape[-1]).float().cpu()
        flat = flat[keep] if keep is not None else flat
        if points[key][0].bias is not None:
            flat = torch.cat([flat, torch.ones(flat.shape[0], 1, dtype=flat.dtype)], 1)
        # float32: a site's error is an estimate that ranks sites; half the memory of float64 over every site
        grams[key] = grams.get(key, 0) + flat.t() @ flat

    layers = {(s, p): layer for s, p, layer in layer_of.values()}
    handles = []
    for (stack, pos), layer in layers.items():

        def pre(module, args, kwargs, name=f"{stack}.{pos}"):
            h = args[0] if args else kwargs["hidden_states"]
            keep = _token_mask(current, h)
            flat = h.detach().reshape(-1, h.shape[-1]).double().cpu()
            flat = flat[keep] if keep is not None else flat
            energy[name] = energy.get(name, 0.0) + float((flat * flat).sum())

        handles.append(layer.register_forward_pre_hook(pre, with_kwargs=True))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with hook_unit_inputs(model, gram, keys=set(kept)):
            for batch in track(list(calibration), description="measuring layer sensitivity"):
                current.clear()
                current.update(batch)
                forward_without_head(model, _to(batch, device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out = {}
    for key, features in kept.items():
        G, module = grams.pop(key).double(), points[key][0]
        W = augmented_weight(module)
        idx = features.tolist() + ([W.shape[0] - 1] if module.bias is not None else [])
        idx_t = torch.as_tensor(idx)
        G_k, C_k = G[idx_t][:, idx_t], G[idx_t] @ W
        W_k, _ = ridge_refit(G_k, C_k, W[idx_t], ridge)
        err = fit_error(G_k, C_k, float((W * (G @ W)).sum()), W_k)
        stack, pos, _ = layer_of[key]
        out[key] = max(err, 0.0) / max(energy.get(f"{stack}.{pos}", 0.0), 1e-30)
    return out


def adaptive_widths(model: nn.Module, scores: Scores, budget: Budget, calibration: list[dict]) -> tuple[dict, dict]:
    """(kept heads / neurons per site key, sensitivity per site key) for `budget` with layout="adaptive"."""
    uniform = build_plan(model, scores, Budget(**{**budget.__dict__, "layout": "uniform", "widths": {}}))
    adapter = get_adapter(model)
    sites = {}
    for stack, pos, _, layer in iter_layers(model, adapter):
        for role, site in adapter.attentions(layer).items():
            sites[attention_key(stack, pos, role)] = site
    kept, steps, sizes = {}, {}, {}
    for key, heads in uniform.heads.items():
        site = sites[key]
        if site.is_gqa:
            continue
        kept[key] = head_rows(heads, site.head_dim)
        steps[key] = budget.round_to // math.gcd(budget.round_to, site.head_dim)  # heads per width multiple
        sizes[key] = site.num_heads
    for key, neurons in uniform.neurons.items():
        kept[key] = torch.as_tensor(neurons)
        steps[key] = budget.round_to
        sizes[key] = len(scores.neurons[key])
    if not kept:
        return {}, {}
    sens = sensitivities(model, calibration, kept)
    widths = {}
    for pool in (set(uniform.heads) & set(kept), set(uniform.neurons)):
        pool = sorted(pool)
        if not pool:
            continue
        blocks = {k: sizes[k] // steps[k] for k in pool}  # whole width multiples a site can lose
        uniform_keep = {k: len(uniform.heads.get(k) or uniform.neurons.get(k)) for k in pool}
        remove = {k: (sizes[k] - uniform_keep[k]) // steps[k] for k in pool}
        if any(sizes[k] % steps[k] or (sizes[k] - uniform_keep[k]) % steps[k] for k in pool):
            continue  # widths not on the round_to grid (e.g. rounded up to the full width): keep uniform
        removed = spread_budget(blocks, sum(remove.values()), {k: sens[k] for k in pool})
        widths.update({k: sizes[k] - removed[k] * steps[k] for k in pool})
    return widths, sens
