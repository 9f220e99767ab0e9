"""`sparsify()`: zero individual weights of the transformer blocks' Linear / Conv1D layers, in place.

Layers keep their shapes (nothing is sliced): the zeros are recorded in `config.compress["sparsity"]` (options and
the sparsity reached per layer), `compress.save` stores the sparse weights compactly (`storage.py`) and distillation
keeps them at zero (`keep_zeros`). Prune structurally first, sparsify, then quantize.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..errors import CompressError
from ..models.base import in_features
from ..pruning.record import get_record
from ..quantize.targets import select_linears
from .calibrate import sequential
from .config import SparsityConfig
from .criteria import CRITERIA, InputStats


def make_config(criterion: str | None = None, has_calibration: bool = False, **options) -> SparsityConfig:
    """Validate options without a model (the CLI and the recipe call this before loading anything)."""
    config = SparsityConfig(criterion=criterion or ("sparsegpt" if has_calibration else "magnitude"), **options)
    if CRITERIA[config.criterion].needs and not has_calibration:
        raise CompressError(
            "calibration",
            f"criterion {config.criterion!r} needs calibration batches",
            "pass calibration data (CLI: --calibration FILE) or use criterion=magnitude",
        )
    return config


def check_widths(model: nn.Module, names: list[str], config: SparsityConfig) -> None:
    rule = config.rule
    if not rule.structured:
        return
    bad = [(n, in_features(model.get_submodule(n))) for n in names if in_features(model.get_submodule(n)) % rule.m]
    if bad:
        shown = ", ".join(f"{n} ({w} inputs)" for n, w in bad[:3]) + (
            f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        )
        raise CompressError(
            "pattern",
            f"{config.pattern} needs input widths that are multiples of {rule.m}: {shown}",
            f"prune with round_to={rule.m} (or a multiple), list those layers in skip, or use pattern=unstructured",
        )


def _weight(module: nn.Module) -> torch.Tensor:
    """(out, in) view of a Linear / Conv1D weight (Conv1D stores (in, out))."""
    return module.weight.t() if isinstance(module, Conv1D) else module.weight


def _set_weight(module: nn.Module, w: torch.Tensor) -> None:
    module.weight.data.copy_(w.t() if isinstance(module, Conv1D) else w)


def sparsify(
    model: nn.Module,
    sparsity: float | None = None,
    pattern: str = "unstructured",
    criterion: str | None = None,
    calibration: list[dict] | None = None,
    skip=(),
    **options,
) -> dict:
    """Zero weights of `model` in place and return a summary (also appended to `config.compress["history"]`).

    sparsity: fraction of each layer's weights zeroed, in [0, 1) (default 0.5; N:M patterns imply 1 - N/M).
    pattern: "unstructured", "2:4", "4:8" (any N:M: keep N of every M consecutive inputs of a row).
    criterion: magnitude | wanda | sparsegpt; default sparsegpt with calibration, else magnitude.
    calibration: batches (dicts of model inputs) for wanda / sparsegpt, run through the model layer by layer.
    skip, skip_head, skip_edge_layers: which Linear layers stay dense (as quantization; heads by default).
    block_size, dampening: sparsegpt's column block and Hessian damping.
    sequential: "group" (each group of a block's layers sharing an input is fitted to what the groups before it
    produce once sparse) or "block" (a block's layers all fitted to the block's inputs, as llm-compressor does).
    dense_target: sparsegpt fits each layer to the dense model's outputs of that layer (from the dense model's
    inputs) instead of its own outputs on the already-sparsified inputs; it needs calibration tokens well above the
    layer widths, or the least-squares target over-fits them (benchmarks/sparsity).
    """
    config = make_config(criterion, bool(calibration), sparsity=sparsity, pattern=pattern, skip=skip, **options)
    record = get_record(model.config)
    if record and record.get("quantization"):
        raise CompressError("model", "the model is already quantized", "sparsify the float model, then quantize")
    names, kept = select_linears(model, config)
    check_widths(model, names, config)
    spec, rule = CRITERIA[config.criterion], config.rule
    modules = {n: model.get_submodule(n) for n in names}
    opts = {"block_size": config.block_size, "dampening": config.dampening}
    t0 = time.perf_counter()

    def apply(stats: dict[str, InputStats]) -> None:
        for name, st in stats.items():
            module = modules[name]
            w, _ = spec.apply(_weight(module).detach(), st, rule, config.sparsity, **opts)
            _set_weight(module, w)

    model.eval()
    with torch.no_grad():
        if spec.needs is None:
            apply({n: InputStats() for n in names})
        else:
            sequential(model, list(calibration), modules, spec.needs, apply, by_group=config.sequential == "group",
                       dense_inputs=config.dense_target and spec.needs == "hessian")  # fmt: skip
    seconds = time.perf_counter() - t0

    layers = {n: round(float((_weight(m) == 0).float().mean()), 6) for n, m in modules.items()}
    zeros = sum(int((_weight(m) == 0).sum()) for m in modules.values())
    total = sum(_weight(m).numel() for m in modules.values())
    summary = {
        "method": "sparsify",
        "criterion": config.criterion,
        "pattern": config.pattern,
        "sparsity": config.sparsity,
        "skip": list(config.skip),
        "skip_head": config.skip_head,
        "skip_edge_layers": config.skip_edge_layers,
        "block_size": config.block_size,
        "dampening": config.dampening,
        "calibration_batches": len(calibration) if calibration else 0,
        "layers_sparsified": len(names),
        "layers_kept_dense": len(kept),
        "zero_weights": zeros,
        "sparsified_weights": total,
        "achieved": round(zeros / max(total, 1), 6),
        "seconds": round(seconds, 3),
    }
    record = get_record(model.config, create=True)
    record["sparsity"] = {**{k: summary[k] for k in ("criterion", "pattern", "sparsity")}, "layers": layers}
    record["history"].append(summary)
    return {**summary, "layers": layers}
