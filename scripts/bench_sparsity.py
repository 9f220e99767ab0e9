"""Weight sparsity, compress vs llm-compressor, on the real SmolLM2-135M-Instruct and all-MiniLM-L6-v2 (a script, not
a test: timings are machine-dependent). Writes OUT/results.json (raw, rewritten after every run) and OUT/README.md.

For each model, 50 % unstructured and 2:4 sparsity of the Linear layers inside the transformer blocks (heads, the
tied embeddings / lm_head and MiniLM's pooler stay dense), with
  - compress: magnitude, wanda, sparsegpt (`compress.sparsify`); sparsegpt also with the options of
    `--sparsegpt-variants` (`dense-target`: each layer fitted to the dense model's outputs of that layer; `block`: a
    block's layers all fitted at once, as llm-compressor does), each a row of its own;
  - llm-compressor 0.14.0.1: SparseGPTModifier and WandaPruningModifier through `oneshot`, in its own venv (torch
    2.13.0 CPU + llmcompressor, which brings transformers 5.17 and compressed-tensors 0.19), built on first use under
    $COMPRESS_CACHE/peers (scripts/llmcompressor_worker.py); its sparse weights are loaded back here and scored by
    the same code;
on the same calibration token sequences (one per text, no padding):
  - SmolLM2: `--calibration` Moby-Dick training passages (chapters 7+) of up to `--seq-len` tokens; quality =
    perplexity on the first `--eval` held-out passages of chapters 1-3 (256 tokens each, batches of 8), as
    recipes/smollm2-chat.yaml measures it;
  - MiniLM: Rotten-Tomatoes training sentences; quality = mean cosine of mean-pooled embeddings to the dense model's
    on `--eval-sentences` test sentences.
Time to sparsify (wall clock, same thread count for both tools), the peak resident-set increase while sparsifying,
the share of zero weights in the sparsified layers, and the size of the weights on disk: compress's bitmask storage
and plain dense safetensors (what llm-compressor 0.14 writes: compressed-tensors dropped its sparse formats in 0.15).

    flock /tmp/heavy.lock .venv/bin/python scripts/bench_sparsity.py [--models smollm2,minilm] [--no-peer]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("COMPRESS_PROGRESS", "0")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import compress  # noqa: E402
from compress import assets  # noqa: E402
from compress.assets import cache_dir  # noqa: E402
from compress.assets._cache import run_tool  # noqa: E402
from compress.data import text_batches  # noqa: E402
from compress.evaluate.embeddings import cosine_fidelity, embed  # noqa: E402
from compress.evaluate.tasks import perplexity  # noqa: E402
from compress.memory import proc_status  # noqa: E402
from compress.quantize.targets import select_linears  # noqa: E402
from compress.sparsity import SparsityConfig  # noqa: E402
from compress.sparsity.storage import compact_folder  # noqa: E402
from compress.stats import weights_size  # noqa: E402

LLMCOMPRESSOR = "llmcompressor==0.14.0.1"
PEER_INSTALL = (("torch==2.13.0",), (LLMCOMPRESSOR,))  # torch first: the CPU wheel, never a CUDA build
WORKER = Path(__file__).with_name("llmcompressor_worker.py")
PATTERNS = {"unstructured": "0:0", "2:4": "2:4"}  # compress pattern -> llm-compressor mask_structure


def peer_python() -> Path:
    """A venv with torch 2.13.0 (CPU) and llm-compressor; `pip install --dry-run` of it pulled no CUDA torch."""
    folder = cache_dir() / "peers" / LLMCOMPRESSOR.replace("==", "-")
    if not (folder / ".complete").exists():
        run_tool([sys.executable, "-m", "venv", "--clear", str(folder)], "install python3-venv", "peers")
        for args in PEER_INSTALL:
            run_tool([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", *args], "check PyPI", "peers")
        check = run_tool([str(folder / "bin" / "python"), "-c", "import torch; print(torch.__version__)"], "", "peers")
        if not check.strip().endswith("+cpu"):
            raise SystemExit(f"the llm-compressor venv got torch {check.strip()}, not the CPU build")
        (folder / ".complete").write_text("ok\n")
    return folder / "bin" / "python"


class Peak:
    """Peak resident-set increase of this process over a block (Linux: VmHWM reset through clear_refs)."""

    def __enter__(self):
        Path("/proc/self/clear_refs").write_text("5")
        self.rss0 = proc_status("VmRSS")
        return self

    def __exit__(self, *exc):
        self.mb = (proc_status("VmHWM") - self.rss0) / 2**20


def sizes(model) -> dict:
    """MB of the weights on disk in compress's bitmask storage, for either tool's model (llm-compressor's has no
    sparsity record, so `compress.save` alone would write plain tensors: the folder is packed explicitly). Plain
    tensors take the dense model's bytes: shapes and dtypes do not change."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = compress.save(model, Path(tmp) / "weights", sparse_storage="dense")
        compact_folder(folder)
        return {"size_bitmask_mb": weights_size(folder) / 1e6}


