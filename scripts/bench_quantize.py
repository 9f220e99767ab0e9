"""Benchmark post-training quantization on the real all-MiniLM-L6-v2, dense and 50/50-pruned (a script, not a test:
timings are machine-dependent).

For every method, on the dense model and on the pruned one (50 % heads + 50 % neurons, activation criterion):
  - size on disk: the safetensors files `compress.save` writes, in all and for the transformer blocks alone (what the
    methods quantize; the embeddings stay fp32). The checkpoint is also reloaded with `compress.load` and its
    outputs compared with the in-memory model ("reload exact");
  - weights in memory: bytes of all parameters and buffers;
  - peak memory: peak RSS (VmHWM) increase of a fresh process that loads the checkpoint with `compress.load` and
    runs one batch-32 seq-128 forward, after a warm-up on a tiny model (imports, kernel setup). safetensors are
    memory-mapped, so weights count once the forward touches them; activations are included;
  - latency at batch 1 and batch 32 (seq 128) as a speed-up over dense fp32: all models timed side by side in one
    run, interleaved in every round (compress.stats.latency_side_by_side), median of --repeats;
  - fidelity: mean cosine of mean-pooled embeddings vs dense fp32 on 512 Rotten-Tomatoes test sentences.

    .venv/bin/python scripts/bench_quantize.py [--methods bf16,int8-dynamic] [--repeats 7] [--json out.json]
    # the README's Quantization figures and the int8-embeddings addendum of benchmarks/RESULTS.md:
    .venv/bin/python scripts/bench_quantize.py --methods bf16,int8-dynamic,int8-dynamic/embeddings --no-peak-memory \
        --json benchmarks/quantize/results.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("COMPRESS_PROGRESS", "0")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from safetensors import safe_open  # noqa: E402

import compress  # noqa: E402
from compress import assets  # noqa: E402
from compress.data import text_batches  # noqa: E402
from compress.evaluate.embeddings import cosine_fidelity, embed  # noqa: E402
from compress.memory import peak_rss  # noqa: E402
from compress.stats import latency_side_by_side, weights_size  # noqa: E402

# label -> (method, options); "fp32" is the unquantized model
METHODS = {
    "fp32": (None, {}),
    "bf16": ("bf16", {}),
    "fp16": ("fp16", {}),
    "int8-dynamic": ("int8-dynamic", {}),
    "int8-dynamic/per-tensor": ("int8-dynamic", {"granularity": "per-tensor"}),
    "int8-dynamic/embeddings": ("int8-dynamic", {"embeddings": True}),  # + int8 token-embedding rows
    "bnb-int8": ("bnb-int8", {}),
    "bnb-nf4": ("bnb-nf4", {}),
    "bnb-fp4": ("bnb-fp4", {}),
}


def batch(tok, texts: list[str], size: int) -> dict:
    return dict(tok(texts[:size], padding="max_length", max_length=128, truncation=True, return_tensors="pt"))


def block_bytes(folder: Path) -> int:
    """Bytes of the transformer blocks' tensors in the checkpoint: what the methods quantize (embeddings stay)."""
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        tensors = [f.get_tensor(k) for k in f.keys() if "encoder.layer." in k]
    return sum(t.numel() * t.element_size() for t in tensors)


