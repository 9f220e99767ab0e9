"""What `sparsify` does, as one validated config: how many weights to zero, in which pattern, chosen by which criterion.

    SparsityConfig(sparsity=0.5, pattern="unstructured", criterion="sparsegpt")   # any half of each layer
    SparsityConfig(pattern="2:4", criterion="wanda")                              # 2 of every 4 inputs kept

`pattern` "unstructured" zeroes the fraction `sparsity` of every layer's weights; "N:M" keeps N weights in every group
of M consecutive inputs of an output row (2:4 is what GPU sparse tensor cores run), so its sparsity is 1 - N/M.
The skip rules (`skip`, `skip_head`, `skip_edge_layers`) are the quantization ones (`compress/quantize/targets.py`):
by default the Linear / Conv1D layers inside the transformer blocks are sparsified and heads stay dense.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CompressError
from ..quantize.targets import Targets
from .criteria import CRITERIA
from .pattern import Pattern, parse_pattern

STORAGES = ("bitmask", "dense")


@dataclass
class SparsityConfig(Targets):
    sparsity: float | None = None  # fraction of weights zeroed per layer, in [0, 1); N:M patterns fix it at 1 - N/M
    pattern: str = "unstructured"  # unstructured | 2:4 | 4:8 (any N:M: keep N of every M consecutive inputs)
    criterion: str = "magnitude"  # magnitude | wanda | sparsegpt (see criteria.py)
    block_size: int = 128  # sparsegpt: columns updated together (lazy batch updates); a multiple of M for N:M
    dampening: float = 0.01  # sparsegpt: fraction of the mean Hessian diagonal added to it (numerical stability)
    # wanda / sparsegpt: "group" fits each group of layers sharing an input (q/k/v, o, up/gate, down) to what the
    # groups sparsified before it produce; "block" fits all of a block's layers to the block's inputs at once
    sequential: str = "group"
    # sparsegpt: fit each layer to reproduce the dense model's outputs of that layer (from the dense model's inputs),
    # not its own outputs on the inputs the sparsified layers before it produce (`criteria.dense_target`)
    dense_target: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.criterion not in CRITERIA:
            raise CompressError(
                "criterion", f"unknown criterion {self.criterion!r}", f"use one of {', '.join(CRITERIA)}"
            )
        rule = parse_pattern(self.pattern)
        if self.sparsity is not None and (
            isinstance(self.sparsity, bool) or not isinstance(self.sparsity, (int, float))
        ):
            raise CompressError("sparsity", f"expected a number in [0, 1), got {self.sparsity!r}")
        if rule.structured:
            implied = 1 - rule.n / rule.m
            if self.sparsity is not None and abs(self.sparsity - implied) > 1e-9:
                raise CompressError(
                    "sparsity",
                    f"pattern {self.pattern} keeps {rule.n} of {rule.m} weights, i.e. sparsity {implied:g}, "
                    f"not {self.sparsity:g}",
                    f"leave sparsity unset or set it to {implied:g}, or use pattern=unstructured",
                )
            self.sparsity = implied
        elif self.sparsity is None:
            self.sparsity = 0.5
        if not 0 <= self.sparsity < 1:
            raise CompressError(
                "sparsity", f"{self.sparsity} is outside [0, 1)", "give the fraction of weights to zero"
            )
        self.sparsity = float(self.sparsity)
        if not isinstance(self.block_size, int) or self.block_size < 1:
            raise CompressError("block_size", f"expected a positive integer, got {self.block_size!r}", "e.g. 128")
        if rule.structured and self.block_size % rule.m:
            raise CompressError(
                "block_size", f"{self.block_size} is not a multiple of M={rule.m}", f"use e.g. {rule.m * 16}"
            )
        if self.sequential not in ("group", "block"):
            raise CompressError("sequential", f"unknown value {self.sequential!r}", "use group or block")
        if not 0 < self.dampening < 1:
            raise CompressError("dampening", f"{self.dampening} is outside (0, 1)", "e.g. 0.01")

    @property
    def rule(self) -> Pattern:
        return parse_pattern(self.pattern)
