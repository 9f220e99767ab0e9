"""An untrained ViT for Fashion-MNIST, built from a config with a fixed seed. No package registry ships a pretrained
ViT, so a recipe's `train` stage (head_only: false) trains this one from scratch into the teacher.

6 layers, 6 heads of 32 (hidden 192), MLP 768, 2.7M parameters, on 28x28x1 images cut into 7x7 patches: 16 patches +
CLS = 17 tokens. Patch 7 rather than 4 (50 tokens) makes training about 3x cheaper per image on a CPU for a small loss
in accuracy; heads and neurons stay plentiful per layer, so structured pruning has real choices.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import transformers

from ._cache import fetched
from .fashion import CLASSES

DESCRIPTION = "ViT for 28x28 grayscale images (6 layers, 6 heads of 32, MLP 768, patch 7, 10 classes), untrained, 2.7M"
SEED = 0
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST pixel statistics (training images, scaled to [0, 1])


def config() -> transformers.ViTConfig:
    return transformers.ViTConfig(
        image_size=28,
        patch_size=7,
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
    """Folder with config.json, model.safetensors (random weights, seed 0) and preprocessor_config.json; the cache
    folder is named after the config and seed, so changing either builds a new one."""
    key = hashlib.sha256(f"{config().to_json_string()}{SEED}{MEAN}{STD}".encode()).hexdigest()[:8]
    return fetched(f"vit-fashion-mnist-scratch-{key}", _build)
