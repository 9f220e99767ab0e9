"""bitsandbytes through transformers' `BitsAndBytesConfig`: bnb-int8 (LLM.int8) and bnb-nf4 / bnb-fp4 (4-bit blocks).

The main path on GPUs; it also runs on CPU. The (pruned) model is written to a temporary folder in full precision
and read back with `quantization_config`, through `compress.load`'s plan-aware class so pruned widths are rebuilt
first. The result is a new model in transformers' own bitsandbytes format: `save` writes int8 / packed 4-bit tensors
and plain `from_pretrained` loads it wherever the pruned shapes fit a standard config.

CPU caveats of bitsandbytes 0.50 handled here:
  - 4-bit layers need out_features % 32 == 0 and in_features % 64 == 0 (its CPU kernel packs 32 rows, blocks of 64);
    other layers stay in full precision, with a warning naming them;
  - the first 4-bit forward repacks weights for the CPU kernel, lossily (block scales to bf16), and a save after that
    writes the lossy form (corrupting file and model): `keep_4bit_savable` restores the original before every save.
"""

from __future__ import annotations

import copy
import warnings
import importlib.util
import logging
import tempfile
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import CompressError
from .rebuild import model_class, plan_aware
from .registry import Method, register_method
from .targets import Targets, is_linear, off_grid, select_linears, warn_off_grid

QUANT_TYPES = ("nf4", "fp4")
BLOCK = 64  # bitsandbytes 4-bit block size (fixed by transformers' BitsAndBytesConfig)
CPU_ROWS = 32  # its CPU 4-bit kernel packs this many output rows together


@dataclass
class BnbInt8Config(Targets):
    threshold: float = 6.0  # LLM.int8 outlier threshold: input features above it run in fp16; 0 turns that off

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.threshold, (int, float)) or self.threshold < 0:
            raise CompressError("threshold", f"expected a number >= 0, got {self.threshold!r}", "the default is 6.0")


@dataclass
class Bnb4bitConfig(Targets):
    quant_type: str = "nf4"  # nf4 (normal-float levels, better for weights) or fp4
    double_quant: bool = True  # quantize the block scales too (saves ~0.4 bit per weight)

    def __post_init__(self):
        super().__post_init__()
        if self.quant_type not in QUANT_TYPES:
            raise CompressError(
                "quant_type", f"unknown 4-bit type {self.quant_type!r}", f"use {' or '.join(QUANT_TYPES)}"
            )
        if not isinstance(self.double_quant, bool):
            raise CompressError("double_quant", f"expected true or false, got {self.double_quant!r}")


def _not_cast_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("MatMul8bitLt: inputs will be cast")


def import_bitsandbytes():
    # its CPU backend logs a warning at import when the optional `kernels` package (fetched from the Hub) is absent
    log = logging.getLogger("bitsandbytes.backends.cpu.ops")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        import bitsandbytes
    finally:
        log.setLevel(level)
    # 8-bit layers log, on every forward with fp32 inputs, that they cast them to fp16 (as documented): drop just that
    autograd_log = logging.getLogger("bitsandbytes.autograd._functions")
    if _not_cast_notice not in autograd_log.filters:
        autograd_log.addFilter(_not_cast_notice)
    return bitsandbytes


def unusable() -> str | None:
    # find_spec, not import: importing bitsandbytes takes seconds, and this runs for every error message
    if importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not installed (pip install compress[quant])"
    return None


def _device() -> str:
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _bnb_config(config, skip_modules: list[str]):
    from transformers import BitsAndBytesConfig

    if isinstance(config, BnbInt8Config):
        return BitsAndBytesConfig(
            load_in_8bit=True, llm_int8_threshold=float(config.threshold), llm_int8_skip_modules=skip_modules
        )
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=config.quant_type,
        bnb_4bit_use_double_quant=config.double_quant,
        llm_int8_skip_modules=skip_modules,
    )


def _checked_4bit_targets(model: nn.Module, names: list[str], kept: dict, device: str, method: str) -> list[str]:
    if device == "cpu":
        bad = off_grid(model, names, CPU_ROWS, BLOCK)
        warn_off_grid(
            method,
            bad,
            f"out % {CPU_ROWS} == 0 and in % {BLOCK} == 0 (bitsandbytes' CPU 4-bit kernel)",
            "they stay in full precision",
        )
        kept.update({n: "width off the 4-bit CPU grid" for n in bad})
        names = [n for n in names if n not in bad]
        if not names:
            raise CompressError(
                "method",
                f"no layer of this model fits {method} on CPU (needs out % {CPU_ROWS} and in % {BLOCK} == 0)",
                "use int8-dynamic or bnb-int8, or prune with --round-to 64",
            )
    else:
        warn_off_grid(
            method,
            off_grid(model, names, 1, BLOCK),
            f"multiples of the block size {BLOCK}",
            "their 4-bit blocks span two output channels, which costs accuracy",
        )
    return names


