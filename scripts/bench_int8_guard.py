"""Issue 16's int8 case on real models, and what the fidelity guard and `granularity: auto` do about it (a script, not a
test: it needs the real assets and minutes of CPU). Writes benchmarks/int8_guard/results.json.

SmolLM2-135M, used as a base LM (its chat template dropped; perplexity on plain text needs none):
  - held-out perplexity on Moby-Dick chapters 1-3 (the `moby-dick` asset's test split, never used for calibration),
    --windows non-overlapping windows of 256 tokens, for the dense model and for it with 25 % of MLP neurons pruned
    (activation criterion, round_to 64, calibrated on Moby-Dick training passages), each in fp32 and with
    int8-dynamic per-tensor and per-token;
  - the quantize stage's guard as a recipe runs it (`quantize_with_guard`, asked for per-tensor, compared with the
    float input on the first 32 training passages at 128 tokens, as the recipe defaults do): what it measured, which
    configuration it kept;
  - `granularity: auto` (the default) on the same calibration batches: its batch-1 timings, fidelity and choice.
MiniLM-L6 (all-MiniLM-L6-v2, a headless sentence encoder): `granularity: auto` on 32 Rotten-Tomatoes training
sentences padded to 64 tokens, and a longer side-by-side timing of fp32 / per-tensor / per-token at batch 1 x 64
tokens (--repeats) to check the quick choice against.

    flock /tmp/heavy.lock .venv/bin/python scripts/bench_int8_guard.py [--windows 24] [--threads 2] [--repeats 30]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("COMPRESS_PROGRESS", "0")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers  # noqa: E402

import compress  # noqa: E402
from compress import assets  # noqa: E402
from compress.data import text_batches  # noqa: E402
from compress.evaluate import fidelity  # noqa: E402
from compress.evaluate.tasks import perplexity  # noqa: E402
from compress.quantize.guard import quantize_with_guard  # noqa: E402
from compress.stats import count_params, latency_side_by_side  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "benchmarks" / "int8_guard" / "results.json"
KERNELS = ("per-tensor", "per-token")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def held_out_windows(tok, passages: list[str], window: int, count: int) -> list[dict]:
    ids = torch.tensor(tok("\n\n".join(passages))["input_ids"])
    return [{"input_ids": w[None]} for w in ids.split(window)[:count] if len(w) == window]


def smollm2(args, log) -> dict:
    path = assets.resolve_model("smollm2-135m-instruct")
    tok = transformers.AutoTokenizer.from_pretrained(path)
    tok.chat_template = None  # a base LM: nothing below may need a template
    tok.pad_token = tok.pad_token or tok.eos_token
    moby = assets.load("moby-dick")
    held = held_out_windows(tok, moby["test"], 256, args.windows)
    guard_batches = text_batches(tok, moby["train"][:32], 8, 128)  # the recipe's guard: 32 examples, max_length 128
    prune_batches = text_batches(tok, moby["train"][32:96], 16, 128)
    out = {"held_out": {"text": "Moby-Dick ch. 1-3", "windows": len(held), "window_tokens": 256},
           "guard_calibration": {"text": "Moby-Dick training passages 0-31", "max_length": 128}}  # fmt: skip

    def ppl(model) -> float:
        t0 = time.perf_counter()
        value = perplexity(model, held)["perplexity"]
        log(f"  perplexity {value:.2f} ({time.perf_counter() - t0:.0f}s)")
        return value

    dense = compress.load(path).eval()
    pruned = copy.deepcopy(dense)
    t0 = time.perf_counter()
    compress.prune(pruned, mlp=0.25, round_to=64, criterion="activation", calibration=prune_batches)
    out["prune"] = {"mlp": 0.25, "round_to": 64, "criterion": "activation", "seconds": time.perf_counter() - t0,
                    "params": [count_params(dense), count_params(pruned)]}  # fmt: skip
    for name, base in (("dense", dense), ("mlp25", pruned)):
        log(f"{name} fp32")
        row = {"fp32": {"perplexity": ppl(base)}}
        for g in KERNELS:
            log(f"{name} int8 {g}")
            q = compress.quantize(copy.deepcopy(base), "int8-dynamic", granularity=g)
            row[g] = {"perplexity": ppl(q), "params": count_params(q), "guard_numbers": None}
            del q
        log(f"{name}: quantize stage asked for per-tensor, under the guard")
        t0 = time.perf_counter()
        q, summary = quantize_with_guard(copy.deepcopy(base), "int8-dynamic", {"granularity": "per-tensor"},
                                         guard_batches)  # fmt: skip
        summary["seconds"] = time.perf_counter() - t0
        kept = q.config.compress["quantization"]["options"]
        plain = kept["granularity"] in KERNELS and len(kept.get("skip", [])) == 0
        summary["kept_perplexity"] = row[kept["granularity"]]["perplexity"] if plain else ppl(q)
        for a in summary["attempts"]:
            if a["config"] in (f"int8-dynamic {g}" for g in KERNELS):
                row[a["config"].split()[-1]]["guard_numbers"] = {k: a[k] for k in ("ppl_ratio", "kl", "agreement")}
        row["guard"] = summary
        log(f"  guard: {summary['fallback'] or 'no fallback'}; kept {kept['granularity']}")
        del q
        log(f"{name}: granularity auto")
        t0 = time.perf_counter()
        q = compress.quantize(copy.deepcopy(base), "int8-dynamic", calibration=guard_batches)
        auto = q.config.compress["quantization"]["granularity_auto"]
        auto["seconds"] = time.perf_counter() - t0
        row["auto"] = auto
        log(f"  auto: {auto['chosen']} ({auto['reason']}); batch-1 ms {auto['batch1_ms']}")
        del q
        for g in KERNELS:
            row[g]["perplexity_ratio"] = row[g]["perplexity"] / row["fp32"]["perplexity"]
        out[name] = row
    out["mlp25"]["fp32"]["perplexity_ratio_vs_dense"] = (
        out["mlp25"]["fp32"]["perplexity"] / out["dense"]["fp32"]["perplexity"]
    )
    for g in KERNELS:
        out["mlp25"][g]["perplexity_ratio_vs_dense"] = (
            out["mlp25"][g]["perplexity"] / out["dense"]["fp32"]["perplexity"]
        )
    return out


def minilm(args, log) -> dict:
    path = assets.resolve_model("minilm-l6")
    tok = transformers.AutoTokenizer.from_pretrained(path)
    texts = [t for t, _ in assets.load("rotten-tomatoes")["train"][:32]]
    batches = [
        dict(tok(texts[i : i + 8], padding="max_length", truncation=True, max_length=64, return_tensors="pt"))
        for i in range(0, len(texts), 8)
    ]
    model = compress.load(path).eval()
    log("minilm: granularity auto")
    t0 = time.perf_counter()
    q = compress.quantize(copy.deepcopy(model), "int8-dynamic", calibration=batches)
    auto = q.config.compress["quantization"]["granularity_auto"]
    auto["seconds"] = time.perf_counter() - t0
    log(f"  auto: {auto['chosen']} ({auto['reason']}); batch-1 ms {auto['batch1_ms']}")
    models = {"fp32": model}
    models.update({g: compress.quantize(copy.deepcopy(model), "int8-dynamic", granularity=g) for g in KERNELS})
    x = {k: v[:1] for k, v in batches[0].items()}
    log(f"minilm: side-by-side timing, batch 1 x 64 tokens, {args.repeats} rounds")
    with torch.inference_mode():
        seconds = latency_side_by_side(models, x, repeats=args.repeats, warmup=3)
    timing = {name: {"ms": s * 1e3, "speedup_vs_fp32": seconds["fp32"] / s} for name, s in seconds.items()}
    faster = min(KERNELS, key=seconds.get)
    log(f"  {json.dumps(timing)}")
    return {"auto": auto, "long_timing_b1_64": timing, "long_timing_faster": faster,
            "auto_agrees_with_long_timing": auto["chosen"] == faster}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--only", choices=["smollm2", "minilm"], default=None)
    ap.add_argument("--json", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f}s] {msg}", flush=True)

    results = json.loads(args.json.read_text()) if args.json.exists() else {}
    results["settings"] = {"threads": args.threads, "cpu": cpu_name(), "torch": torch.__version__,
                           "transformers": transformers.__version__, "vnni": torch.cpu._is_vnni_supported(),
                           "limits": dataclasses.asdict(fidelity.limits_for("quantize"))}  # fmt: skip
    if args.only in (None, "smollm2"):
        results["smollm2"] = smollm2(args, log)
    if args.only in (None, "minilm"):
        results["minilm"] = minilm(args, log)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, default=float) + "\n")
    log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
