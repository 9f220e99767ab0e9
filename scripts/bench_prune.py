"""Benchmark structured pruning on the real all-MiniLM-L6-v2 (a script, not a test: timings are machine-dependent).

For each criterion: time to score + prune (50 % heads, 50 % neurons), embedding cosine vs dense on real Rotten-Tomatoes
sentences. For the pruned model: latency at batch 1 and batch 32 (seq 128) measured side by side with the dense model
(interleaved, median of several runs), parameters, MACs, and speed-up / MAC reduction.

    .venv/bin/python scripts/bench_prune.py [--heads 0.5] [--mlp 0.5] [--layout uniform] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time

os.environ.setdefault("COMPRESS_PROGRESS", "0")

import torch  # noqa: E402
import transformers  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import compress  # noqa: E402
from compress import assets  # noqa: E402
from compress.data import text_batches  # noqa: E402
from compress.evaluate.embeddings import cosine_fidelity, embed  # noqa: E402
from compress.pruning.importance import CRITERIA  # noqa: E402
from compress.stats import count_params, estimate_macs, latency_side_by_side  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heads", type=float, default=0.5)
    ap.add_argument("--mlp", type=float, default=0.5)
    ap.add_argument("--layout", default="uniform")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    console = Console()
    path = assets.minilm_path()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    dense = compress.load(path)
    data = assets.rotten_tomatoes()
    calib = text_batches(tok, [t for t, _ in data["train"][:256]], 32, 128)
    evalb = text_batches(tok, [t for t, _ in data["test"][:512]], 64, 128)
    ref = embed(dense, evalb)

    rows, pruned_models = [], {}
    for criterion in sorted(CRITERIA):
        model = copy.deepcopy(dense)
        t0 = time.perf_counter()
        compress.prune(
            model, heads=args.heads, mlp=args.mlp, criterion=criterion, layout=args.layout, calibration=calib
        )
        seconds = time.perf_counter() - t0
        rows.append(
            {"criterion": criterion, "prune_seconds": seconds, "cosine": cosine_fidelity(ref, embed(model, evalb))}
        )
        pruned_models[criterion] = model

    pruned = pruned_models["activation"]
    texts = [t for t, _ in data["test"][:32]]
    latency = {}
    for batch in (1, 32):
        x = dict(tok(texts[:batch], padding="max_length", max_length=128, truncation=True, return_tensors="pt"))
        lat = latency_side_by_side({"dense": dense, "pruned": pruned}, x, repeats=args.repeats)
        latency[batch] = {
            "dense_ms": lat["dense"] * 1e3,
            "pruned_ms": lat["pruned"] * 1e3,
            "speedup": lat["dense"] / lat["pruned"],
        }
    macs_ratio = estimate_macs(dense, 128) / estimate_macs(pruned, 128)
    result = {
        "model": "all-MiniLM-L6-v2",
        "heads": args.heads,
        "mlp": args.mlp,
        "layout": args.layout,
        "threads": torch.get_num_threads(),
        "criteria": rows,
        "latency_seq128": latency,
        "params": [count_params(dense), count_params(pruned)],
        "mac_reduction": macs_ratio,
        "speedup_over_mac_reduction": {b: v["speedup"] / macs_ratio for b, v in latency.items()},
    }

    t = Table(title=f"MiniLM-L6: {args.heads:.0%} heads + {args.mlp:.0%} neurons, {args.layout} (no retraining)")
    for c in ("criterion", "score+prune (s)", "embedding cosine vs dense"):
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(r["criterion"], f"{r['prune_seconds']:.2f}", f"{r['cosine']:.4f}")
    console.print(t)
    t = Table(title=f"dense vs pruned (activation), seq 128, median of {args.repeats}, {result['threads']} threads")
    for c in ("batch", "dense ms", "pruned ms", "speed-up", "MAC reduction", "speed-up / MAC reduction"):
        t.add_column(c, justify="right")
    for b, v in latency.items():
        t.add_row(
            str(b),
            f"{v['dense_ms']:.1f}",
            f"{v['pruned_ms']:.1f}",
            f"{v['speedup']:.2f}x",
            f"{macs_ratio:.2f}x",
            f"{v['speedup'] / macs_ratio:.2f}",
        )
    console.print(t)
    p, emb = result["params"], count_params(dense.embeddings)
    console.print(
        f"parameters {p[0]:,} -> {p[1]:,} ({p[1] / p[0]:.3f}); without the untouched embeddings "
        f"({emb:,}): {p[0] - emb:,} -> {p[1] - emb:,} ({(p[1] - emb) / (p[0] - emb):.3f})"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
