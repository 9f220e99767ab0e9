"""Which weights a sparsity pattern lets a criterion keep: any fraction (unstructured) or N of every M inputs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import CompressError

PATTERNS = ("unstructured", "2:4", "4:8")  # shown in errors and help; any N:M with 0 < N < M <= 64 is accepted


@dataclass(frozen=True)
class Pattern:
    """Unstructured (n = m = 0) or N:M: keep n weights in every group of m consecutive inputs."""

    n: int = 0
    m: int = 0

    @property
    def structured(self) -> bool:
        return self.m > 0

    def __str__(self) -> str:
        return f"{self.n}:{self.m}" if self.m else "unstructured"


def parse_pattern(text: str) -> Pattern:
    if text == "unstructured":
        return Pattern()
    match = re.fullmatch(r"(\d+):(\d+)", str(text))
    if match and 0 < int(match[1]) < int(match[2]) <= 64:
        return Pattern(int(match[1]), int(match[2]))
    raise CompressError("pattern", f"unknown pattern {text!r}", f"use one of {', '.join(PATTERNS)} (or N:M, N < M)")