def apply(model: nn.Module, config: BnbInt8Config | Bnb4bitConfig, method: str) -> tuple[nn.Module, dict]:
    try:
        import_bitsandbytes()
    except ImportError as e:
        raise CompressError("method", f"{method}: bitsandbytes does not import ({e})", "use int8-dynamic") from None
    names, kept = select_linears(model, config)
    device = _device()
    if isinstance(config, Bnb4bitConfig):
        names = _checked_4bit_targets(model, names, kept, device, method)
    chosen = set(names)
    skip_modules = [n for n, m in model.named_modules() if is_linear(m) and n not in chosen]
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    with tempfile.TemporaryDirectory(prefix="compress-bnb-") as tmp:
        model.save_pretrained(tmp)
        cls = plan_aware(model_class(model.config, tmp))
        quantized, info = cls.from_pretrained(
            tmp,
            quantization_config=_bnb_config(config, skip_modules),
            device_map={"": device},
            dtype=dtype,
            output_loading_info=True,
        )
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise CompressError("model", f"bitsandbytes reload was not exact: {str(problems)[:300]}")
    keep_4bit_savable(quantized)
    return quantized.eval(), {"modules": names, "kept": sorted(kept)}


def keep_4bit_savable(model: nn.Module) -> None:
    """Remember each 4-bit layer's weights as loaded and put them back before any `state_dict` (so before a save):
    bitsandbytes' CPU repacking on the first forward is lossy and its undo on save does not restore the scales."""
    bnb = import_bitsandbytes()
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and not hasattr(module, "_compress_loaded"):
            state = module.weight.quant_state
            if state is None:
                continue  # not loaded yet
            if getattr(state, "packing_format_for_cpu", False):  # too late to keep the original
                warnings.warn(
                    "a bitsandbytes 4-bit layer was already repacked for this CPU before compress could keep its "
                    "loaded weights: saving this model will not reproduce its checkpoint (save before any forward)",
                    stacklevel=2,
                )
                continue
            module._compress_loaded = (module.weight.data, copy.deepcopy(state))
            module.register_state_dict_pre_hook(_restore_loaded)


def _restore_loaded(module: nn.Module, prefix: str, keep_vars: bool) -> None:
    if getattr(module.weight.quant_state, "packing_format_for_cpu", False):
        data, state = module._compress_loaded
        module.weight.data = data
        module.weight.quant_state = copy.deepcopy(state)  # the next forward repacks this copy, not the original


def rebuild(model: nn.Module, entry: dict) -> None:
    """On `compress.load` transformers itself rebuilds the bitsandbytes layers (config.quantization_config); here the
    model only gets what makes it savable again: 4-bit layers their save guard, installed just before the first
    forward (their weights have loaded by then), and the fix below for re-saving."""
    import_bitsandbytes()  # transformers imports it for the load anyway; this also quiets its per-call notice
    model.register_state_dict_pre_hook(_drop_deserialize_steps)
    if entry["method"] in ("bnb-nf4", "bnb-fp4"):

        def guard(module, args, kwargs):
            keep_4bit_savable(module)
            handle.remove()

        handle = model.register_forward_pre_hook(guard, with_kwargs=True)


def _drop_deserialize_steps(model: nn.Module, prefix: str, keep_vars: bool) -> None:
    """transformers 5.24 cannot save a model loaded from a bitsandbytes checkpoint: on save it tries to undo the
    load-time deserialize step, which has no inverse (NotImplementedError). The layers' state_dict is already in the
    serialized form, so that step needs no undoing: leave it out of the list save replays."""
    from transformers.integrations.bitsandbytes import Bnb4bitDeserialize, Bnb8bitDeserialize

    steps = getattr(model, "_weight_conversions", None)
    if steps:
        model._weight_conversions = [
            s for s in steps
            if not any(isinstance(op, (Bnb4bitDeserialize, Bnb8bitDeserialize)) for op in getattr(s, "operations", ()))
        ]  # fmt: skip


register_method(
    Method("bnb-int8", "bitsandbytes LLM.int8: 8-bit, outlier features in fp16", BnbInt8Config,
           lambda model, config: apply(model, config, "bnb-int8"), unusable=unusable, rebuild=rebuild)
)  # fmt: skip
for _quant_type in QUANT_TYPES:
    register_method(
        Method(f"bnb-{_quant_type}", f"bitsandbytes 4-bit {_quant_type}, blocks of {BLOCK}", Bnb4bitConfig,
               lambda model, config, name=f"bnb-{_quant_type}": apply(model, config, name),
               preset={"quant_type": _quant_type}, unusable=unusable, rebuild=rebuild)
    )  # fmt: skip
