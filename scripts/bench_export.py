"""Benchmark ONNX export on the real all-MiniLM-L6-v2 with a sentiment head: PyTorch vs ONNX Runtime fp32 / int8,
dense and 50 %-pruned (a script, not a test: timings are machine-dependent).

Models (a sentiment head is trained first, as in the demo recipe: 150 steps, head + last 2 blocks, 64 tokens):
  dense      the trained MiniLM
  pruned     50 % heads + 50 % neurons removed one-shot (activation criterion, 256 calibration sentences, bias
             compensation), NOT distilled (`--student DIR` benchmarks another model, e.g. the demo's 03-distill/model;
             `--teacher DIR` skips the training)
each in PyTorch fp32, exported to ONNX (fp32) and exported with ONNX Runtime dynamic int8 (`compress.export`), the
int8 graphs also run with all of ONNX Runtime's fusions ("all fusions" rows; compress's loader leaves out the
`SLOW_FUSIONS` of compress/export/runtime.py).

Measured:
  - accuracy on the Rotten-Tomatoes test split (1,057 sentences, 64 tokens), every model run in its own runtime;
  - latency at batch 1 and batch 32 (64 tokens): all models timed side by side, interleaved in every round
    (`compress.stats.latency_side_by_side`), each timed call after `--settle` untimed calls of the same model (as in
    a serving loop), median of `--repeats`; the whole measurement is repeated `--rounds` times and the median of
    the rounds' medians reported, as a speed-up over dense PyTorch fp32;
  - size on disk: safetensors (PyTorch) or the .onnx file; export seconds and the verified max |ORT - PyTorch|.

ONNX Runtime sessions run with `torch.get_num_threads()` threads and `allow_spinning=0` (see STACK.md).

    flock /tmp/heavy.lock .venv/bin/python scripts/bench_export.py --threads 2 --json benchmarks/export/results.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("COMPRESS_PROGRESS", "0")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers  # noqa: E402

import compress  # noqa: E402
from compress import assets  # noqa: E402
from compress.data import text_batches  # noqa: E402
from compress.distill.train import train  # noqa: E402
from compress.evaluate.tasks import classification  # noqa: E402
from compress.export.runtime import SLOW_FUSIONS, load_exported  # noqa: E402
from compress.stats import latency_side_by_side, weights_size  # noqa: E402

MAX_LEN = 64


def teacher(path: Path, tok, data, args):
    """MiniLM with a sentiment head trained like the demo's train stage, or the model in `--teacher`."""
    if args.teacher:
        return compress.load(args.teacher)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    texts, labels = zip(*data["train"])
    train(model, list(texts), list(labels), tokenizer=tok, steps=150, batch_size=32, lr=5e-4, warmup_steps=10,
          head_only=True, last_layers=2, max_length=MAX_LEN)  # fmt: skip
    return model.eval()


def _cpu() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.machine())