def zero_share(model, names) -> float:
    zeros = total = 0
    for n in names:
        w = model.get_submodule(n).weight
        zeros, total = zeros + int((w == 0).sum()), total + w.numel()
    return zeros / max(total, 1)


class SmolLM2:
    name, kind, asset = "smollm2-135m-instruct", "causal", "smollm2-135m-instruct"
    ignore = ["re:.*lm_head"]

    def __init__(self, args):
        self.path = assets.resolve_model(self.asset)
        self.tok = transformers.AutoTokenizer.from_pretrained(self.path)
        moby = assets.load("moby-dick")
        self.calibration = [self.tok(t, truncation=True, max_length=args.seq_len)["input_ids"]
                            for t in moby["train"][: args.calibration]]  # fmt: skip
        self.eval_batches = text_batches(self.tok, moby["test"][: args.eval], 8, 256)
        self.eval_texts = len(moby["test"][: args.eval])

    def load(self):
        return compress.load(self.path)

    def quality(self, model) -> dict:
        return perplexity(model, self.eval_batches)


class MiniLM:
    name, kind, asset = "all-MiniLM-L6-v2", "encoder", "minilm-l6"
    ignore = ["re:.*pooler.*"]

    def __init__(self, args):
        self.path = assets.resolve_model(self.asset)
        self.tok = transformers.AutoTokenizer.from_pretrained(self.path)
        rt = assets.rotten_tomatoes()
        self.calibration = [self.tok(t, truncation=True, max_length=args.seq_len)["input_ids"]
                            for t, _ in rt["train"][: args.calibration]]  # fmt: skip
        test = [t for t, _ in rt["test"][: args.eval_sentences]]
        self.eval_batches = text_batches(self.tok, test, 64, 128)
        self.eval_texts = len(test)
        self.reference = None

    def load(self):
        return compress.load(self.path)

    def quality(self, model) -> dict:
        emb = embed(model, self.eval_batches)
        if self.reference is None:
            self.reference = emb
        return {"cosine": cosine_fidelity(self.reference, emb)}


def calibration_batches(bench, batch_size=8) -> list[dict]:
    """The calibration sequences, padded per batch (padding is left out of the statistics)."""
    out = []
    for i in range(0, len(bench.calibration), batch_size):
        chunk = bench.calibration[i : i + batch_size]
        n = max(len(x) for x in chunk)
        ids = torch.full((len(chunk), n), bench.tok.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(chunk), n), dtype=torch.long)
        for j, x in enumerate(chunk):
            ids[j, : len(x)], mask[j, : len(x)] = torch.tensor(x), 1
        out.append({"input_ids": ids, "attention_mask": mask})
    return out


VARIANTS = {
    "default": {},
    "dense-target": {"dense_target": True},
    "block": {"sequential": "block"},
}


