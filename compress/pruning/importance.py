"""Importance criteria: each maps (model, calibration batches) to one score per head, KV group, neuron and layer.

Higher = more important. A criterion is one function registered in `CRITERIA`:

- magnitude:  L2 norm of the weights a unit owns (q/k/v rows and o columns; up/gate rows and the down column).
- taylor:     first-order Taylor, sum over batches of |dL/dm| for a mask m = 1 on the unit.
- fisher:     sum over batches of (dL/dm)^2, the empirical Fisher of the mask (Kwon et al. 2022).
- activation: ||unit activations||_2 x ||output-weight columns||_2 over calibration tokens (Wanda / FLAP-like).
- obs:        structured Optimal Brain Surgeon on each output projection's calibration Gram matrix (SlimGPT-like,
              `compress.pruning.obs`): units ranked by the output error their removal adds once the kept ones are
              re-fitted, so it pairs with `reconstruct`.
- random:     seeded uniform scores, a baseline (with calibration it records input means like the others, so
              bias compensation applies to it too).

Layers are scored by block influence, 1 - cos(layer input, layer output) over calibration tokens (ShortGPT), when a
criterion sees calibration data; otherwise by weight norm (magnitude) or at random.

Loss L: the model's own loss when batches carry labels; next-token loss for causal LMs; for a model without a task
head, the projection of its output on a fixed random Gaussian direction (its expected squared gradient is the Fisher
information of the output under a Gaussian observation model).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..models import get_adapter
from ..models.base import in_features
from ..progress import track
from .masks import apply_masks, forward_without_head, hook_unit_inputs, output_projections
from .obs import obs_scores
from .reconstruct import augmented_weight
from .record import attention_key, iter_layers, mlp_key


@dataclass
class Scores:
    heads: dict[str, torch.Tensor] = field(default_factory=dict)  # (num_heads,) per attention site
    kv_heads: dict[str, torch.Tensor] = field(default_factory=dict)  # (num_kv_heads,) per GQA site
    neurons: dict[str, torch.Tensor] = field(default_factory=dict)  # (num_neurons,) per MLP
    layers: dict[str, torch.Tensor] = field(default_factory=dict)  # (num_layers,) per stack
    # mean input of each output projection over calibration tokens, (features,): lets pruning fold the average
    # contribution of removed units into the bias (FLAP's bias compensation)
    input_means: dict[str, torch.Tensor] = field(default_factory=dict)


Criterion = Callable[[nn.Module, list | None], Scores]
CRITERIA: dict[str, Criterion] = {}
NEEDS_CALIBRATION: set[str] = set()


def register_criterion(name: str, needs_calibration: bool = False):
    def deco(fn: Criterion) -> Criterion:
        if name in CRITERIA:
            raise ValueError(f"criterion {name!r} is already registered")
        CRITERIA[name] = fn
        if needs_calibration:
            NEEDS_CALIBRATION.add(name)
        return fn

    return deco


def _in_sq(module: nn.Module) -> torch.Tensor:
    """Squared norm of the weights reading each input feature (Linear: (out, in); Conv1D: (in, out))."""
    w = module.weight.detach().float().pow(2)
    return w.sum(0) if isinstance(module, nn.Linear) else w.sum(1)


def _out_sq(module: nn.Module) -> torch.Tensor:
    """Squared norm of the weights (and bias) producing each output feature."""
    w = module.weight.detach().float().pow(2)
    sq = w.sum(1) if isinstance(module, nn.Linear) else w.sum(0)
    return sq + (module.bias.detach().float().pow(2) if module.bias is not None else 0)


def _group_sum(per_q: torch.Tensor, num_kv: int) -> torch.Tensor:
    return per_q.reshape(num_kv, -1).sum(1)


def _weight_scores(model: nn.Module) -> Scores:
    """Squared weight norms per unit (shared by `magnitude` and the layer fallback)."""
    adapter, s = get_adapter(model), Scores()
    per_layer: dict[str, list[float]] = {}
    for stack, pos, _, layer in iter_layers(model, adapter):
        total = 0.0
        for role, site in adapter.attentions(layer).items():
            key, hd = attention_key(stack, pos, role), site.head_dim
            o_sq = _in_sq(site.o)
            if site.qkv is None:
                q_sq, k_sq, v_sq = _out_sq(site.q), _out_sq(site.k), _out_sq(site.v)
            else:  # fused q|k|v along the output
                q_sq, k_sq, v_sq = _out_sq(site.qkv).chunk(3)
            per_q = (q_sq + o_sq).reshape(site.num_heads, hd).sum(1)
            per_kv = (k_sq + v_sq).reshape(site.num_kv_heads, hd).sum(1)
            if site.is_gqa:
                s.heads[key] = per_q
                s.kv_heads[key] = _group_sum(per_q, site.num_kv_heads) + per_kv
            else:
                s.heads[key] = per_q + per_kv
            total += float(per_q.sum()) + float(per_kv.sum())
        mlp = adapter.mlp(layer)
        per_n = _in_sq(mlp.output) + sum(_out_sq(m) for m in mlp.inputs)
        s.neurons[mlp_key(stack, pos)] = per_n
        per_layer.setdefault(stack, []).append(total + float(per_n.sum()))
    s.layers = {k: torch.tensor(v) for k, v in per_layer.items()}
    return s


@register_criterion("magnitude")
def magnitude(model: nn.Module, calibration=None) -> Scores:
    s = _weight_scores(model)
    s.heads = {k: v.sqrt() for k, v in s.heads.items()}
    s.kv_heads = {k: v.sqrt() for k, v in s.kv_heads.items()}
    s.neurons = {k: v.sqrt() for k, v in s.neurons.items()}
    if calibration:
        data = _calibration_pass(model, calibration, "activation")
        s.layers, s.input_means = data.layers, data.input_means
    return s


@register_criterion("random")
def random(model: nn.Module, calibration=None, seed: int = 0) -> Scores:
    g = torch.Generator().manual_seed(seed)
    s = _weight_scores(model)
    rand = lambda d: {k: torch.rand(v.shape, generator=g) for k, v in d.items()}  # noqa: E731
    out = Scores(heads=rand(s.heads), kv_heads=rand(s.kv_heads), neurons=rand(s.neurons), layers=rand(s.layers))
    if calibration:  # the ranking stays random; the input means let bias compensation work as for every criterion
        out.input_means = _calibration_pass(model, calibration, "activation").input_means
    return out


# --- calibration-based criteria -------------------------------------------------------------------------------------


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def _loss(model: nn.Module, batch: dict, step: int) -> torch.Tensor:
    """See the module docstring: task loss, next-token loss, or a random-projection (Gaussian Fisher) loss."""
    is_causal_lm = model.__class__.__name__.endswith("ForCausalLM") or model.__class__.__name__ == "GPT2LMHeadModel"
    if is_causal_lm and "labels" not in batch and "input_ids" in batch:
        labels = batch["input_ids"].clone()
        if "attention_mask" in batch:
            labels[batch["attention_mask"] == 0] = -100
        batch = {**batch, "labels": labels}
    out = model(**batch)
    if getattr(out, "loss", None) is not None:
        return out.loss
    y = out[0]  # last_hidden_state or logits: (B, T, D) or (B, C)
    z = torch.randn(y.shape, generator=torch.Generator().manual_seed(step), dtype=torch.float32).to(y.device, y.dtype)
    return (y * z).sum() / y.shape[0]


def _token_weights(batch: dict, x: torch.Tensor) -> torch.Tensor | None:
    """(B, T, 1) weights that drop padding from activation statistics, when shapes line up."""
    m = batch.get("attention_mask")
    if m is not None and x.dim() == 3 and tuple(m.shape) == tuple(x.shape[:2]):
        return m[..., None].to(x.dtype)
    return None


def _calibration_pass(model: nn.Module, calibration: Iterable[dict], mode: str) -> Scores:
    """One pass over calibration batches collecting mask gradients (taylor/fisher) or activation norms."""
    device = _device(model)
    points = output_projections(model)
    units = {k: in_features(m) // w for k, (m, w) in points.items()}
    acc = {k: torch.zeros(n) for k, n in units.items()}
    sums = {k: torch.zeros(n * points[k][1], dtype=torch.float64) for k, n in units.items()}
    # xᵀx of each projection's input, for obs only (float64: (in, in) per projection)
    grams = {k: torch.zeros(len(v), len(v), dtype=torch.float64) for k, v in sums.items() if mode == "obs"}
    forward_only = mode in ("activation", "obs")
    counts = dict.fromkeys(units, 0.0)
    layer_acc: dict[str, torch.Tensor] = {}
    reached: set[str] = set()  # sites whose mask got a gradient in at least one batch
    was_training = model.training
    model.eval()
    current: dict = {}

    def record(key, x):
        w = _token_weights(current, x)
        x = x.detach().float() * (w if w is not None else 1)
        flat = x.reshape(-1, x.shape[-1])
        sums[key] += flat.sum(0).double().cpu()
        counts[key] += float(w.sum()) if w is not None else flat.shape[0]
        if mode == "activation":
            acc[key] += flat.pow(2).reshape(-1, units[key], points[key][1]).sum((0, 2)).cpu()
        elif mode == "obs":  # float32 product per batch (half the time of float64), summed in float64
            grams[key] += (flat.t() @ flat).double().cpu()

    try:
        hooks = hook_unit_inputs(model, record)
        if not forward_only:
            masks = {k: torch.ones(n, device=device, requires_grad=True) for k, n in units.items()}
            hooks.handles += apply_masks(model, masks).handles  # masks of ones: statistics see the real input
        with hooks, _BlockInfluence(model, current) as bi:
            requires = {p: p.requires_grad for p in model.parameters()}
            for p in model.parameters():
                p.requires_grad_(False)  # gradients are needed for the masks only
            try:
                for step, batch in enumerate(track(list(calibration), description=f"scoring ({mode})")):
                    batch = _to(batch, device)
                    current.clear()
                    current.update(batch)
                    if forward_only:
                        with torch.no_grad():
                            # labels kept: seq2seq decoders build their inputs from them
                            forward_without_head(model, batch)
                        continue
                    loss = _loss(model, batch, step)
                    grads = torch.autograd.grad(loss, list(masks.values()), allow_unused=True)
                    for (k, _), g in zip(masks.items(), grads):
                        if g is None:  # this site does not reach the loss in this batch
                            continue
                        reached.add(k)
                        g = g.detach().float().cpu()
                        acc[k] += g.abs() if mode == "taylor" else g.pow(2)
            finally:
                for p, r in requires.items():
                    p.requires_grad_(r)
            layer_acc = bi.scores()
    finally:
        model.train(was_training)
    if mode == "activation":  # ||activation|| x ||output-weight columns of the unit||
        for k, (m, w) in points.items():
            col = _in_sq(m).reshape(-1, w).sum(1).sqrt()
            acc[k] = acc[k].sqrt() * col.cpu()
    if mode == "obs":
        for k, (m, w) in points.items():
            acc[k] = obs_scores(augmented_weight(m), _augmented_gram(grams.pop(k), sums[k], counts[k], m), units[k], w)
    if not forward_only and len(reached) < len(units):
        _magnitude_for_unreached(model, mode, acc, sorted(set(units) - reached), points)
    means = {k: (sums[k] / max(counts[k], 1.0)).float() for k in sums}
    return _split(model, acc, layer_acc, means)


def _augmented_gram(G: torch.Tensor, total: torch.Tensor, count: float, module: nn.Module) -> torch.Tensor:
    """[x 1]ᵀ[x 1] from xᵀx, the sum of x and the token count, matching `augmented_weight`'s bias row."""
    if module.bias is None:
        return G
    top = torch.cat([G, total[:, None]], 1)
    return torch.cat([top, torch.cat([total, torch.tensor([count], dtype=total.dtype)])[None]], 0)


