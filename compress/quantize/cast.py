"""bf16 / fp16: cast every weight (and so every activation) to a 16-bit float type.

Half the bytes on disk and in memory, and on CPUs with AVX-512 BF16 / AMX bf16 matmuls run several times faster than
fp32. Every weight is cast (norms and heads included: mixing dtypes would need casts at every boundary); buffers that
are not saved (rotary frequencies) stay as built, as they are after a reload. The saved `config.json` records the
dtype, so `compress.load` and plain `from_pretrained` bring the model back in it. Feed float inputs (pixel values,
audio features) in the model's dtype, as with any half-precision transformers model.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import CompressError
from .registry import Method, register_method

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class CastConfig:
    dtype: str = "bfloat16"  # bfloat16 (fp32's range, fewer mantissa bits) or float16 (more precision, less range)

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise CompressError("dtype", f"unknown dtype {self.dtype!r}", f"use one of {', '.join(DTYPES)}")


def apply(model: nn.Module, config: CastConfig) -> tuple[nn.Module, dict]:
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    if on_cpu and config.dtype == "bfloat16" and not torch.cpu._is_avx512_bf16_supported():
        warnings.warn("bf16 on a CPU without AVX-512 BF16 is emulated and usually slower than fp32", stacklevel=3)
    dtype = DTYPES[config.dtype]
    for module in model.modules():
        for param in module._parameters.values():
            if param is not None and param.is_floating_point():
                param.data = param.data.to(dtype)
        for name, buf in module._buffers.items():
            # non-persistent buffers (rotary inv_freq...) are rebuilt in fp32 on load; keep them so, to match it
            if buf is not None and buf.is_floating_point() and name not in module._non_persistent_buffers_set:
                module._buffers[name] = buf.to(dtype)
    return model, {}


register_method(
    Method("bf16", "cast to bfloat16: half size, fast on CPUs with AVX-512 BF16 / AMX", CastConfig, apply,
           preset={"dtype": "bfloat16"})
)  # fmt: skip
register_method(Method("fp16", "cast to float16: half size (GPUs)", CastConfig, apply, preset={"dtype": "float16"}))
