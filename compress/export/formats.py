"""Export formats: which packages (an extra of `compress`) each needs, and the one-line error when they are missing."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from ..errors import CompressError


@dataclass(frozen=True)
class Format:
    name: str
    extra: str  # pip extra of compress that installs `packages`
    packages: tuple[str, ...]  # import names
    description: str


FORMATS: dict[str, Format] = {
    "onnx": Format("onnx", "onnx", ("onnx", "onnxruntime", "onnxscript"), "ONNX graph for ONNX Runtime (+ int8)"),
}


def require(format: str) -> None:
    """Raise a one-line error naming the extra to install when the format's packages are missing."""
    spec = check_format(format)
    missing = []
    for name in spec.packages:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken install
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise CompressError(
            "format",
            f"{spec.name} export needs the `compress[{spec.extra}]` extra (missing: {', '.join(missing)})",
            f"pip install 'compress[{spec.extra}]'",
        )


def check_format(format: str) -> Format:
    if format not in FORMATS:
        raise CompressError("format", f"unknown export format {format!r}", f"use one of {', '.join(FORMATS)}")
    return FORMATS[format]
