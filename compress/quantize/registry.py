"""The registry of quantization methods: the one list the API, the CLI and the error messages read names from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn


def _usable() -> str | None:
    return None


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    config: type  # a dataclass validated in __post_init__; its fields are the method's options
    apply: Callable[[nn.Module, Any], tuple[nn.Module, dict]]  # -> (quantized model, extra record fields)
    preset: dict = field(default_factory=dict)  # options this name fixes (bnb-nf4 -> quant_type="nf4")
    unusable: Callable[[], str | None] = _usable  # why it cannot run here (backend missing...), or None
    rebuild: Callable[[nn.Module, dict], None] | None = None  # restructure a freshly built model before weights load
    # settle options that depend on the model and calibration data (e.g. granularity "auto") before `apply`, in
    # place on the config; returns what to record about the choice
    choose: Callable[[nn.Module, Any, list | None, Any], dict] | None = None


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> None:
    if method.name in METHODS:
        raise ValueError(f"quantization method {method.name!r} is already registered")
    METHODS[method.name] = method


def list_methods() -> list[str]:
    return sorted(METHODS)