def _magnitude_for_unreached(model: nn.Module, mode: str, acc: dict, missing: list[str], points: dict) -> None:
    """Sites whose mask got no gradient in any batch would score 0 and be pruned first, although the loss only failed
    to see them. Rank their units by weight magnitude instead, scaled to the mean gradient score of the units of the
    same kind (heads / neurons) that did get one, so that a global ranking neither favours nor sacrifices them; warn."""
    mag = magnitude(model)
    by_key = {**mag.heads, **mag.neurons}
    reached = [k for k in acc if k not in missing]
    for k in missing:
        kind = [r for r in reached if (points[r][1] > 1) == (points[k][1] > 1)]
        ref = torch.cat([acc[r] for r in kind]).mean() if kind else torch.tensor(1.0)
        m = by_key[k].float()
        acc[k] = m / m.mean().clamp_min(1e-12) * ref
    warnings.warn(
        f"{mode}: {len(missing)} site(s) got no gradient from the loss on the calibration data "
        f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}); their units are ranked by weight "
        "magnitude, scaled to the mean score of the other units, instead of scoring 0 and being pruned first",
        stacklevel=4,
    )


def _split(
    model: nn.Module, acc: dict[str, torch.Tensor], layers: dict[str, torch.Tensor], means: dict[str, torch.Tensor]
) -> Scores:
    adapter, s = get_adapter(model), Scores(layers=layers, input_means=means)
    for stack, pos, _, layer in iter_layers(model, adapter):
        for role, site in adapter.attentions(layer).items():
            key = attention_key(stack, pos, role)
            s.heads[key] = acc[key]
            if site.is_gqa:
                s.kv_heads[key] = _group_sum(acc[key], site.num_kv_heads)
        s.neurons[mlp_key(stack, pos)] = acc[mlp_key(stack, pos)]
    return s


