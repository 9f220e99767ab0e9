"""int8-dynamic: int8 weights (symmetric, one scale per output channel) with activations quantized on the fly, for CPU.

The checkpoint holds each quantized layer as `weight` (int8, out x in), `weight_scale` (fp32, out) and `bias`, so a
layer takes a quarter of its fp32 bytes on disk and in memory. Two kernels, chosen by `granularity`:

    per-token   one activation scale per token (row).                                     More accurate.
    per-tensor  one activation scale per call; torch's fused dynamic-quantized linear        Faster on CPU.
                (fbgemm / oneDNN), prepacked from the int8 weight on first use.
    auto        (default) the faster of the two that the model's accuracy allows, decided on calibration data
                by timing both and checking their fidelity (`auto.py`); per-token when there is no data.

per-token runs on the same fused kernel where torch has it: each row is divided by its own absolute maximum first, so
the one scale of the call fits every row, and the output rows are multiplied back (the layer is linear; the bias is
added after). `torch._int_mm` is the fallback without an x86 quantized engine: on a CPU without VNNI it runs many
times slower than the fused kernel, and slower than fp32.

`embeddings=True` also stores the input token-embedding table as int8 rows with one scale each (`Int8Embedding`): in a
small encoder that table is most of the bytes (MiniLM: 47.7 of 90.9 MB). Skipped when it is tied to the output layer.

`compress.load` rebuilds the `Int8Linear` / `Int8Embedding` layers from `config.compress["quantization"]` before the
weights load (see `rebuild`), so the reloaded model computes exactly what the in-memory one did.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..errors import CompressError
from .auto import choose, per_tensor_usable
from .registry import Method, register_method
from .targets import Targets, select_linears, tied_output, untie_config

GRANULARITIES = ("auto", "per-token", "per-tensor")


@dataclass
class Int8DynamicConfig(Targets):
    # activation scale per token (accurate), per call (fused kernel, faster), or auto: the faster one this model's
    # accuracy allows, measured on calibration data (per-token without it); see auto.py
    granularity: str = "auto"
    embeddings: bool = False  # also the input token embeddings as int8 rows (unless tied to the output layer)

    def __post_init__(self):
        super().__post_init__()
        if self.granularity not in GRANULARITIES:
            raise CompressError(
                "granularity", f"unknown granularity {self.granularity!r}", f"use one of {', '.join(GRANULARITIES)}"
            )
        if self.granularity == "per-tensor" and not per_tensor_usable():
            raise CompressError(
                "granularity", "per-tensor needs torch's x86 quantized engine (fbgemm / oneDNN)", "use per-token"
            )


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) float -> int8 (out, in), fp32 scale (out,); symmetric, per output channel."""
    scale = weight.detach().abs().amax(dim=1).float().clamp(min=1e-12) / 127
    q = torch.round(weight.detach().float() / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def _identity(t: torch.Tensor | None) -> tuple | None:
    """Changes when a tensor is replaced or written in place, so a stale prepacked weight is never used."""
    if t is None:
        return None
    return (t.data_ptr(), 0 if t.is_inference() else t._version)


def _fused_reduce_range() -> bool:
    # Without VNNI, fbgemm's int16 accumulation can saturate on full-range activations; torch advises 7 bits there.
    return not torch.cpu._is_vnni_supported()


class Int8Linear(nn.Module):
    """y = x W^T + b with W stored as int8 + per-channel scales; activations quantized per call."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, granularity: str = "per-token"):
        super().__init__()
        self.in_features, self.out_features, self.granularity = in_features, out_features, granularity
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        self._packed = None  # (key of the tensors it was built from, prepacked weight), built on first use

    @classmethod
    def from_float(cls, module: nn.Module, granularity: str) -> Int8Linear:
        weight = module.weight.t() if isinstance(module, Conv1D) else module.weight  # Conv1D stores (in, out)
        q, scale = quantize_weight(weight)
        layer = cls(q.shape[1], q.shape[0], module.bias is not None, granularity)
        layer.weight.copy_(q)
        layer.weight_scale.copy_(scale)
        if module.bias is not None:
            layer.bias.copy_(module.bias.detach().float())
        return layer

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, granularity={self.granularity}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, dtype = x.shape, x.dtype
        x = x.reshape(-1, shape[-1]).float()  # (tokens, in)
        y = self._per_tensor(x) if self.granularity == "per-tensor" else self._per_token(x)
        return y.reshape(*shape[:-1], self.out_features).to(dtype)

    def _per_token(self, x: torch.Tensor) -> torch.Tensor:
        amax = x.abs().amax(dim=1, keepdim=True).clamp_(min=1e-12)  # (tokens, 1)
        return self._per_token_fused(x, amax) if per_tensor_usable() else self._per_token_int_mm(x, amax)

    def _per_token_fused(self, x: torch.Tensor, amax: torch.Tensor) -> torch.Tensor:
        # every row scaled into [-1, 1], so the kernel's one scale per call fits them all
        y = torch.ops.quantized.linear_dynamic(x / amax, self._prepacked(with_bias=False), _fused_reduce_range())
        y.mul_(amax)
        return y.add_(self.bias) if self.bias is not None else y

    def _per_token_int_mm(self, x: torch.Tensor, amax: torch.Tensor) -> torch.Tensor:
        xq = (x * (127 / amax)).round_().to(torch.int8)
        y = torch._int_mm(xq, self.weight.t()).float()  # (tokens, out) int32 -> fp32
        y.mul_(amax / 127).mul_(self.weight_scale)
        return y.add_(self.bias) if self.bias is not None else y

    def _per_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self._prepacked(with_bias=True), _fused_reduce_range())

    def _prepacked(self, with_bias: bool):
        bias = self.bias if with_bias else None
        key = (with_bias, *(_identity(t) for t in (self.weight, self.weight_scale, self.bias)))
        if self._packed is None or self._packed[0] != key:
            with warnings.catch_warnings():  # qint8 tensor creation is deprecated, the packed kernel is not
                warnings.simplefilter("ignore", UserWarning)
                qweight = torch._make_per_channel_quantized_tensor(
                    self.weight, self.weight_scale.double(), torch.zeros(self.out_features, dtype=torch.long), 0
                )
            self._packed = (key, torch.ops.quantized.linear_prepack(qweight, bias))
        return self._packed[1]


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


class Int8Embedding(nn.Module):
    """A token-embedding lookup from int8 rows, each with its own fp32 scale."""

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.register_buffer("weight", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(num_embeddings))

    @classmethod
    def from_float(cls, module: nn.Embedding) -> Int8Embedding:
        q, scale = quantize_weight(module.weight)
        layer = cls(*q.shape)
        layer.weight.copy_(q)
        layer.weight_scale.copy_(scale)
        return layer

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight[ids].float() * self.weight_scale[ids, None]

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8"


def _embedding_name(model: nn.Module) -> str | None:
    """The input token embeddings' module name, unless the output layer shares their weight."""
    emb = model.get_input_embeddings()
    if not isinstance(emb, nn.Embedding):
        return None
    if tied_output(model) is not None:
        warnings.warn(
            "int8-dynamic: the token embeddings are tied to the output layer; they stay in float", stacklevel=3
        )
        return None
    return next(name for name, m in model.named_modules() if m is emb)


def apply(model: nn.Module, config: Int8DynamicConfig) -> tuple[nn.Module, dict]:
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise CompressError("method", "int8-dynamic runs on CPU only", "move the model to CPU or use bnb-int8 on GPU")
    tied = tied_output(model)
    names, kept = select_linears(model, config, untie=True)
    granularity = "per-token" if config.granularity == "auto" else config.granularity  # auto unsettled: no data
    with torch.no_grad():
        for name in names:
            _set_module(model, name, Int8Linear.from_float(model.get_submodule(name), granularity))
        embedding = _embedding_name(model) if config.embeddings else None
        if embedding:
            _set_module(model, embedding, Int8Embedding.from_float(model.get_submodule(embedding)))
    info = {"modules": names, "kept": sorted(kept), "embeddings": [embedding] if embedding else []}
    if tied in names:  # quantized on its own; the input embeddings keep the float weight
        untie_config(model.config)
        info["untied_output"] = tied
    return model, info


def rebuild(model: nn.Module, entry: dict) -> None:
    """Swap the recorded layers of a freshly built model (usually on the meta device) for empty `Int8Linear`s."""
    granularity = entry.get("options", {}).get("granularity", "per-token")
    for name in entry["modules"]:
        old = model.get_submodule(name)
        if isinstance(old, Conv1D):
            in_f, out_f = old.nx, old.nf
        else:
            in_f, out_f = old.in_features, old.out_features
        device = old.weight.device
        with torch.device(device):
            _set_module(model, name, Int8Linear(in_f, out_f, old.bias is not None, granularity))
    for name in entry.get("embeddings", []):
        old = model.get_submodule(name)
        with torch.device(old.weight.device):
            _set_module(model, name, Int8Embedding(old.num_embeddings, old.embedding_dim))


register_method(
    Method("int8-dynamic", "int8 weights per channel, activations quantized per call (CPU)", Int8DynamicConfig,
           apply, rebuild=rebuild, choose=partial(choose, apply=apply))
)  # fmt: skip
