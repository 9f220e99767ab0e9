"""compress: structured pruning, distillation and quantization for Hugging Face transformer models.

import compress
plan = compress.prune(model, heads=0.5, mlp=0.5, criterion="fisher", layout="global", calibration=batches)
compress.save(model, "out/pruned")
model = compress.load("out/pruned")
model = compress.quantize(model, method="int8-dynamic")
"""

from .distill import DistillConfig, distill
from .errors import CompressError
from .io import load, save
from .pruning.api import prune
from .pruning.plan import PruningPlan
from .quantize import quantize
from .version import __version__

__all__ = [
    "CompressError",
    "DistillConfig",
    "PruningPlan",
    "distill",
    "load",
    "prune",
    "quantize",
    "save",
    "__version__",
]