class _BlockInfluence:
    """Forward hooks on every layer accumulating 1 - cos(input, output) over tokens (ShortGPT's block influence)."""

    def __init__(self, model: nn.Module, batch: dict):
        self.model, self.batch, self.handles = model, batch, []
        self.sums: dict[str, list[float]] = {}

    def __enter__(self):
        adapter = get_adapter(self.model)
        for stack, layers in adapter.stacks(self.model).items():
            self.sums[stack] = [0.0] * len(layers)
            for pos, layer in enumerate(layers):
                self.handles.append(layer.register_forward_hook(self._hook(stack, pos), with_kwargs=True))
        return self

    def _hook(self, stack, pos):
        def hook(module, args, kwargs, output):
            x = args[0] if args else kwargs.get("hidden_states")
            y = output[0] if isinstance(output, tuple) else output
            if not (torch.is_tensor(x) and torch.is_tensor(y)) or x.shape != y.shape:
                return
            cos = nn.functional.cosine_similarity(x.detach().float(), y.detach().float(), dim=-1)
            self.sums[stack][pos] += float((1 - cos).mean())

        return hook

    def scores(self) -> dict[str, torch.Tensor]:
        return {k: torch.tensor(v) for k, v in self.sums.items()}

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()


@register_criterion("taylor", needs_calibration=True)
def taylor(model: nn.Module, calibration) -> Scores:
    return _calibration_pass(model, calibration, "taylor")


@register_criterion("fisher", needs_calibration=True)
def fisher(model: nn.Module, calibration) -> Scores:
    return _calibration_pass(model, calibration, "fisher")


@register_criterion("activation", needs_calibration=True)
def activation(model: nn.Module, calibration) -> Scores:
    return _calibration_pass(model, calibration, "activation")


@register_criterion("obs", needs_calibration=True)
def obs(model: nn.Module, calibration) -> Scores:
    return _calibration_pass(model, calibration, "obs")