def memory_bytes(model) -> int:
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}.values()
    return sum(t.numel() * t.element_size() for t in tensors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(m for m in METHODS if m != "fp32"), help="comma-separated labels")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--no-peak-memory", action="store_true", help="skip the fresh-process peak-RSS measurement")
    args = ap.parse_args()
    labels = ["fp32", *[m for m in args.methods.split(",") if m != "fp32"]]
    unknown = [m for m in labels if m not in METHODS]
    if unknown:
        sys.exit(f"unknown labels {unknown}; choose from {list(METHODS)}")
    warnings.filterwarnings("ignore", message="MatMul8bitLt")  # bitsandbytes notes its fp16 cast on every call
    transformers.utils.logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(width=max(Console().width, 150))
    load_before = os.getloadavg()[0]

    path = assets.minilm_path()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    data = assets.rotten_tomatoes()
    dense = compress.load(path)
    calib = text_batches(tok, [t for t, _ in data["train"][:256]], 32, 128)
    evalb = text_batches(tok, [t for t, _ in data["test"][:512]], 64, 128)
    texts = [t for t, _ in data["test"][:32]]
    pruned = copy.deepcopy(dense)
    compress.prune(pruned, heads=0.5, mlp=0.5, criterion="activation", calibration=calib)
    reference = embed(dense, evalb)

    rows, models = [], {}
    x32 = batch(tok, texts, 32)
    with tempfile.TemporaryDirectory(prefix="bench-quantize-") as tmp:
        for variant, base in (("dense", dense), ("pruned", pruned)):
            for label in labels:
                method, options = METHODS[label]
                name = f"{variant} {label}"
                t0 = time.perf_counter()
                model = compress.quantize(copy.deepcopy(base), method, **options) if method else base
                seconds = time.perf_counter() - t0
                folder = Path(tmp) / name.replace(" ", "_").replace("/", "_")
                compress.save(model, folder)
                with torch.inference_mode():
                    x = batch(tok, texts, 8)
                    exact = torch.equal(model(**x)[0], compress.load(folder)(**x)[0])
                rows.append(
                    {
                        "model": variant,
                        "method": label,
                        "quantize_seconds": seconds,
                        "disk_bytes": weights_size(folder),
                        "block_disk_bytes": block_bytes(folder),
                        "memory_bytes": memory_bytes(model),
                        "peak_rss_delta_bytes": None if args.no_peak_memory else peak_rss(folder, x32),
                        "reload_exact": exact,
                        "cosine": cosine_fidelity(reference, embed(model, evalb)),
                    }
                )
                models[name] = model
                console.print(f"{name}: done", highlight=False)

    for size in (1, 32):
        lat = latency_side_by_side(models, batch(tok, texts, size), repeats=args.repeats)
        for row in rows:
            ms = lat[f"{row['model']} {row['method']}"]
            row[f"b{size}_ms"] = ms * 1e3
            row[f"b{size}_speedup"] = lat["dense fp32"] / ms

    base_disk, base_blocks = rows[0]["disk_bytes"], rows[0]["block_disk_bytes"]
    for r in rows:  # the ratios the README quotes, stored with the raw numbers
        r["x_smaller"], r["blocks_x_smaller"] = base_disk / r["disk_bytes"], base_blocks / r["block_disk_bytes"]
    t = Table(
        title=f"all-MiniLM-L6-v2: quantization, dense and 50/50-pruned ({torch.get_num_threads()} threads, "
        f"seq 128, latency median of {args.repeats}, speed-up vs dense fp32 measured side by side)"
    )
    columns = ["model", "method", "disk MB", "x smaller", "blocks MB", "blocks x smaller", "weights MB", "peak RSS MB"]
    columns += ["b1 ms", "b1 speed-up", "b32 ms", "b32 speed-up", "cosine", "reload exact"]
    for c in columns:
        t.add_column(c, justify="left" if c in ("model", "method") else "right", no_wrap=c == "method")
    for r in rows:
        t.add_row(
            r["model"],
            r["method"],
            f"{r['disk_bytes'] / 1e6:.1f}",
            f"{base_disk / r['disk_bytes']:.2f}",
            f"{r['block_disk_bytes'] / 1e6:.1f}",
            f"{base_blocks / r['block_disk_bytes']:.2f}",
            f"{r['memory_bytes'] / 1e6:.1f}",
            f"{r['peak_rss_delta_bytes'] / 1e6:.0f}" if r["peak_rss_delta_bytes"] is not None else "-",
            f"{r['b1_ms']:.1f}",
            f"{r['b1_speedup']:.2f}x",
            f"{r['b32_ms']:.0f}",
            f"{r['b32_speedup']:.2f}x",
            f"{r['cosine']:.4f}",
            "yes" if r["reload_exact"] else "NO",
        )
    console.print(t)
    embedding_mb = sum(p.numel() for p in dense.embeddings.parameters()) * 4 / 1e6
    load_after = os.getloadavg()[0]
    console.print(
        "peak RSS: VmHWM increase of a fresh, warmed-up process loading the checkpoint and running one batch-32 "
        "forward (weights + activations). blocks: the transformer layers' tensors. The embeddings "
        f"({embedding_mb:.0f} MB in fp32) stay in full precision for every method but the casts and "
        "int8-dynamic/embeddings, which bounds the "
        f"size gains of int8 / 4-bit on a model this small. Machine load average {load_before:.1f} -> {load_after:.1f}."
    )
    if args.json:
        versions = {"torch": torch.__version__, "transformers": transformers.__version__}
        cpu = {
            "capability": torch.backends.cpu.get_cpu_capability(),
            "cores": os.cpu_count(),
            "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
            "vnni": torch.cpu._is_vnni_supported(),
        }
        result = {"model": "all-MiniLM-L6-v2", "command": " ".join(sys.argv), "threads": torch.get_num_threads(),
                  "repeats": args.repeats, "load_average": [load_before, load_after], "versions": versions, "cpu": cpu,
                  "rows": rows}  # fmt: skip
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
