"""`prune()`: importance -> plan -> surgery, in place, returning the plan."""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Iterable

from torch import nn

from ..errors import CompressError
from ..models import get_adapter
from ..models.whisper import cut_window
from ..stats import count_params, estimate_macs
from .adaptive import adaptive_widths
from .budget import Budget, build_plan, plan_cost
from .compensate import compensate_bias
from .importance import CRITERIA, NEEDS_CALIBRATION, Scores
from .plan import PruningPlan, apply_plan
from .reconstruct import ReconstructConfig, refit_model


def check_criterion(criterion: str, has_calibration: bool) -> None:
    if criterion not in CRITERIA:
        raise CompressError(
            "criterion", f"unknown criterion {criterion!r}", f"use one of {', '.join(sorted(CRITERIA))}"
        )
    if criterion in NEEDS_CALIBRATION and not has_calibration:
        raise CompressError(
            "calibration",
            f"criterion {criterion!r} needs calibration batches",
            "pass calibration data (CLI: --calibration FILE) or use criterion=magnitude",
        )


def score(model: nn.Module, criterion: str, calibration: Iterable[dict] | None = None) -> Scores:
    check_criterion(criterion, bool(calibration))
    return CRITERIA[criterion](model, list(calibration) if calibration else None)


def _solve_ratio(model, scores, budget: Budget, target: int, index: int, seq_len: int) -> Budget:
    """Smallest common head+neuron fraction whose plan brings params (index 0) or MACs (index 1) to <= target."""
    total = count_params(model) if index == 0 else estimate_macs(model, seq_len)
    if target >= total:
        raise CompressError("target", f"target {target:,} is not below the model's current {total:,}")

    def remaining(r: float) -> int:
        b = Budget(**{**budget.__dict__, "heads": r, "mlp": r})
        return total - plan_cost(model, build_plan(model, scores, b), seq_len)[index]

    lo, hi = 0.0, 0.95
    if remaining(hi) > target:
        raise CompressError(
            "target",
            f"target {target:,} needs more than 95% of heads and neurons removed",
            "raise the target or also remove layers",
        )
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if remaining(mid) > target else (lo, mid)
    return Budget(**{**budget.__dict__, "heads": hi, "mlp": hi})