def fixed_batch(tok, texts: list[str], size: int) -> dict:
    return dict(tok((texts * size)[:size], padding="max_length", max_length=MAX_LEN, truncation=True,
                    return_tensors="pt"))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", help="a trained sentiment model folder (skips training the head)")
    ap.add_argument("--student", help="a compressed model folder to use instead of the one-shot pruned teacher")
    ap.add_argument("--repeats", type=int, default=9, help="timed calls per model per round (median)")
    ap.add_argument("--rounds", type=int, default=3, help="side-by-side rounds (median of medians)")
    ap.add_argument("--settle", type=int, default=1, help="untimed calls of a model before each timed one")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()
    load_before = os.getloadavg()[0]

    path = assets.minilm_path()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    data = assets.rotten_tomatoes()
    dense = teacher(path, tok, data, args)
    calib = text_batches(tok, [t for t, _ in data["train"][:256]], 32, MAX_LEN)
    if args.student:
        student, student_label = compress.load(args.student), f"student from {args.student}"
    else:
        student = copy.deepcopy(dense)
        compress.prune(student, heads=0.5, mlp=0.5, criterion="activation", calibration=calib)
        student_label = "one-shot pruned 50 % heads + 50 % neurons (activation), not distilled"
    test = data["test"]
    evalb = text_batches(tok, [t for t, _ in test], 64, MAX_LEN)
    for b, i in zip(evalb, range(0, len(test), 64)):
        b["labels"] = torch.tensor([y for _, y in test[i : i + 64]])

    models, info = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        for variant, model in (("dense", dense), ("pruned", student)):
            folder = Path(tmp) / variant
            compress.save(model, folder / "torch", tokenizer=tok)
            models[f"{variant} PyTorch fp32"] = model
            info[f"{variant} PyTorch fp32"] = {"size_bytes": weights_size(folder / "torch")}
            for int8 in (False, True):
                name = f"{variant} ORT {'int8' if int8 else 'fp32'}"
                t0 = time.perf_counter()
                out = compress.export(model, folder / name.split()[-1], int8=int8, tokenizer=tok,
                                      calibration=calib[:4], source=folder / "torch")  # fmt: skip
                seconds = time.perf_counter() - t0
                v = out["verification"]
                models[name] = load_exported(folder / name.split()[-1])
                if int8:  # the same graph with every ONNX Runtime fusion, SLOW_FUSIONS included
                    models[f"{name}, all fusions"] = load_exported(folder / "int8", disabled=[])
                info[name] = {
                    "size_bytes": out["size_bytes"]["onnx"],
                    "export_seconds": round(seconds, 1),
                    "fp32_graph_max_abs_diff": v["max_abs_diff"],
                    **({"int8_max_abs_diff": v["int8"]["max_abs_diff"],
                        "int8_argmax_agreement_calibration": v["int8"]["argmax_agreement"]} if int8 else {}),
                }  # fmt: skip
        for name in [n for n in models if n.endswith("all fusions")]:
            info[name] = {**info[name.split(",")[0]], "disabled_fusions": []}
        for name, m in models.items():
            info[name].update(classification(m, evalb))
        texts = [t for t, _ in test[:32]]
        timings = {}
        for bs in (1, 32):
            x = fixed_batch(tok, texts, bs)
            rounds = [latency_side_by_side(models, x, repeats=args.repeats, settle=args.settle)
                      for _ in range(args.rounds)]  # fmt: skip
            timings[bs] = {n: statistics.median(r[n] for r in rounds) for n in models}
    base = {bs: timings[bs]["dense PyTorch fp32"] for bs in timings}
    rows = []
    for name in models:
        row = {"name": name, **info[name]}
        for bs in timings:
            row[f"latency_b{bs}_ms"] = timings[bs][name] * 1e3
            row[f"speedup_b{bs}"] = base[bs] / timings[bs][name]
        rows.append(row)
    result = {
        "script": "scripts/bench_export.py",
        "model": "all-MiniLM-L6-v2 (asset minilm-l6) + sentiment head trained 150 steps"
        if not args.teacher
        else f"teacher from {args.teacher}",
        "pruned": student_label,
        "eval": f"Rotten-Tomatoes test, {len(test)} sentences, {MAX_LEN} tokens",
        "latency": f"{MAX_LEN} tokens, batch 1 and 32; median of {args.rounds} side-by-side rounds x {args.repeats}, "
        f"{args.settle} untimed call(s) before each timed one",
        "ort_disabled_fusions": SLOW_FUSIONS,
        "threads": args.threads,
        "machine": {
            "cpu": _cpu(),
            "cores": os.cpu_count(),
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
        },  # fmt: skip
        "versions": {n: __import__(n).__version__ for n in ("torch", "transformers", "onnx", "onnxruntime")},
        "rows": rows,
    }
    print(f"{'model':34} {'accuracy':>8} {'MB':>7} {'b1 ms':>7} {'b1 x':>6} {'b32 ms':>8} {'b32 x':>6}")
    for r in rows:
        print(f"{r['name']:34} {r['accuracy']:8.4f} {r['size_bytes'] / 1e6:7.1f} {r['latency_b1_ms']:7.2f} "
              f"{r['speedup_b1']:6.2f} {r['latency_b32_ms']:8.1f} {r['speedup_b32']:6.2f}")  # fmt: skip
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        Path(args.json).with_suffix(".md").write_text(markdown(result))


def markdown(result: dict) -> str:
    """results.md: the table of results.json (generated; do not edit by hand)."""
    lines = [
        "# ONNX Runtime export on MiniLM-L6 (generated by scripts/bench_export.py from results.json)",
        "",
        f"Dense: {result['model']}. Pruned: {result['pruned']}. Accuracy: {result['eval']}. Latency: "
        f"{result['latency']}, {result['threads']} threads, {result['machine']['cpu']}; speed-up over dense PyTorch "
        "fp32 measured side by side.",
        "",
        "| model | accuracy | size MB | batch 1 ms | speed-up b1 | batch 32 ms | speed-up b32 | max diff vs PyTorch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        diff = r.get("int8_max_abs_diff", r.get("fp32_graph_max_abs_diff"))
        lines.append(
            f"| {r['name']} | {r['accuracy']:.4f} | {r['size_bytes'] / 1e6:.1f} | {r['latency_b1_ms']:.2f} | "
            f"{r['speedup_b1']:.2f} | {r['latency_b32_ms']:.1f} | {r['speedup_b32']:.2f} | "
            + ("–" if diff is None else f"{diff:.2g}")
            + " |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
