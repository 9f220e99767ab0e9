"""compress: structured pruning, distillation and quantization for Hugging Face transformer models.

import compress
plan = compress.prune(model, heads=0.5, mlp=0.5, criterion="fisher", layout="global", calibration=batches)
compress.save(model, "out/pruned")
model = compress.load("out/pruned")
model = compress.quantize(model, method="int8-dynamic")
compress.sparsify(model, sparsity=0.5, pattern="2:4", criterion="sparsegpt", calibration=batches)
"""

__version__ = "0.1.0"

from .distill import DistillConfig, distill  # noqa: E402
from .errors import CompressError  # noqa: E402
from .io import load, save  # noqa: E402
from .pruning.api import prune  # noqa: E402
from .pruning.plan import PruningPlan  # noqa: E402
from .quantize import quantize  # noqa: E402
from .sparsity import sparsify  # noqa: E402

__all__ = [
    "CompressError",
    "DistillConfig",
    "PruningPlan",
    "distill",
    "load",
    "prune",
    "quantize",
    "save",
    "sparsify",
    "__version__",
]
