"""Weight sparsity: zero individual weights (unstructured or N:M such as 2:4) chosen by magnitude, Wanda or SparseGPT.

    import compress
    summary = compress.sparsify(model, sparsity=0.5, pattern="unstructured", criterion="sparsegpt", calibration=batches)
    summary = compress.sparsify(model, pattern="2:4", criterion="wanda", calibration=batches)
    compress.save(model, "out/sparse")          # non-zeros + bitmask on disk; compress.load restores it exactly

Structured pruning makes a model smaller and faster on any hardware; weight sparsity makes it smaller on disk (and
faster only where a kernel skips the zeros: 2:4 on GPU sparse tensor cores; dense CPU kernels still multiply them).
Order: prune -> sparsify -> distill (zeros kept) -> quantize. A criterion is one function registered in
`criteria.CRITERIA`; the skip rules are the quantization ones.
"""

from .api import check_widths, make_config, sparsify
from .config import STORAGES, SparsityConfig
from .pattern import PATTERNS, parse_pattern
from .criteria import CRITERIA, Criterion, InputStats, register_criterion
from .masks import keep_zeros, zero_masks

__all__ = [
    "CRITERIA",
    "PATTERNS",
    "STORAGES",
    "Criterion",
    "InputStats",
    "SparsityConfig",
    "check_widths",
    "keep_zeros",
    "make_config",
    "parse_pattern",
    "register_criterion",
    "sparsify",
    "zero_masks",
]
