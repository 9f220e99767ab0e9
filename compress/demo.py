"""The default job: prune the real all-MiniLM-L6-v2 by 50 % heads and 50 % MLP neurons, save, reload, and compare
with the dense model on real Rotten-Tomatoes sentences (parameters, size, batch-1 latency, embedding cosine)."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import transformers
from rich.console import Console
from rich.table import Table

from . import assets, io
from .data import text_batches
from .evaluate.embeddings import cosine_fidelity, embed
from .pruning.api import prune
from .stats import count_params, estimate_macs, latency_side_by_side, weights_size


def run_demo(
    output: Path,
    heads: float = 0.5,
    mlp: float = 0.5,
    criterion: str = "activation",
    overwrite: bool = False,
    console: Console | None = None,
    calibration_size: int = 256,
    eval_size: int = 512,
) -> dict:
    console = console or Console()
    path = assets.minilm_path()
    console.print(f"model: all-MiniLM-L6-v2 from {path}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    dense = io.load(path)
    data = assets.rotten_tomatoes()
    calib = text_batches(tokenizer, [t for t, _ in data["train"][:calibration_size]], 32, 128)
    evalb = text_batches(tokenizer, [t for t, _ in data["test"][:eval_size]], 64, 128)

    pruned = copy.deepcopy(dense)
    plan = prune(pruned, heads=heads, mlp=mlp, criterion=criterion, calibration=calib)
    io.save(pruned, output, tokenizer=tokenizer, overwrite=overwrite)
    reloaded = io.load(output)

    ref, ours, again = embed(dense, evalb), embed(pruned, evalb), embed(reloaded, evalb)
    reload_diff = float((ours - again).abs().max())
    one = dict(
        tokenizer(data["test"][0][0], padding="max_length", max_length=128, truncation=True, return_tensors="pt")
    )
    lat = latency_side_by_side({"dense": dense, "pruned": reloaded}, one, repeats=15)
    macs_d, macs_p = estimate_macs(dense, 128), estimate_macs(reloaded, 128)
    result = {
        "criterion": criterion,
        "heads": heads,
        "mlp": mlp,
        "prune_seconds": plan.summary["seconds"],
        "params": [count_params(dense), count_params(reloaded)],
        "size_bytes": [weights_size(path), weights_size(output)],
        "latency_b1_s128": [lat["dense"], lat["pruned"]],
        "macs_s128": [macs_d, macs_p],
        "cosine_vs_dense": cosine_fidelity(ref, ours),
        "reload_max_abs_diff": reload_diff,
        "sentences": len(ref),
        "threads": torch.get_num_threads(),
    }

    table = Table(
        title=f"all-MiniLM-L6-v2: {heads:.0%} heads + {mlp:.0%} MLP neurons removed ({criterion}, no retraining)"
    )
    for col in ("", "dense", "pruned", "ratio"):
        table.add_column(col, justify="right")
    p, s, lt, mc = result["params"], result["size_bytes"], result["latency_b1_s128"], result["macs_s128"]
    table.add_row("parameters", f"{p[0]:,}", f"{p[1]:,}", f"{p[1] / p[0]:.3f}")
    table.add_row("size on disk (MB)", f"{s[0] / 1e6:.1f}", f"{s[1] / 1e6:.1f}", f"{s[1] / s[0]:.3f}")
    table.add_row("MACs, seq 128 (G)", f"{mc[0] / 1e9:.2f}", f"{mc[1] / 1e9:.2f}", f"{mc[1] / mc[0]:.3f}")
    table.add_row(
        "latency, batch 1 x 128 (ms)", f"{lt[0] * 1e3:.1f}", f"{lt[1] * 1e3:.1f}", f"{lt[0] / lt[1]:.2f}x faster"
    )
    table.add_row(f"embedding cosine vs dense ({len(ref)} sentences)", "1.000", f"{result['cosine_vs_dense']:.3f}", "")
    console.print(table)
    console.print(
        f"saved to {output} (reload max |diff| {reload_diff:.1e}); pruning took {result['prune_seconds']:.1f}s. "
        "Distillation recovers the rest (see the distillation issue)."
    )
    return result
