"""`granularity: auto` for int8-dynamic: the faster of the two kernels that the model's accuracy allows.

per-tensor (one activation scale per call, torch's fused fbgemm / oneDNN kernel) is the faster kernel on CPUs at
batch 1, but a model whose activations carry large outliers at a few tokens (most pretrained LLMs: "massive
activations" at the first token) loses everything else in that call to the outlier's scale; per-token (one scale
per token) keeps them. `choose` quantizes two copies of the model, times them side by side on one calibration
example (batch 1, interleaved, median), compares each with the float model on the calibration batches
(`compress.evaluate.fidelity`), and keeps the faster one within the quantize stage's limits (per-token if neither
is). What it saw goes into the checkpoint's record (`config.compress["quantization"]["granularity_auto"]`).
The float model is timed beside them: a kept kernel slower than float (per-token on `torch._int_mm`, the fallback
without an x86 quantized engine, is many times slower than float on a CPU without VNNI) gets a one-line warning.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import warnings

import torch
from torch import nn

KERNELS = ("per-tensor", "per-token")
TIMING_REPEATS = 5
FIDELITY_BATCHES = 4


def _one_example(batch: dict) -> dict:
    return {k: v[:1] for k, v in batch.items() if torch.is_tensor(v)}


@functools.cache  # asked on every Int8Linear forward; the build's engines do not change
def per_tensor_usable() -> bool:
    return bool({"x86", "fbgemm", "onednn"} & set(torch.backends.quantized.supported_engines))


def choose(model: nn.Module, config, calibration: list[dict] | None, limits=None, *, apply) -> dict:
    """Settle `config.granularity` if it is "auto" (in place); returns {"granularity_auto": what was seen}.
    `apply(model, config)` quantizes a copy (int8_dynamic passes its own: this module sits below it)."""
    if config.granularity != "auto":
        return {}
    if not calibration:
        config.granularity = "per-token"
        return {"granularity_auto": {"chosen": "per-token", "reason": "no calibration data to check per-tensor"}}
    if not per_tensor_usable():
        config.granularity = "per-token"
        return {"granularity_auto": {"chosen": "per-token", "reason": "no x86 quantized engine for per-tensor"}}
    from ..evaluate import fidelity
    from ..stats import latency_side_by_side

    limits = limits or fidelity.limits_for("quantize")
    variants = {g: apply(copy.deepcopy(model), dataclasses.replace(config, granularity=g))[0].eval() for g in KERNELS}
    sample = _one_example(calibration[0])
    with torch.inference_mode():  # the float model too: an int8 kernel can be slower than float (no VNNI)
        seconds = latency_side_by_side(
            {**variants, "float": model}, fidelity._inputs(model, sample), repeats=TIMING_REPEATS, warmup=1
        )
    float_seconds = seconds.pop("float")
    numbers = fidelity.compare_many(model, variants, calibration[:FIDELITY_BATCHES])
    allowed = [g for g in KERNELS if not fidelity.problems(numbers[g], limits)]
    chosen = min(allowed, key=seconds.get) if allowed else "per-token"
    if not allowed:
        reason = "neither kernel within the limits: the accurate one"
    elif chosen == "per-tensor":
        reason = "faster, within the limits"
    elif "per-tensor" in allowed:
        reason = "faster here, both within the limits"
    else:
        reason = "per-tensor beyond the limits: " + "; ".join(fidelity.problems(numbers["per-tensor"], limits))
    config.granularity = chosen
    del variants
    if seconds[chosen] > float_seconds:
        warnings.warn(
            f"int8-dynamic {chosen} is {seconds[chosen] / float_seconds:.1f}x slower than the float model at batch 1 "
            "on this CPU (timed on a calibration example): keep the model in float, or quantize on a CPU with VNNI",
            stacklevel=3,
        )
    return {
        "granularity_auto": {
            "chosen": chosen,
            "reason": reason,
            "batch1_ms": {g: round(s * 1e3, 3) for g, s in seconds.items()},
            "float_batch1_ms": round(float_seconds * 1e3, 3),
            "tokens": int(next(iter(sample.values())).shape[-1]),
            "fidelity": numbers,
        }
    }
