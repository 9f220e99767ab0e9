"""Size and cost of a model: parameters, MACs estimate, bytes on disk, and side-by-side latency measurement."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D


def _weight_count(t: torch.Tensor) -> int:
    """Weights a tensor stands for: a bitsandbytes 4-bit parameter packs two per byte and keeps the real shape in its
    quant_state; every other tensor (int8 included) holds one weight per element."""
    state = getattr(t, "quant_state", None)
    shape = getattr(state, "shape", None)
    return int(torch.Size(shape).numel()) if shape is not None else t.numel()


def count_params(model: nn.Module) -> int:
    """Unique weights (tied ones counted once), quantized ones as what they are: int8 layers keep their weights as
    buffers (`Int8Linear`, `Int8Embedding`) and bitsandbytes 4-bit layers pack two per byte; both count in full."""
    tensors = {id(p): p for p in model.parameters()}
    for module in model.modules():
        if hasattr(module, "weight_scale"):  # compress int8 layers: weight (and bias) are buffers
            for name in ("weight", "bias"):
                t = module._buffers.get(name)
                if t is not None:
                    tensors[id(t)] = t
    return sum(_weight_count(t) for t in tensors.values())


def _linear_weights(m: nn.Module) -> int:
    """Multiply-accumulates per token of one Linear-like layer (float, int8 or bitsandbytes), 0 for other modules."""
    if isinstance(m, Conv1D):
        return m.nx * m.nf
    if isinstance(m, nn.Linear) or (hasattr(m, "weight_scale") and hasattr(m, "in_features")):
        return m.in_features * m.out_features
    return 0


def linear_macs_per_token(module: nn.Module) -> int:
    return sum(_linear_weights(m) for m in module.modules())


def estimate_macs(model: nn.Module, seq_len: int = 128) -> int:
    """Multiply-accumulates for one sequence of `seq_len` tokens: every Linear/Conv1D once per token, plus attention
    scores and weighted sums (2 * seq_len * heads * head_dim per token). Embedding lookups and convolutional front ends
    are not counted."""
    from .models import get_adapter
    from .pruning.record import iter_layers

    adapter = get_adapter(model)
    att = sum(attention_macs_per_token(adapter, layer, seq_len) for _, _, _, layer in iter_layers(model, adapter))
    return seq_len * (linear_macs_per_token(model) + att)


def attention_macs_per_token(adapter, layer: nn.Module, seq_len: int) -> int:
    """Scores (q.k) and weighted sum (p.v) of every attention block of one layer: 2 * seq_len * heads * head_dim."""
    return sum(2 * seq_len * s.num_heads * s.head_dim for s in adapter.attentions(layer).values())


def weights_size(folder: str | Path) -> int:
    """Bytes of the safetensors weight files in a model folder."""
    return sum(f.stat().st_size for f in Path(folder).glob("*.safetensors"))


@torch.inference_mode()
def inputs_for(model: nn.Module, inputs: dict) -> dict:
    """Float inputs (audio features, pixels) in the model's float dtype: a bf16 / fp16 model reads half-precision
    inputs, as any half-precision transformers model does; token ids and masks are left as they are. Audio features
    longer than a window-cut Whisper's window are cut to it (`models.whisper.cut_window`)."""
    from .models.whisper import crop_features

    inputs = crop_features(model, inputs)
    params = model.parameters() if hasattr(model, "parameters") else ()  # an exported graph (OrtModel) has none
    dtype = next((p.dtype for p in params if p.is_floating_point()), None)
    if dtype is None:
        return inputs
    return {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}


def latency_side_by_side(
    models: dict[str, nn.Module],
    inputs: dict | None = None,
    repeats: int = 7,
    warmup: int = 2,
    call=None,
    settle: int = 0,
) -> dict[str, float]:
    """Median seconds per forward (or per `call(model)`, e.g. a generate) for each model, interleaving the models in
    every round so machine noise hits all of them alike. `settle` untimed calls of the same model come before each
    timed one: the model then finds its weights in cache and its threads awake, as in a serving loop, rather than
    after another model evicted them (which costs small models most: ~2 ms of MiniLM's 7-9 ms in ONNX Runtime)."""
    per_model = {id(m): inputs_for(m, inputs) for m in models.values()} if inputs is not None else {}
    call = call or (lambda m: m(**per_model[id(m)]))
    times: dict[str, list[float]] = {name: [] for name in models}
    for m in models.values():
        m.eval()
    for i in range(warmup + repeats):
        for name, m in models.items():
            for _ in range(settle):
                call(m)
            t0 = time.perf_counter()
            call(m)
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


@torch.inference_mode()
def traced_linear_macs(model: nn.Module, inputs: dict) -> int:
    """Multiply-accumulates of the Linear, Conv1D and Conv1d layers in one forward on `inputs`, counted with hooks
    as they run (so layers applied per audio frame, per token or once per sequence are each counted right).
    Attention score/value products are not included."""
    total = 0

    def count(module, args, out):
        nonlocal total
        if isinstance(module, nn.Conv1d):
            total += out.numel() * module.in_channels // module.groups * module.kernel_size[0]
        else:
            total += out.numel() * (module.nx if isinstance(module, Conv1D) else module.in_features)

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Linear, Conv1D, nn.Conv1d))]
    try:
        model(**inputs)
    finally:
        for h in hooks:
            h.remove()
    return total