def run_compress(bench, dense, pattern, criterion, batches, variant="default") -> dict:
    model = copy.deepcopy(dense)
    with Peak() as peak:
        t0 = time.perf_counter()
        summary = compress.sparsify(model, pattern=pattern, criterion=criterion,
                                    calibration=batches if criterion != "magnitude" else None,
                                    **VARIANTS[variant])  # fmt: skip
        seconds = time.perf_counter() - t0
    tool = "compress" if variant == "default" else f"compress ({variant})"
    return {"tool": tool, "criterion": criterion, "pattern": pattern, "seconds": seconds, "options": VARIANTS[variant],
            "peak_rss_delta_mb": peak.mb, "zero_share": summary["achieved"],
            "layers_sparsified": summary["layers_sparsified"], **bench.quality(model), **sizes(model)}  # fmt: skip


def run_peer(bench, dense, pattern, modifier, names, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        job = {"model": str(bench.path), "kind": bench.kind, "modifier": modifier, "sparsity": 0.5,
               "mask_structure": PATTERNS[pattern], "ignore": bench.ignore, "calibration": bench.calibration,
               "threads": args.threads, "out": tmp}  # fmt: skip
        (Path(tmp) / "job.json").write_text(json.dumps(job))
        r = subprocess.run([str(peer_python()), str(WORKER), str(Path(tmp) / "job.json")], capture_output=True,
                           text=True)  # fmt: skip
        if r.returncode != 0:
            return {"tool": "llm-compressor", "criterion": modifier, "pattern": pattern, "error": r.stderr[-3000:]}
        result = json.loads((Path(tmp) / "result.json").read_text())
        weights = load_file(str(Path(tmp) / "weights.safetensors"))
    model = copy.deepcopy(dense)
    with torch.no_grad():
        for key, w in weights.items():
            module = key.removesuffix(".weight")
            if module in names:  # only the layers both tools sparsify are compared
                model.get_submodule(module).weight.copy_(w)
    changed = [k for k in weights if k.removesuffix(".weight") not in names and
               not torch.equal(weights[k], dense.get_submodule(k.removesuffix(".weight")).weight)]  # fmt: skip
    return {"tool": "llm-compressor", "criterion": modifier, "pattern": pattern, "seconds": result["seconds"],
            "peak_rss_delta_mb": result["peak_rss_delta_mb"], "zero_share": zero_share(model, names),
            "other_layers_changed": changed, "versions": result["versions"], **bench.quality(model),
            **sizes(model)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="smollm2,minilm")
    ap.add_argument("--criteria", default="sparsegpt,wanda,magnitude")
    ap.add_argument("--patterns", default="unstructured,2:4")
    ap.add_argument("--calibration", type=int, default=32, help="calibration sequences (texts)")
    ap.add_argument("--seq-len", type=int, default=256, help="max tokens per calibration sequence")
    ap.add_argument("--eval", type=int, default=64, help="SmolLM2: held-out Moby-Dick passages")
    ap.add_argument("--eval-sentences", type=int, default=512, help="MiniLM: test sentences")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--sparsegpt-variants", default="default,dense-target,block",
                    help=f"compress's sparsegpt rows, comma-separated: {', '.join(VARIANTS)}")  # fmt: skip
    ap.add_argument("--out", type=Path, default=Path("benchmarks/sparsity"))
    ap.add_argument("--report", action="store_true", help="only re-render OUT/README.md from OUT/results.json")
    ap.add_argument("--append", action="store_true", help="add the rows to those already in OUT/results.json")
    args = ap.parse_args()
    if args.report:
        (args.out / "README.md").write_text(render(json.loads((args.out / "results.json").read_text())))
        return
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["machine"] = {"cpu": _cpu(), "threads": args.threads, "torch": torch.__version__,
                          "transformers": transformers.__version__}  # fmt: skip
    benches = {"smollm2": SmolLM2, "minilm": MiniLM}
    for key in args.models.split(","):
        bench = benches[key](args)
        dense = bench.load()
        batches = calibration_batches(bench)
        names = select_linears(dense, SparsityConfig())[0]
        settings = {k: str(v) for k, v in vars(args).items()}
        entry = {"model": bench.name, "settings": settings, "calibration_sequences": len(bench.calibration),
                 "calibration_tokens": sum(len(x) for x in bench.calibration), "eval_texts": bench.eval_texts,
                 "dense": {**bench.quality(dense), "size_dense_mb": sizes(dense)["size_bitmask_mb"]},
                 "runs": []}  # fmt: skip
        if args.append and key in results:  # the same model, calibration and evaluation: more rows
            entry["runs"] = results[key]["runs"]
            entry["settings"], entry["appended_with"] = results[key]["settings"], settings
        results[key] = entry
        print(bench.name, "dense", entry["dense"], flush=True)
        for pattern in args.patterns.split(","):
            for criterion in args.criteria.split(","):  # each criterion beside llm-compressor's modifier for it
                variants = args.sparsegpt_variants.split(",") if criterion == "sparsegpt" else ["default"]
                kinds = variants + (["peer"] if criterion in ("sparsegpt", "wanda") and not args.no_peer else [])
                for kind in kinds:
                    if kind != "peer":
                        row = run_compress(bench, dense, pattern, criterion, batches, kind)
                    else:
                        row = run_peer(bench, dense, pattern, criterion, names, args)
                    entry["runs"].append(row)
                    print(json.dumps(row)[:2000], flush=True)
                    path.write_text(json.dumps(results, indent=2))  # partial results survive an interruption
                    (args.out / "README.md").write_text(render(results))
    path.write_text(json.dumps(results, indent=2))
    (args.out / "README.md").write_text(render(results))


