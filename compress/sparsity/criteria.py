"""Sparsity criteria: pure functions from one layer's weight (out, in) and its input statistics to (new weight, mask).

Each criterion is registered with the statistics of the layer's input it needs (collected by `calibrate.py` from the
already-sparsified model, layer by layer):

- magnitude  keep the largest |W|; no data.
- wanda      keep the largest |W_ij| * ||X_j||_2 (Sun et al. 2023), X_j = input channel j over calibration tokens;
             compared within each output row.
- sparsegpt  closed-form OBS (Frantar & Alistarh 2023): columns left to right in blocks, prune by w^2 / [H^-1]_jj^2
             and move each pruned weight's error onto the not-yet-processed weights of its row through the inverse
             Hessian H = X X^T (damped, Cholesky, float64); with `dense_target`, from the weight that best reproduces
             the dense model's outputs of the layer (`dense_target()`).

Unstructured masks zero round(sparsity * in) weights per row (magnitude, wanda) or round(sparsity * out * in) per
layer, spread over the column blocks (sparsegpt, whose scores are comparable across rows); N:M masks keep N of every
M consecutive inputs of each row. Mask True = kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .pattern import Pattern


@dataclass
class InputStats:
    """What a layer's calibration inputs (tokens, in) summarise to."""

    sq_norms: torch.Tensor | None = None  # (in,) sum over tokens of x_j^2, float64
    hessian: torch.Tensor | None = None  # (in, in) sum over tokens of x x^T, float64
    cross: torch.Tensor | None = None  # (in, in) sum over tokens of x x_dense^T (x_dense: the dense model's input)
    tokens: int = 0


@dataclass(frozen=True)
class Criterion:
    name: str
    needs: str | None  # None, "norms" or "hessian": the statistics `apply` reads
    apply: Callable[..., tuple[torch.Tensor, torch.Tensor]]  # (weight, stats, rule, sparsity, **opts) -> (w, mask)


CRITERIA: dict[str, Criterion] = {}


def register_criterion(criterion: Criterion) -> None:
    if criterion.name in CRITERIA:
        raise ValueError(f"sparsity criterion {criterion.name!r} is already registered")
    CRITERIA[criterion.name] = criterion


