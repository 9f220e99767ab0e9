"""The recipe's `sparsify` stage: zero individual weights (see `compress.sparsify`); validated when the recipe loads.

    - sparsify: {sparsity: 0.5, pattern: unstructured, criterion: sparsegpt}
    - sparsify: {pattern: "2:4", criterion: wanda}

Calibration batches come from the recipe's `data` (train split, `calibration_size` examples). Put it after `prune`
and before `distill` (which keeps the zeros) and `quantize`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..sparsity import PATTERNS, STORAGES
from ..sparsity.criteria import CRITERIA


class SparsifyStage(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)  # as schema.Strict
    type: Literal["sparsify"] = "sparsify"
    sparsity: float | None = Field(
        None, ge=0, lt=1, description="fraction of each layer's weights set to zero (default 0.5; N:M: 1 - N/M)"
    )
    pattern: str = Field(
        "unstructured",
        description=f"{', '.join(PATTERNS)}: any weights, or keep N of every M consecutive inputs of a row "
        "(2:4 is what GPU sparse tensor cores run)",
    )
    criterion: str = Field(
        "sparsegpt",
        description=f"{', '.join(CRITERIA)}: |W|; |W| x input norm (Wanda); OBS with weight updates from the "
        "layer-input Hessian (SparseGPT)",
    )
    skip: list[str] = Field(default_factory=list, description="module names / fnmatch patterns kept dense")
    skip_edge_layers: bool = Field(False, description="also keep the first and last block of every stack dense")
    block_size: int = Field(128, gt=0, description="sparsegpt: columns updated together (a multiple of M for N:M)")
    dampening: float = Field(
        0.01, gt=0, lt=1, description="sparsegpt: Hessian damping, a fraction of its mean diagonal"
    )
    sequential: str = Field(
        "group",
        description="wanda / sparsegpt: group fits each group of a block's layers sharing an input (q/k/v, o, "
        "up/gate, down) to what the groups before it produce once sparse; block fits all of a block's layers to its "
        "inputs at once (as llm-compressor)",
    )
    dense_target: bool = Field(
        False,
        description="sparsegpt: fit each layer to the dense model's outputs of that layer (pays off when the "
        "calibration tokens are many times the layer widths; see benchmarks/sparsity)",
    )
    storage: str = Field(
        "bitmask",
        description=f"{', '.join(STORAGES)}: non-zeros + bitmask (compact, compress.load) or plain tensors (any "
        "transformers install)",
    )

    @model_validator(mode="after")
    def _check(self):
        from ..sparsity import SparsityConfig

        SparsityConfig(**self.options())  # unknown pattern / criterion, N:M vs sparsity, block size
        if self.storage not in STORAGES:
            raise ValueError(f"unknown storage {self.storage!r}; use one of {', '.join(STORAGES)}")
        return self

    def options(self) -> dict:
        return self.model_dump(exclude={"type", "storage"})
