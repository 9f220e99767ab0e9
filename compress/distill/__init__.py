"""Knowledge distillation from the dense teacher (logits KL, hidden states, sentence embeddings) on Accelerate."""

from .config import DistillConfig
from .loop import DistillResult, default_layer_map, distill

__all__ = ["DistillConfig", "DistillResult", "default_layer_map", "distill"]
