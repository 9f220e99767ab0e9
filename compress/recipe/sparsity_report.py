"""The report's weight-sparsity section: per layer, the fraction of weights a `sparsify` stage set to zero, the size
on disk, and what sparsity does and does not buy on the machine the report was made on."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ..stats import weights_size

HONEST_NOTE = (
    "MACs count what dense kernels compute: zeroed weights are still multiplied, so weight sparsity does not lower "
    "the MACs column, and on a CPU neither unstructured nor 2:4 sparsity makes a forward faster (2:4 speed-ups need "
    "GPU sparse tensor cores and a runtime that uses them). Here sparsity buys size on disk (bitmask storage) and "
    "composes with pruning and int8."
)
_BLOCK = re.compile(r"^(.*?\.\d+)\.(.+)$")  # "model.layers.3" + "self_attn.q_proj"


def linear_sparsity(model: nn.Module) -> float:
    """Fraction of zeros among the weights of every Linear-like layer (float or int8, heads included)."""
    zeros = total = 0
    for m in model.modules():
        w = getattr(m, "weight", None)
        if (
            isinstance(w, torch.Tensor)
            and w.dim() == 2
            and not isinstance(m, nn.Embedding)
            and "Norm" not in type(m).__name__
        ):
            zeros, total = zeros + int((w == 0).sum()), total + w.numel()
    return zeros / max(total, 1)


def layer_table(layers: dict[str, float]) -> list[str]:
    """One row per transformer block, one column per projection."""
    rows: dict[str, dict[str, float]] = {}
    for name, value in layers.items():
        m = _BLOCK.match(name)
        block, proj = (m[1], m[2]) if m else (name, "weight")
        rows.setdefault(block, {})[proj] = value
    cols = list(dict.fromkeys(c for r in rows.values() for c in r))
    lines = ["| layer | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for block, r in rows.items():
        lines.append(f"| {block} | " + " | ".join(f"{r[c]:.3f}" if c in r else "–" for c in cols) + " |")
    return lines


def sparsity_lines(results: list[dict]) -> list[str]:
    out = []
    for r in results:
        s = r.get("summary") or {}
        if r.get("kind") != "sparsify" or "layers" not in s:
            continue
        folder = Path(r["dir"]) / "model"
        size = f"; weights on disk {weights_size(folder) / 1e6:.1f} MB" if folder.exists() else ""
        out += [
            "",
            f"## Weight sparsity ({r['stage']}: {s['criterion']}, {s['pattern']}, {s['achieved']:.1%} of the weights "
            f"of {s['layers_sparsified']} layers are zero, {s['seconds']:.1f} s{size})",
            "",
            *layer_table(s["layers"]),
            "",
            HONEST_NOTE,
        ]
    return out
