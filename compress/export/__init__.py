"""Export a (pruned, distilled) model to a deployment runtime: one verb, one registry of formats.

    import compress
    compress.export(model, "out/onnx", format="onnx", int8=True, tokenizer=tok)   # verified against PyTorch
    from compress.export.runtime import load_exported
    logits = load_exported("out/onnx")(**tok(["a fine film"], return_tensors="pt")).logits

Formats (`FORMATS`): `onnx` — the encoder families (bert-likes, distilbert, mpnet, vit/deit, wav2vec2/hubert) with
dynamic batch and sequence axes, int8 through ONNX Runtime's dynamic quantization; see `onnx.py`. Each format names
the packages it needs (an extra of the `compress` package); a missing one is a one-line `CompressError` naming it.
Causal LMs and Whisper are not exported here: compress writes their uniform plans as standard configs, which the
usual converters read (llama.cpp's `convert_hf_to_gguf.py`, CTranslate2's `ct2-transformers-converter`); see README.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from .formats import FORMATS, Format, check_format, require


def export(
    model: nn.Module,
    path: str | os.PathLike,
    format: str = "onnx",
    int8: bool = False,
    tokenizer=None,
    calibration: list[dict] | None = None,
    tolerance: float = 1e-4,
    source: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> dict:
    """Export `model` to `path` (a new folder, written atomically) and return what `export.json` records.

    The float graph is checked against PyTorch on `calibration` batches (dicts of model inputs; extra keys such as
    labels are ignored) plus synthetic inputs of other batch sizes and lengths, and refused when the largest
    difference exceeds `tolerance` × max(1, largest |output|). `int8=True` then quantizes it (weights int8, also the
    token embeddings; activations per call) and reports how far the int8 outputs move. `tokenizer` (or an image
    processor / feature extractor) is saved beside the graph, with the model's config.json. `source` (the folder
    the model came from) is recorded. Models quantized by compress cannot be exported: export their float source
    with `int8=True` instead."""
    check_format(format)
    require(format)
    from .onnx import OnnxExportConfig, export_onnx

    config = OnnxExportConfig(int8=int8, tolerance=tolerance)
    return export_onnx(model, Path(path), config, tokenizer, calibration, source, overwrite)


def exportable_model_types(format: str = "onnx") -> list[str]:
    from .onnx import exportable_model_types as onnx_types

    check_format(format)
    return onnx_types()


__all__ = ["FORMATS", "Format", "check_format", "export", "exportable_model_types", "require"]
