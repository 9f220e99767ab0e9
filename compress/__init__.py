"""compress: structured pruning, distillation and quantization for Hugging Face transformer models.

import compress
plan = compress.prune(model, heads=0.5, mlp=0.5, criterion="fisher", layout="global", calibration=batches)
compress.save(model, "out/pruned")
report = compress.reconstruct(pruned, dense, batches)  # refit after any pruning (prune does it by default)
model = compress.load("out/pruned")
model = compress.quantize(model, method="int8-dynamic")
compress.sparsify(model, sparsity=0.5, pattern="2:4", criterion="sparsegpt", calibration=batches)
compress.export(model, "out/onnx", format="onnx", int8=True)   # encoders -> ONNX Runtime, verified
"""

from .distill import DistillConfig, distill
from .errors import CompressError
from .export import export
from .io import load, save
from .pruning.api import prune
from .pruning.plan import PruningPlan
from .pruning.reconstruct import reconstruct
from .quantize import quantize
from .sparsity import sparsify
from .version import __version__

__all__ = [
    "CompressError",
    "DistillConfig",
    "PruningPlan",
    "distill",
    "export",
    "load",
    "prune",
    "quantize",
    "reconstruct",
    "save",
    "sparsify",
    "__version__",
]
