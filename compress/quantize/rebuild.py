"""Model classes that rebuild a compressed checkpoint's structure before its weights load: the pruned widths from the
pruning record, then the quantized layers of the recorded method. `compress.load` and the bitsandbytes method's
reload both build models through `plan_aware(model_class(config))`.

The subclass keeps the original class name and `__module__`, else transformers treats it as custom code and skips its
checkpoint key renaming. The methods' registry is filled by the package `compress.quantize`, which imports this.
"""

from __future__ import annotations

import transformers
from torch import nn

from ..errors import CompressError
from ..pruning.record import get_record, rebuild
from .registry import METHODS


def model_class(config, path) -> type:
    """The transformers class named first in `config.architectures`."""
    archs = getattr(config, "architectures", None) or []
    cls = getattr(transformers, archs[0], None) if archs else None
    if cls is None:
        raise CompressError(
            "config.json",
            f"{path} names no transformers model class ({archs or 'none'})",
            "save the model with compress.save or give a transformers checkpoint",
        )
    return cls


def rebuild_quantized(model: nn.Module) -> None:
    """Called on the freshly built (meta) model: apply the recorded quantization method's structure."""
    entry = (get_record(model.config) or {}).get("quantization")
    if not entry:
        return
    spec = METHODS.get(entry["method"])
    if spec is None:
        raise CompressError(
            "config.json", f"unknown quantization method {entry['method']!r}", "upgrade compress to load this model"
        )
    if spec.rebuild is not None:
        spec.rebuild(model, entry)


def plan_aware(cls: type) -> type:
    """`cls` whose `__init__` reshapes the model to the pruning record, then swaps in the quantized layers."""

    def __init__(self, config, *args, **kwargs):
        cls.__init__(self, config, *args, **kwargs)
        rebuild(self)
        rebuild_quantized(self)  # quantized layers are swapped in after the pruned shapes are set

    return type(
        cls.__name__, (cls,), {"__init__": __init__, "__module__": cls.__module__, "__qualname__": cls.__qualname__}
    )
