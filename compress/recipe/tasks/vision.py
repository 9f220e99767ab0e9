"""Image classification: rows {"image": PIL image or uint8 array (H, W) / (H, W, C), "label": int} become
`pixel_values` (B, C, H, W) through the model's image processor; quality is accuracy, macro F1 and top-5."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import transformers

from .base import Classifier

CHUNK = 1024  # images sent to the processor at once (bounds peak memory on large splits)


def image_processor(size: int, channels: int, mean: float = 0.5, std: float = 0.5):
    """A ViT image processor: resize to `size`, scale to [0, 1], normalise with `mean` / `std` per channel. The
    torchvision backend when installed, else the PIL one; both save as ViTImageProcessor."""
    pil = importlib.util.find_spec("torchvision") is None
    cls = transformers.ViTImageProcessorPil if pil else transformers.ViTImageProcessor
    return cls(size={"height": size, "width": size}, image_mean=[mean] * channels, image_std=[std] * channels)


def _hwc(image, channels: int) -> np.ndarray:
    """A PIL image, array or tensor -> uint8/float array (H, W, channels), channels last."""
    if hasattr(image, "convert"):  # PIL
        image = image.convert("RGB" if channels == 3 else "L")
    x = np.asarray(image)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.shape[-1] != channels and x.shape[-1] in (1, 3):
        x = x.mean(-1, keepdims=True).astype(x.dtype) if channels == 1 else np.repeat(x, channels, -1)
    return x


class ImageClassification(Classifier):
    name, primary = "image-classification", "accuracy"
    input_key = "image"
    head = transformers.AutoModelForImageClassification

    def processor(self, model_path: str):
        config = transformers.AutoConfig.from_pretrained(model_path)
        self.channels, self.image_size = config.num_channels, config.image_size
        self.patch_size = config.patch_size
        if Path(model_path).is_dir() and not (Path(model_path) / "preprocessor_config.json").exists():
            return image_processor(self.image_size, self.channels)  # a bare config: resize + scale to [-1, 1]
        return transformers.AutoImageProcessor.from_pretrained(model_path)

    # -- data ------------------------------------------------------------------------------------------------------
    def pixels(self, rows: list[dict]) -> torch.Tensor:
        """(N, C, H, W) float pixel values of the rows' images."""
        parts = []
        for i in range(0, len(rows), CHUNK):
            images = [_hwc(r["image"], self.channels) for r in rows[i : i + CHUNK]]
            out = self.run.processor(images=images, return_tensors="pt", input_data_format="channels_last")
            parts.append(out["pixel_values"])
        return torch.cat(parts)

    def examples(self, rows):
        return [{"pixel_values": x} for x in self.pixels(rows)]  # views of one tensor

    def batches(self, rows, batch_size, with_labels=False):
        x = self.pixels(rows)
        out = [{"pixel_values": x[i : i + batch_size]} for i in range(0, len(rows), batch_size)]
        if with_labels and rows and rows[0].get("label") is not None:
            y = torch.tensor(self.labels(rows))
            for i, b in enumerate(out):
                b["labels"] = y[i * batch_size : (i + 1) * batch_size]
        return out

    def latency_inputs(self, rows, batch_size):
        rows = (rows * batch_size)[:batch_size] if rows else []
        if not rows:
            return {"pixel_values": torch.zeros(batch_size, self.channels, self.image_size, self.image_size)}
        return {"pixel_values": self.pixels(rows)}

    def macs_length(self) -> int:
        """Tokens per image: patches + the CLS token."""
        return (self.image_size // self.patch_size) ** 2 + 1

    # -- quality -----------------------------------------------------------------------------------------------------