def render(results: dict) -> str:
    """benchmarks/sparsity/README.md from results.json (every figure in it comes from there)."""
    lines = [
        "# Weight sparsity: compress vs llm-compressor",
        "",
        "Generated by `scripts/bench_sparsity.py` from `results.json` (raw) on "
        f"{results['machine']['cpu']}, {results['machine']['threads']} threads, shared with other jobs.",
        "Sparsified: the Linear layers inside the transformer blocks (embeddings, lm_head and pooler stay dense).",
        "Rows `compress (dense-target)`: `dense_target=True` (each layer fitted to the dense model's outputs of that",
        'layer); `compress (block)`: `sequential="block"` (a block\'s layers all fitted to its inputs at once, as',
        "llm-compressor does); `compress`: the defaults. Time and",
        "peak memory are those of the sparsification call alone (llm-compressor: its `oneshot`). Size: safetensors",
        "weights in compress's bitmask storage (both tools' weights); stored as plain tensors every sparse model takes",
        "the dense size, which is what llm-compressor 0.14 writes (via compressed-tensors 0.19, which has no sparse",
        "storage format since 0.15). CPU inference is not faster when sparse: dense kernels multiply the zeros, so",
        "latency is not listed.",
    ]
    for key in ("smollm2", "minilm"):
        if key not in results:
            continue
        e = results[key]
        metric = "perplexity" if "perplexity" in e["dense"] else "cosine"
        what = (
            f"held-out perplexity on {e['eval_texts']} Moby-Dick passages of chapters 1-3 (lower is better)"
            if metric == "perplexity"
            else f"cosine of mean-pooled embeddings to the dense model's on {e['eval_texts']} Rotten-Tomatoes "
            "test sentences (higher is better)"
        )
        lines += [
            "",
            f"## {e['model']}",
            "",
            f"Calibration: {e['calibration_sequences']} sequences, {e['calibration_tokens']:,} tokens, the same for "
            f"both tools. Quality: {what}. Dense: {metric} {e['dense'][metric]:.4g}, "
            f"{e['dense']['size_dense_mb']:.1f} MB.",
            "",
            f"| pattern | tool | criterion | {metric} | zeros in the sparsified layers | seconds | peak MB | "
            "size MB (bitmask storage) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in e["runs"]:
            if "error" in r:
                lines.append(f"| {r['pattern']} | {r['tool']} | {r['criterion']} | failed: see results.json ||||")
                continue
            cells = [r["pattern"], r["tool"], r["criterion"], f"{r[metric]:.4g}", f"{r['zero_share']:.1%}",
                     f"{r['seconds']:.1f}", f"{r['peak_rss_delta_mb']:.0f}", f"{r['size_bitmask_mb']:.1f}"]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cpu() -> str:
    try:
        return next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    main()
