"""Structured Optimal Brain Surgeon ranking of the units feeding one output projection (SlimGPT 2024, after OBS).

For y = [x 1]·W with input units of `width` columns each (a head's head_dim columns, or one neuron), the least-squares
error added by removing unit u while the remaining columns are re-fitted optimally is

    cost_u = tr(W_uᵀ (H⁻¹_uu)⁻¹ W_u),    H = G + lam·I,  G = [x 1]ᵀ[x 1] over calibration tokens

(H⁻¹_uu: the unit's block of H⁻¹). Units are removed greedily, cheapest first, a few at a time; after each removal W
and H⁻¹ are updated in closed form (the Schur complement), so later costs account for the units already gone and for
the compensation the kept ones will make. The bias row is never removed (it is where bias compensation lands).

The ranking this gives pairs with the refit (`reconstruct`), which then re-solves the kept columns on the pruned
model's own inputs: the units kept are the ones the refit can best do without.
"""

from __future__ import annotations

import math

import torch


def obs_scores(
    W: torch.Tensor, G: torch.Tensor, units: int, width: int, ridge: float = 1e-2, step: float = 1 / 32
) -> torch.Tensor:
    """One score per unit (higher = removed later = more important): the running maximum of the greedy removal costs.

    W: (F, D) augmented weight (F = units·width [+ 1 bias row, last]); G: (F, F) Gram matrix of the same [x 1].
    ridge: lam = ridge · mean(diag(G)). step: fraction of the remaining units removed per greedy step."""
    W, G = W.double().clone(), G.double()
    if units == 0:
        return torch.zeros(0, dtype=torch.float64)
    lam = ridge * float(G.diagonal().mean().clamp_min(1e-12))
    H = G + lam * torch.eye(G.shape[0], dtype=G.dtype)
    L, info = torch.linalg.cholesky_ex(H)
    if int(info) != 0:  # not positive definite even with the ridge: a far larger one
        L = torch.linalg.cholesky(H + 1e3 * lam * torch.eye(G.shape[0], dtype=G.dtype))
    Hinv = torch.cholesky_inverse(L)
    alive = torch.arange(units)  # unit ids still in; W and Hinv hold their rows, then the bias row (compacted)
    costs = torch.zeros(units, dtype=torch.float64)
    order: list[int] = []
    while len(alive):
        n = len(alive)
        if width == 1:
            cost = W[:n].pow(2).sum(1) / Hinv.diagonal()[:n]
        else:
            r = torch.arange(n * width).reshape(n, width)
            Wu = W[r]  # (n, width, D)
            cost = (Wu * torch.linalg.solve(Hinv[r[:, :, None], r[:, None, :]], Wu)).sum((1, 2))
        pick = torch.topk(cost, max(1, math.ceil(n * step)), largest=False).indices
        pick = pick[torch.argsort(cost[pick])]
        costs[alive[pick]] = cost[pick]
        order += alive[pick].tolist()
        R = (pick[:, None] * width + torch.arange(width)).reshape(-1)
        S = torch.linalg.inv(Hinv[R][:, R])  # (H⁻¹_RR)⁻¹: removing R updates W and H⁻¹ by the Schur complement
        HR = Hinv[:, R]
        W -= HR @ (S @ W[R])
        Hinv -= HR @ S @ HR.t()
        keep_units = torch.ones(n, dtype=torch.bool)
        keep_units[pick] = False
        keep = torch.cat([keep_units.repeat_interleave(width), torch.ones(W.shape[0] - n * width, dtype=torch.bool)])
        W, Hinv, alive = W[keep], Hinv[keep][:, keep], alive[keep_units]
    ranked = costs[order].cummax(0).values
    ranked = ranked + torch.arange(units, dtype=torch.float64) * (float(ranked.max()) * 1e-9 + 1e-30)  # strict order
    scores = torch.empty(units, dtype=torch.float64)
    scores[torch.tensor(order)] = ranked
    return scores  # float64: in float32 the tie-break above vanishes on the running maximum's plateaus
