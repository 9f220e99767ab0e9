"""`compress export MODEL --format onnx [--int8] --output DIR`: the CLI's body (cli.py only declares the options).

Every check that needs no weights runs first (output folder, format, installed extra, family, quantized source), so
bad input costs nothing and writes nothing."""

from __future__ import annotations

from pathlib import Path

from ..errors import CompressError


def _processor(path: str):
    """Tokenizer, image processor or feature extractor saved with the model, or None."""
    import transformers

    try:
        return transformers.AutoProcessor.from_pretrained(path)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def export_command(
    model: str,
    output: Path,
    format: str,
    int8: bool,
    tolerance: float,
    calibration: Path | None,
    samples: int,
    seq_len: int,
    overwrite: bool,
    load_model,
) -> str:
    """Export; return the one-line summary the CLI prints. `load_model`: the CLI's loader (name -> model, tokenizer)."""
    import transformers

    from .. import assets
    from ..data import read_texts, text_batches
    from . import check_format, export, require
    from .onnx import check_exportable

    if output.exists() and not overwrite:
        raise CompressError("output", f"{output} already exists", "choose another folder or pass --overwrite")
    check_format(format)
    require(format)
    path = assets.resolve_model(model)
    try:
        config = transformers.AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise CompressError(
            "model",
            f"cannot read the config of {model!r} ({str(e).splitlines()[0][:160]})",
            "give a model folder or a built-in asset (minilm-l6)",
        ) from None
    check_exportable(config)
    net, _ = load_model(model)
    processor = _processor(path)
    batches = None
    if calibration is not None:
        texts = read_texts(calibration, limit=samples)
        if not hasattr(processor, "pad_token"):
            raise CompressError("calibration", f"{model} has no tokenizer for text calibration", "leave it out")
        batches = text_batches(processor, texts, batch_size=16, max_length=seq_len)
    info = export(
        net,
        output,
        format=format,
        int8=int8,
        tokenizer=processor,
        calibration=batches,
        tolerance=tolerance,
        source=path if Path(path).is_dir() else None,
        overwrite=overwrite,
    )
    v, mb = info["verification"], {k: b / 1e6 for k, b in info["size_bytes"].items()}
    line = (
        f"exported to {output} (onnx{' int8' if int8 else ''}, opset {info['opset']}): float graph max |ORT - PyTorch| "
        f"{v['max_abs_diff']:.2g} over {v['batches']} batches"
    )
    if int8:
        q = v["int8"]
        agree = f", argmax agreement {q['argmax_agreement']:.1%}" if "argmax_agreement" in q else ""
        line += f"; int8 max diff {q['max_abs_diff']:.2g}{agree}"
    line += f"; {info['file']} {mb['onnx']:.1f} MB"
    if "source_safetensors" in mb:
        line += f" (safetensors {mb['source_safetensors']:.1f} MB)"
    return line
