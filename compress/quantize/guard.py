"""Quantization with a fidelity guard: quantize, compare with the float input on calibration batches, and when the
result is beyond the limits, fall back to safer configurations until one holds:

  1. int8-dynamic per-tensor -> per-token (one activation scale per token: an outlier token no longer crushes the
     rest of the call);
  2. keep the layers whose outputs moved most in float: the worst 1, 2, 4, ... of them, up to half.

    model, summary = quantize_with_guard(model, "int8-dynamic", {"granularity": "per-tensor"}, batches)
    summary["fallback"]   # e.g. "per-tensor -> per-token: perplexity x2.65 -> x1.03" (None when none was needed)

If none holds, the closest configuration is kept and the summary's warning names the damage. `fallback=False` only
measures and warns. The recipe's quantize stage calls this (`compress.recipe.guard`).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..evaluate import fidelity


@torch.inference_mode()
def layer_errors(before: nn.Module, quantized: nn.Module, names: list[str], batches: list[dict]) -> dict[str, float]:
    """Relative output error ||y_q - y|| / ||y|| of each quantized layer, y being the float layer of `before` applied to
    the same input (what the quantized layer saw while `quantized` ran on the batches)."""
    err = {n: 0.0 for n in names}
    norm = {n: 0.0 for n in names}

    def hook(name):
        float_layer = before.get_submodule(name)

        def compare(module, args, out):
            y = float_layer(args[0].to(float_layer.weight.dtype)).float()
            err[name] += float((out.float() - y).pow(2).sum())
            norm[name] += float(y.pow(2).sum())

        return compare

    handles = [quantized.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    try:
        for b in batches:
            quantized(**fidelity._inputs(quantized, b))
    finally:
        for h in handles:
            h.remove()
    return {n: math.sqrt(err[n] / max(norm[n], 1e-30)) for n in names}


def _label(method: str, options: dict, record: dict) -> str:
    used = record.get("options", {})
    parts = [method]
    if "granularity" in used:
        parts.append(used["granularity"])
    floats = len(used.get("skip", ())) - len(options.get("skip", ()) or ())
    if floats > 0:
        parts.append(f"{floats} layer(s) kept in float")
    return " ".join(parts)


class _Attempts:
    """Quantizes configurations of one float model and keeps the closest result so far (one model in memory)."""

    def __init__(self, before, method, options, batches, limits):
        self.before, self.method, self.options, self.batches, self.limits = before, method, options, batches, limits
        self.tried: list[dict] = []
        self.best = None  # (model, numbers, index into tried)

    def run(self, opts: dict, source: nn.Module | None = None) -> bool:
        """Quantize with `opts` (a copy of the float model unless `source` is given); True if within the limits."""
        from . import quantize

        source = source if source is not None else copy.deepcopy(self.before)
        q = quantize(source, self.method, calibration=self.batches, limits=self.limits, **opts)
        record = q.config.compress["quantization"]
        numbers = fidelity.compare(self.before, q, self.batches)
        self.tried.append({"config": _label(self.method, self.options, record), "options": opts, **numbers})
        ok = not fidelity.problems(numbers, self.limits)
        if self.best is None or ok or fidelity.damage(numbers) < fidelity.damage(self.best[1]):
            self.best = (q, numbers, len(self.tried) - 1)
        return ok


def quantize_with_guard(
    model: nn.Module,
    method: str,
    options: dict,
    batches: list[dict],
    limits: fidelity.Limits | None = None,
    fallback: bool = True,
) -> tuple[nn.Module, dict]:
    """(quantized model, summary): the summary holds `fidelity` (the kept model's numbers and verdict), `attempts`
    (every configuration tried, with its numbers), `fallback` (what was changed and why, or None) and
    `granularity_auto` (what int8-dynamic's auto choice saw, if it ran)."""
    limits = limits or fidelity.limits_for("quantize")
    tries = _Attempts(copy.deepcopy(model), method, dict(options), batches, limits)
    ok = tries.run(dict(options), model)  # the model itself: int8-dynamic works in place
    auto = tries.best[0].config.compress["quantization"].get("granularity_auto")
    if not ok and fallback:
        ok = _fall_back(tries)
    best, numbers, index = tries.best
    summary = {"fidelity": fidelity.verdict("quantize", numbers, limits), "attempts": tries.tried, "fallback": None,
               "granularity_auto": auto}  # fmt: skip
    if index:
        first, kept = tries.tried[0], tries.tried[index]
        how = f"{first['config']} -> {kept['config']}: {fidelity.describe(first)} -> {fidelity.describe(kept)}"
        summary["fallback"] = how if ok else f"no configuration within the limits; kept the closest, {how}"
        summary["fidelity"]["fallback"] = summary["fallback"]
    return best, summary


def _fall_back(tries: _Attempts) -> bool:
    """Try the safer configurations in order until one is within the limits (then True; `tries.best` is it)."""
    record = tries.best[0].config.compress["quantization"]
    if record["options"].get("granularity") == "per-tensor":
        if tries.run({**tries.options, "granularity": "per-token"}):
            return True
    base = tries.best[0].config.compress["quantization"]
    base_options = {k: v for k, v in base["options"].items() if k in tries.options or k == "granularity"}
    names = base.get("modules", [])
    errors = layer_errors(tries.before, tries.best[0], names, tries.batches)
    worst = sorted(names, key=errors.get, reverse=True)
    k = 1
    while k <= max(1, len(names) // 2) and k < len(names):
        skip = list(tries.options.get("skip", ()) or ()) + worst[:k]
        if tries.run({**base_options, "skip": skip}):
            return True
        k *= 2
    return False
