"""`compress sparsify MODEL --output DIR ...`: everything is validated before the model loads; nothing is written on
bad input (exit 2 with one line, via compress.cli)."""

from __future__ import annotations

from pathlib import Path

from ..errors import CompressError
from .config import STORAGES


def sparsify_command(console, load_model, model: str, output: Path, *, sparsity, pattern, criterion, calibration,
                     samples: int, seq_len: int, skip: tuple, storage: str, overwrite: bool) -> dict:  # fmt: skip
    from .. import assets, io
    from ..data import read_texts, text_batches
    from ..stats import weights_size
    from .api import check_widths, make_config, sparsify
    from ..quantize.targets import select_linears

    if output.exists() and not overwrite:
        raise CompressError("output", f"{output} already exists", "choose another folder or pass --overwrite")
    if storage not in STORAGES:
        raise CompressError("storage", f"unknown storage {storage!r}", f"use one of {', '.join(STORAGES)}")
    config = make_config(criterion, calibration is not None, sparsity=sparsity, pattern=pattern, skip=skip)
    texts = read_texts(calibration, limit=samples) if calibration else None
    net, tokenizer = load_model(model)
    check_widths(net, select_linears(net, config)[0], config)  # N:M on a width that does not fit: before any work
    batches = None
    if texts:
        if tokenizer is None:
            raise CompressError("calibration", f"{model} has no tokenizer", "use the Python API with your own batches")
        batches = text_batches(tokenizer, texts, batch_size=8, max_length=seq_len)
    summary = sparsify(net, config.sparsity, config.pattern, config.criterion, calibration=batches, skip=config.skip)
    io.save(net, output, tokenizer=tokenizer, overwrite=overwrite, sparse_storage=storage)
    source = Path(assets.resolve_model(model))
    before = f"{weights_size(source) / 1e6:.1f} MB -> " if source.is_dir() else ""
    console.print(
        f"sparsified {summary['layers_sparsified']} layers with {summary['criterion']} ({summary['pattern']}) in "
        f"{summary['seconds']:.1f}s: {summary['achieved']:.1%} of their weights are zero; weights {before}"
        f"{weights_size(output) / 1e6:.1f} MB ({storage} storage); saved to {output}"
        + ("" if net.config.compress.get("plain_loadable") else " (load with compress.load)")
    )
    return summary
