"""Registry of model-family adapters: the one place that lists what compress supports."""

from __future__ import annotations

from ..errors import CompressError
from .base import AttentionSite, MlpSite, ModelAdapter
from .bert import BertAdapter
from .distilbert import DistilBertAdapter
from .gpt2 import GPT2Adapter
from .llama import LlamaAdapter
from .mpnet import MPNetAdapter
from .vit import ViTAdapter
from .wav2vec2 import Wav2Vec2Adapter
from .whisper import WhisperAdapter

ADAPTERS: dict[str, ModelAdapter] = {}


def register_adapter(adapter: ModelAdapter) -> None:
    for model_type in adapter.model_types:
        if model_type in ADAPTERS:
            raise ValueError(f"model type {model_type!r} already has adapter {ADAPTERS[model_type].name!r}")
        ADAPTERS[model_type] = adapter


for _cls in (
    BertAdapter,
    DistilBertAdapter,
    MPNetAdapter,
    ViTAdapter,
    Wav2Vec2Adapter,
    WhisperAdapter,
    GPT2Adapter,
    LlamaAdapter,
):
    register_adapter(_cls())


def supported_model_types() -> list[str]:
    return sorted(ADAPTERS)


def get_adapter(model_or_config) -> ModelAdapter:
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", None)
    if model_type not in ADAPTERS:
        raise CompressError(
            "model",
            f"unsupported model family {model_type!r}",
            f"supported: {', '.join(supported_model_types())}",
        )
    return ADAPTERS[model_type]


__all__ = [
    "ADAPTERS",
    "AttentionSite",
    "MlpSite",
    "ModelAdapter",
    "get_adapter",
    "register_adapter",
    "supported_model_types",
]