def mask_from_scores(scores: torch.Tensor, rule: Pattern, sparsity: float) -> torch.Tensor:
    """(out, in) scores -> bool mask keeping the highest: N of every M inputs, or all but round(sparsity*in) per row."""
    out_f, in_f = scores.shape
    if rule.structured:
        groups = scores.reshape(out_f, in_f // rule.m, rule.m)  # (out, in/M, M)
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(-1, groups.topk(rule.n, dim=-1).indices, True)
        return keep.reshape(out_f, in_f)
    k = round(sparsity * in_f)
    keep = torch.ones_like(scores, dtype=torch.bool)
    if k:
        keep.scatter_(1, scores.topk(k, dim=1, largest=False).indices, False)
    return keep


def _masked(weight: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # masked_fill writes +0.0; `weight * keep` gives -0.0 for negative weights, which the bitmask storage must keep
    return weight.masked_fill(~keep, 0.0), keep


def magnitude(weight, stats, rule: Pattern, sparsity: float, **_):
    return _masked(weight, mask_from_scores(weight.abs().float(), rule, sparsity))


def wanda(weight, stats: InputStats, rule: Pattern, sparsity: float, **_):
    scores = weight.abs().double() * stats.sq_norms.sqrt()[None, :]  # (out, in) * (1, in)
    return _masked(weight, mask_from_scores(scores, rule, sparsity))


def _damped(hessian: torch.Tensor, dampening: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(H + lambda I in float64, lambda = dampening x its mean diagonal); inputs never seen (zero diagonal) get a
    unit diagonal first."""
    h = hessian.double().clone()
    diag = torch.diagonal(h)
    diag[diag == 0] = 1.0
    lam = dampening * diag.mean()
    diag += lam
    return h, lam


def inverse_hessian_factor(hessian: torch.Tensor, dampening: float) -> torch.Tensor:
    """Upper Cholesky factor U of H^-1 (H^-1 = U^T U) after damping (`_damped`); row j of U holds the OBS update
    coefficients of column j onto the columns after it."""
    h, _ = _damped(hessian, dampening)
    diag = torch.diagonal(h)
    for _ in range(4):  # raise the damping if H is numerically not positive definite
        factor, info = torch.linalg.cholesky_ex(h)
        if int(info) == 0:
            break
        diag += dampening * diag.mean()
    return torch.linalg.cholesky(torch.cholesky_inverse(factor), upper=True)


def dense_target(weight: torch.Tensor, stats: InputStats, dampening: float) -> torch.Tensor:
    """The weight whose outputs on the layer's actual inputs X come closest to the dense layer's outputs on the dense
    model's inputs X_d: argmin_V ||X_d W^T - X V^T||^2 + lambda ||V - W||^2 = (H + lambda)^-1 (C W^T + lambda W^T),
    H = X^T X, C = X^T X_d, lambda the damping of `inverse_hessian_factor` (it pulls V towards W)."""
    h, lam = _damped(stats.hessian, dampening)
    w = weight.double()
    rhs = stats.cross.double() @ w.T + lam * w.T  # (in, out)
    return torch.linalg.solve(h, rhs).T


def sparsegpt(weight, stats: InputStats, rule: Pattern, sparsity: float, block_size: int = 128,
              dampening: float = 0.01, **_):  # fmt: skip
    # with the dense model's inputs known, prune the weight that best reproduces the dense outputs: OBS on H then
    # minimises ||X_d W^T - X W'^T|| itself (the two differ by a constant)
    w = (dense_target(weight, stats, dampening) if stats.cross is not None else weight.double()).contiguous().clone()
    rows, cols = w.shape
    hinv = inverse_hessian_factor(stats.hessian, dampening)  # (in, in), upper triangular
    pruned = torch.zeros(w.shape, dtype=torch.bool)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        w1, h1 = w[:, i1:i2].clone(), hinv[i1:i2, i1:i2]  # (out, B), (B, B)
        d = torch.diagonal(h1)  # (B,)
        err = torch.zeros_like(w1)
        p1 = torch.zeros(w1.shape, dtype=torch.bool)  # pruned positions of this block
        if not rule.structured:  # this block's share of round(sparsity * out * in), lowest w^2 / d^2 first
            k = round(sparsity * rows * i2) - round(sparsity * rows * i1)
            if k:
                p1.view(-1)[((w1 / d) ** 2).reshape(-1).topk(k, largest=False).indices] = True
        for i in range(i2 - i1):
            if rule.structured and i % rule.m == 0:  # prune M-N of the next M columns, chosen on updated weights
                g = (w1[:, i : i + rule.m] / d[i : i + rule.m]) ** 2
                p1[:, i : i + rule.m].scatter_(1, g.topk(rule.m - rule.n, dim=1, largest=False).indices, True)
            q = w1[:, i].masked_fill(p1[:, i], 0.0)
            e = (w1[:, i] - q) / d[i]  # (out,)
            w1[:, i:] -= e[:, None] * h1[i, i:][None, :]  # OBS update of the rest of the block
            w1[:, i] = q
            err[:, i] = e
        w[:, i1:i2], pruned[:, i1:i2] = w1, p1
        w[:, i2:] -= err @ hinv[i1:i2, i2:]  # lazy update of the columns after the block
    keep = ~pruned
    return w.masked_fill(~keep, 0.0).to(weight.dtype), keep


register_criterion(Criterion("magnitude", None, magnitude))
register_criterion(Criterion("wanda", "norms", wanda))
register_criterion(Criterion("sparsegpt", "hessian", sparsegpt))
