"""An untrained ViT for Fashion-MNIST, built from a config with a fixed seed. No package registry ships a pretrained
ViT, so a recipe's `train` stage (head_only: false) trains this one from scratch into the teacher.

6 layers, 6 heads of 32 (hidden 192), MLP 768, patch 4 on 28x28x1 images: 49 patches + CLS = 50 tokens, 2.7M
parameters. Heads and neurons are plentiful enough per layer for structured pruning to have real choices.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers

from ._cache import fetched
from .fashion import CLASSES

DESCRIPTION = "ViT for 28x28 grayscale images (6 layers, 6 heads of 32, MLP 768, patch 4, 10 classes), untrained, 2.7M"
SEED = 0
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST pixel statistics (training images, scaled to [0, 1])


def config() -> transformers.ViTConfig:
    return transformers.ViTConfig(
        image_size=28,
        patch_size=4,
        num_channels=1,
        hidden_size=192,
        num_hidden_layers=6,
        num_attention_heads=6,
        intermediate_size=768,
        num_labels=len(CLASSES),
        id2label=dict(enumerate(CLASSES)),
        label2id={c: i for i, c in enumerate(CLASSES)},
    )


def _build(tmp: Path) -> None:
    from ..recipe.tasks.vision import image_processor

    torch.manual_seed(SEED)
    model = transformers.ViTForImageClassification(config())
    model.save_pretrained(tmp)
    image_processor(28, 1, MEAN, STD).save_pretrained(tmp)


def fetch() -> Path:
    """Folder with config.json, model.safetensors (random weights, seed 0) and preprocessor_config.json."""
    return fetched("vit-fashion-mnist-scratch", _build)