def prune(
    model: nn.Module,
    heads: float = 0.0,
    mlp: float = 0.0,
    layers: float | int = 0,
    kv_heads: float = 0.0,
    criterion: str | None = None,
    layout: str = "uniform",
    round_to: int = 1,
    protect: Iterable[int | str] = (),
    calibration: Iterable[dict] | None = None,
    target_params: int | None = None,
    target_macs: int | None = None,
    seq_len: int = 128,
    compensate: bool = True,
    reconstruct: bool | None = None,
    ridge: float = 1e-2,
    tune_epochs: int = 0,
    tune_lr: float = 1e-3,
    dense: nn.Module | None = None,
    audio_window: int | None = None,
) -> PruningPlan:
    """Physically prune `model` in place and return the plan.

    heads / kv_heads / mlp: fraction of query heads / KV groups / MLP neurons to remove, in [0, 1).
    layers: number (int) or fraction (float) of layers to remove from every stack.
    criterion: magnitude | taylor | fisher | activation | obs | random (see `compress.pruning.importance`); default
        "activation" when calibration is given (best one-shot fidelity on MiniLM), else "magnitude".
    layout: "uniform" (same width in every layer), "global" (ranked across layers) or "adaptive" (the uniform total,
        spread by each layer's measured sensitivity on the calibration data; see `compress.pruning.adaptive`).
    round_to: kept widths (neurons; heads x head_dim) are multiples of this (e.g. 64 for quantization kernels).
    protect: layers left untouched, as original indices (every stack) or "stack.index" strings.
    calibration: batches (dicts of model inputs) for data-driven criteria.
    target_params / target_macs: instead of heads/mlp, reach this size with one common head+neuron fraction.
    compensate: with calibration data, fold the mean contribution of removed units into output biases (FLAP).
    reconstruct: refit each pruned sublayer's output projection to the unpruned model's output on the calibration
        data (`compress.reconstruct`); default: True when calibration is given. Needs a copy of the model meanwhile.
    ridge: ridge strength of that refit, relative to the mean diagonal of its Gram matrix.
    tune_epochs: after the refit, passes of Adam over the calibration batches per pruned layer on all its weights so
        its output matches the dense layer's (block reconstruction, `compress.pruning.reconstruct.tune_layer`); 0: off.
    tune_lr: Adam's learning rate for that tuning (1e-3 suits MiniLM / ViT; larger models may need less, e.g. 2e-4).
    dense: an unpruned copy of `model` the caller already holds, used as the refit's reference instead of a new copy.
    audio_window: Whisper only: seconds of audio the encoder reads (default: its 30-second window); the encoder's
        cost falls with the square of it, clips longer than it are cut. With the refit, every sublayer (not only
        pruned ones) is refit to the full-window model's outputs on the kept frames.
    """
    adapter = get_adapter(model)
    calibration = list(calibration) if calibration is not None else None
    criterion = criterion or ("activation" if calibration else "magnitude")
    if reconstruct is None:
        reconstruct = bool(calibration)
    if audio_window is not None and adapter.name != "whisper":
        raise CompressError(
            "audio_window", f"only Whisper models have an audio window (this is {adapter.name})", "remove audio_window"
        )
    refit_cfg = None
    if reconstruct:
        sites = "all" if audio_window else "pruned"
        refit_cfg = ReconstructConfig(ridge=ridge, sites=sites, tune_epochs=tune_epochs, tune_lr=tune_lr)
    elif tune_epochs:
        raise CompressError("tune_epochs", "layer tuning is part of the refit, which is off", "set reconstruct=True")
    if reconstruct and not calibration:
        raise CompressError(
            "reconstruct",
            "reconstruction needs calibration batches",
            "pass calibration data (CLI: --calibration FILE) or reconstruct=False (CLI: --no-reconstruct)",
        )
    budget = Budget(
        heads=heads, kv_heads=kv_heads, mlp=mlp, layers=layers, layout=layout, round_to=round_to, protect=list(protect)
    )
    if (target_params or target_macs) and (heads or mlp):
        raise CompressError(
            "target_params",
            "a size target and explicit heads/mlp ratios were both given",
            "give either the target or the ratios",
        )
    if target_params and target_macs:
        raise CompressError("target_macs", "give one target, not both")
    if layout == "adaptive" and not calibration:
        raise CompressError(
            "layout",
            "layout 'adaptive' measures each layer's sensitivity on calibration batches",
            "pass calibration data (CLI: --calibration FILE) or use layout=uniform",
        )
    t0 = time.perf_counter()
    params0, macs0 = count_params(model), estimate_macs(model, seq_len)
    if audio_window is not None:
        if reconstruct and dense is None:
            dense = copy.deepcopy(model)  # the full-window model is the refit's reference
        cut_window(model, audio_window)
    scores = score(model, criterion, calibration)
    if target_params or target_macs:
        budget = _solve_ratio(model, scores, budget, target_params or target_macs, 0 if target_params else 1, seq_len)
    sensitivity = None
    if budget.layout == "adaptive":
        widths, sensitivity = adaptive_widths(model, scores, budget, calibration)
        budget = Budget(**{**budget.__dict__, "widths": widths})
    plan = build_plan(model, scores, budget)
    if reconstruct and dense is None:
        dense = copy.deepcopy(model)
    compensated = compensate_bias(model, plan, scores.input_means) if compensate else 0
    if compensate and calibration and not scores.input_means:
        warnings.warn(
            f"criterion {criterion!r} recorded no calibration input means, so no bias was compensated "
            "(summary: bias_compensated=0)",
            stacklevel=2,
        )
    apply_plan(model, plan)
    refit = refit_model(model, dense, calibration, refit_cfg) if reconstruct else None
    plan.summary = {
        "criterion": criterion,
        "layout": budget.layout,
        "heads": budget.heads,
        "kv_heads": budget.kv_heads,
        "mlp": budget.mlp,
        "layers": budget.layers,
        "round_to": budget.round_to,
        "family": adapter.name,
        "params_before": params0,
        "params_after": count_params(model),
        "macs_before": macs0,
        "macs_after": estimate_macs(model, seq_len),
        "seq_len": seq_len,
        "audio_window": audio_window,
        "bias_compensated": compensated,
        "reconstruct": refit,
        "widths": {
            "heads": {k: len(v) for k, v in plan.heads.items()},
            "neurons": {k: len(v) for k, v in plan.neurons.items()},
        },
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if sensitivity is not None:
        plan.summary["sensitivity"] = {k: float(f"{v:.4g}") for k, v in sensitivity.items()}
    model.config.compress["history"].append(plan.summary)
    return plan
