"""Post-training quantization: one verb, one registry of methods, each a small config class + a function.

    import compress
    model = compress.quantize(model, method="int8-dynamic")          # use the returned model
    model = compress.quantize(model, method="bnb-nf4", skip_edge_layers=True)
    compress.save(model, "out/q")                                    # compress.load("out/q") gives the same outputs

Methods (see `list_methods()`): bf16, fp16, int8-dynamic, bnb-int8, bnb-nf4, bnb-fp4. Options are the fields of the
method's config class; the skip rules (`skip`, `skip_head`, `skip_edge_layers`) are shared, see `targets.py`.
What was done is recorded in `model.config.compress["quantization"]` (method, options, quantized layers), which is
how `compress.load` rebuilds the quantized layers before the weights load (`rebuild_quantized`).
Adding a method: one file with a config dataclass, `apply(model, config) -> (model, record)` and a `register_method`
call, imported below.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from ..errors import CompressError
from ..pruning.record import get_record
from . import bnb, cast, int8_dynamic  # noqa: F401  (each registers its methods)
from .rebuild import rebuild_quantized
from .registry import METHODS, Method, list_methods, register_method


def _alternatives(exclude: str | None = None) -> str:
    usable = [n for n in list_methods() if n != exclude and METHODS[n].unusable() is None]
    return f"available here: {', '.join(usable)}"


def make_config(method: str, **options):
    """Validate a method name and its options without touching a model (the CLI calls this before loading)."""
    if method not in METHODS:
        raise CompressError("method", f"unknown quantization method {method!r}", _alternatives())
    spec = METHODS[method]
    reason = spec.unusable()
    if reason:
        raise CompressError("method", f"{method} cannot run here: {reason}", _alternatives(exclude=method))
    fields = {f.name for f in dataclasses.fields(spec.config)} - set(spec.preset)
    unknown = sorted(set(options) - fields)
    if unknown:
        raise CompressError(
            unknown[0], f"{method} has no option {unknown[0]!r}", f"its options: {', '.join(sorted(fields)) or 'none'}"
        )
    return spec.config(**{**options, **spec.preset})


def quantize(
    model: nn.Module, method: str = "int8-dynamic", calibration: list[dict] | None = None, limits=None, **options
) -> nn.Module:
    """Quantize `model` with a registered method and return the quantized model. int8-dynamic and the casts work in
    place; bitsandbytes methods return a new model (the input is left as it was). Quantize after pruning.

    `calibration` (a few batches of model inputs) lets data-dependent options decide: int8-dynamic's default
    `granularity="auto"` times per-tensor against per-token on this model and takes the faster one whose outputs
    stay within `limits` (`compress.evaluate.fidelity.Limits`, default: the quantize stage's); without calibration
    it takes the accurate per-token kernel. The choice is recorded in the checkpoint."""
    config = make_config(method, **options)
    record = get_record(model.config)
    if record and record.get("quantization"):
        raise CompressError(
            "model", f"the model is already quantized ({record['quantization']['method']})", "quantize the fp32 model"
        )
    chosen = METHODS[method].choose(model, config, calibration, limits) if METHODS[method].choose else {}
    quantized, extra = METHODS[method].apply(model, config)
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
    get_record(quantized.config, create=True)["quantization"] = {
        "method": method,
        "options": options,
        **extra,
        **chosen,
    }
    return quantized


__all__ = ["METHODS", "Method", "list_methods", "make_config", "quantize", "register_method", "rebuild_quantized"]
