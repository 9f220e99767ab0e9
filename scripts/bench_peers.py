"""compress vs TextPruner vs Torch-Pruning on the real all-MiniLM-L6-v2 and Rotten-Tomatoes, side by side in one run
(a script, not a test: timings are machine-dependent). Writes OUT/results.json, OUT/accuracy_vs_speedup.png and the
Markdown report (benchmarks/RESULTS.md).

At each budget (fraction of attention heads AND of FFN neurons removed, the same number in every layer):
  - compress, every criterion, one-shot (importance -> plan -> surgery with bias compensation), with and without int8;
  - compress + embedding distillation (KD) for the criterion with the best validation accuracy, with and without int8;
  - Torch-Pruning 1.6.1 (MetaPruner, L2 group magnitude, whole heads, as its Hugging Face BERT example);
  - TextPruner 1.1.post2 (TransformerPruner, iterative, gradient importance of the task loss), run in its own
    environment (transformers 4.57.6) by scripts/textpruner_worker.py; the heads / neurons it kept are applied to the
    same dense model here with compress's surgery, and its own embeddings are checked against that replica;
  - the dense model fp32 (the reference) and with int8 alone.
Accuracy: a logistic-regression probe trained once on the DENSE model's embeddings of the training sentences, then
fixed and applied to every model's embeddings of the 1,057 test sentences; cosine: mean cosine similarity of the
mean-pooled embeddings to the dense model's. Latency: batch 1 and batch 32, seq 128, all timed models interleaved in
every round (compress.stats.latency_side_by_side), median of --repeats, as a speed-up over dense fp32.

The peer environments are created on first use under $COMPRESS_CACHE/peers (default ~/.cache/compress/peers):
Torch-Pruning with `pip install --no-deps --target` (the shared torch / transformers stay as they are), TextPruner in a
venv (torch 2.13.0 first, then transformers 4.57.6, then `--no-deps textpruner`).

    .venv/bin/python scripts/bench_peers.py [--budgets 0.25,0.5,0.75] [--kd-steps 200] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("COMPRESS_PROGRESS", "0")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import compress  # noqa: E402
from compress import assets  # noqa: E402
from compress.assets import cache_dir  # noqa: E402
from compress.assets._cache import run_tool  # noqa: E402
from compress.data import text_batches  # noqa: E402
from compress.distill import DistillConfig, distill  # noqa: E402
from compress.evaluate.embeddings import cosine_fidelity, embed  # noqa: E402
from compress.models import get_adapter  # noqa: E402
from compress.pruning.importance import CRITERIA  # noqa: E402
from compress.pruning.plan import PruningPlan, apply_plan  # noqa: E402
from compress.pruning.record import attention_key, iter_layers, mlp_key  # noqa: E402
from compress.stats import count_params, latency_side_by_side  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from peers_report import evaluate_goals, plot, render_markdown, row_label  # noqa: E402

TORCH_PRUNING = "torch-pruning==1.6.1"
TEXTPRUNER = "textpruner==1.1.post2"
TEXTPRUNER_INSTALL = (("torch==2.13.0",), ("transformers==4.57.6",), ("--no-deps", TEXTPRUNER))  # in this order
WORKER = Path(__file__).with_name("textpruner_worker.py")
EVAL_LEN, KD_LEN, KD_BATCH = 128, 64, 32  # max tokens to embed / to distil, KD batch (as scripts/distill_minilm.py)


# -- peer environments ---------------------------------------------------------------------------------------------
def _built_once(folder: Path, build) -> Path:
    """`build(folder)` unless an earlier run finished it (marker file); a half-built folder is rebuilt."""
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        build(folder)
        (folder / ".complete").write_text("ok\n")
    return folder


def _pip(python: str | Path, *args: str) -> None:
    run_tool(
        [str(python), "-m", "pip", "--disable-pip-version-check", "-q", *args], "check that PyPI is reachable", "peers"
    )


def torch_pruning_module():
    """Torch-Pruning in its own folder on sys.path (--no-deps: it must not change torch)."""
    folder = _built_once(
        cache_dir() / "peers" / TORCH_PRUNING.replace("==", "-"),
        lambda f: _pip(sys.executable, "install", "--no-deps", "--target", str(f), TORCH_PRUNING),
    )
    sys.path.insert(0, str(folder))
    import torch_pruning

    return torch_pruning


def textpruner_python() -> Path:
    """The interpreter of a venv with torch 2.13.0 (CPU wheel), transformers 4.57.6 and TextPruner."""

    def build(folder: Path) -> None:
        run_tool([sys.executable, "-m", "venv", str(folder)], "install python3-venv", "peers")
        for args in TEXTPRUNER_INSTALL:
            _pip(folder / "bin" / "python", "install", *args)

    return _built_once(cache_dir() / "peers" / TEXTPRUNER.replace("==", "-"), build) / "bin" / "python"


# -- measurements ---------------------------------------------------------------------------------------------------
def disk_bytes(model) -> int:
    """Bytes of a safetensors file holding the model's state dict (what compress.save writes for its models)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
        return path.stat().st_size


def int8(model):
    t0 = time.perf_counter()
    q = compress.quantize(copy.deepcopy(model), "int8-dynamic", granularity="per-tensor")
    return q, time.perf_counter() - t0


class Evaluator:
    """Test-set accuracy of the fixed dense probe and embedding cosine to the dense model. Evaluation sentences are
    sorted by length once (less padding per batch; the same order for every model)."""

    def __init__(self, dense, tok, data: dict, n_train: int | None, n_eval: int | None):
        def by_length(pairs):
            return sorted(pairs, key=lambda p: len(tok(p[0], truncation=True, max_length=EVAL_LEN)["input_ids"]))

        train, test, val = (
            data["train"][:n_train],
            by_length(data["test"][:n_eval]),
            by_length(data["validation"][:n_eval]),
        )
        self.test_texts, self.test_y = [t for t, _ in test], [y for _, y in test]
        self.test_b = text_batches(tok, self.test_texts, 128, EVAL_LEN)
        self.val_b, self.val_y = text_batches(tok, [t for t, _ in val], 128, EVAL_LEN), [y for _, y in val]
        train_emb = embed(dense, text_batches(tok, [t for t, _ in by_length(train)], 128, EVAL_LEN))
        train_y = [y for _, y in by_length(train)]
        self.probe = LogisticRegression(max_iter=2000, C=1.0).fit(train_emb.numpy(), train_y)
        self.reference = embed(dense, self.test_b)
        self.n_train = len(train)

    def __call__(self, model) -> dict:
        emb = embed(model, self.test_b)
        return self.scores(emb)

    def scores(self, emb: torch.Tensor) -> dict:
        return {
            "accuracy": float(self.probe.score(emb.numpy(), self.test_y)),
            "cosine": cosine_fidelity(self.reference, emb),
        }

    def validation_accuracy(self, model) -> float:
        return float(self.probe.score(embed(model, self.val_b).numpy(), self.val_y))


# -- the peers --------------------------------------------------------------------------------------------------------
def torch_pruning_prune(tp, dense, ratio: float, example: dict):
    """MetaPruner as Torch-Pruning's Hugging Face BERT example, removing whole heads (not head dims); the pooler and
    every layer writing the hidden size are ignored, else it also prunes the hidden size (STACK.md)."""
    from transformers.models.bert.modeling_bert import BertSelfAttention

    model = copy.deepcopy(dense).eval()
    t0 = time.perf_counter()
    num_heads, ignored = {}, [model.pooler]
    for name, m in model.named_modules():
        if isinstance(m, BertSelfAttention):
            num_heads.update({lin: m.num_attention_heads for lin in (m.query, m.key, m.value)})
        elif name.endswith("output.dense"):  # attention.output.dense and output.dense
            ignored.append(m)
    pruner = tp.pruner.MetaPruner(
        model,
        example,
        importance=tp.importance.MagnitudeImportance(p=2),
        pruning_ratio=ratio,
        num_heads=num_heads,
        prune_num_heads=True,
        prune_head_dims=False,
        head_pruning_ratio=ratio,
        ignored_layers=ignored,
        global_pruning=False,
        output_transform=lambda out: out.last_hidden_state.sum(),
    )
    pruner.step()
    for m in model.modules():  # attention reads its head size, the count must follow the slicing
        if isinstance(m, BertSelfAttention):
            m.num_attention_heads = pruner.num_heads[m.query]
            m.all_head_size = m.query.out_features
    return model, time.perf_counter() - t0


def run_textpruner(python: Path, ev: Evaluator, calibration: list[tuple[str, int]], budgets, n_iters, folder: Path):
    job = {
        "model": str(assets.minilm_path()),
        "calibration": [t for t, _ in calibration],
        "calibration_labels": [y for _, y in calibration],
        "test": ev.test_texts,
        "probe": {"coef": ev.probe.coef_[0].tolist(), "intercept": float(ev.probe.intercept_[0])},
        "budgets": budgets,
        "n_iters": n_iters,
        "max_length": EVAL_LEN,
        "threads": torch.get_num_threads(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.json").write_text(json.dumps(job))
    done = subprocess.run(
        [str(python), str(WORKER), str(folder / "job.json"), str(folder)], capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"TextPruner worker failed:\n{done.stderr[-3000:]}")
    return json.loads((folder / "summary.json").read_text())


def replay_masks(dense, run: dict):
    """The dense model with exactly the heads / neurons TextPruner kept, cut by compress's surgery (no bias
    compensation, no weight change: TextPruner only removes units)."""
    model = copy.deepcopy(dense)
    adapter, plan = get_adapter(model), PruningPlan()
    for stack, pos, _, layer in iter_layers(model, adapter):
        for role in adapter.attentions(layer):
            plan.heads[attention_key(stack, pos, role)] = run["heads"][pos]
        plan.neurons[mlp_key(stack, pos)] = run["neurons"][pos]
    apply_plan(model, plan)
    return model


# -- the benchmark --------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", default="0.25,0.5,0.75", help="fractions of heads and neurons removed")
    ap.add_argument("--criteria", default=",".join(sorted(CRITERIA)))
    ap.add_argument("--kd-steps", type=int, default=200)
    ap.add_argument("--calibration", type=int, default=256, help="training sentences that score units (all tools)")
    ap.add_argument("--textpruner-iters", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for everything (1: on a shared, overloaded CPU two threads waiting on each other made "
        "batch-1 latency 20x slower and the ratios noise)",
    )
    ap.add_argument("--out", default="benchmarks/peers")
    ap.add_argument("--report", default="benchmarks/RESULTS.md")
    ap.add_argument("--quick", action="store_true", help="smoke run: one budget, two criteria, tiny data and KD")
    args = ap.parse_args()
    n_train = n_eval = None
    if args.quick:
        args.budgets, args.criteria, args.kd_steps, args.calibration = "0.5", "magnitude,activation", 2, 32
        args.textpruner_iters, args.repeats, n_train, n_eval = 1, 2, 500, 128
        if args.out == "benchmarks/peers":
            args.out = args.report = "out/bench_peers_quick"
    if args.report == args.out:
        args.report = str(Path(args.out) / "RESULTS.md")
    torch.set_num_threads(args.threads)
    budgets = [float(b) for b in args.budgets.split(",")]
    criteria = args.criteria.split(",")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    transformers.utils.logging.disable_progress_bar()
    t_start, load_before = time.perf_counter(), os.getloadavg()[0]

    t0 = time.perf_counter()
    tp = torch_pruning_module()
    textpruner_py = textpruner_python()
    setup_seconds = time.perf_counter() - t0
    log(f"peer environments ready ({setup_seconds:.0f}s)")

    path = assets.minilm_path()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    dense = compress.load(path)
    data = assets.rotten_tomatoes()
    ev = Evaluator(dense, tok, data, n_train, n_eval)
    calibration = data["train"][: args.calibration]
    calib_b = text_batches(tok, [t for t, _ in calibration], 32, EVAL_LEN)
    kd_texts = [t for t, _ in data["train"][: args.kd_steps * KD_BATCH]]  # one pass: each sentence seen once
    log(f"dense: probe trained on {ev.n_train} sentences, test accuracy {ev(dense)['accuracy']:.4f}")

    rows, timed = [], {}  # timed: latency name -> model (one per distinct architecture)

    def add(model, params: int, seconds: float, timed_as: str, **info) -> dict:
        row = {**info, "params": params, "disk_bytes": disk_bytes(model), "compress_seconds": seconds,
               "latency_of": timed_as, **ev(model)}  # fmt: skip
        rows.append(row)
        log(f"{row_label(row)}: acc {row['accuracy']:.4f} cos {row['cosine']:.4f} ({seconds:.1f}s)")
        return row

    add(dense, count_params(dense), 0.0, "dense fp32", method="dense", budget=0.0)
    timed["dense fp32"] = dense
    dq, secs = int8(dense)
    add(dq, count_params(dense), secs, "dense int8", method="dense", budget=0.0, int8=True)
    timed["dense int8"] = dq

    tp_runs = run_textpruner(textpruner_py, ev, calibration, budgets, args.textpruner_iters, out / "run" / "textpruner")
    log(f"TextPruner runs done ({sum(r['prune_seconds'] for r in tp_runs['runs']):.0f}s of pruning)")
    example = dict(tok(["a short example sentence"], return_tensors="pt"))
    kd_info = []
    timed_criterion = "activation" if "activation" in criteria else criteria[0]  # compress's default
    for ratio in budgets:
        tag = f"{ratio:.0%}"
        one_shot, val_acc = {}, {}
        for criterion in criteria:
            model = copy.deepcopy(dense)
            t0 = time.perf_counter()
            compress.prune(model, heads=ratio, mlp=ratio, criterion=criterion, calibration=calib_b)
            secs = time.perf_counter() - t0
            comp = model.config.compress["history"][-1]["bias_compensated"]  # projections whose bias was adjusted
            add(
                model,
                count_params(model),
                secs,
                f"compress {tag}",
                method="compress",
                budget=ratio,
                criterion=criterion,
                bias_compensated=comp,
            )
            q, qsecs = int8(model)
            add(q, count_params(model), secs + qsecs, f"compress {tag} int8", method="compress", budget=ratio,
                criterion=criterion, int8=True, bias_compensated=comp)  # fmt: skip
            if criterion == timed_criterion:
                timed[f"compress {tag}"], timed[f"compress {tag} int8"] = model, q
            one_shot[criterion], val_acc[criterion] = (model, secs), ev.validation_accuracy(model)

        best = max(val_acc, key=val_acc.get)
        student, prune_secs = copy.deepcopy(one_shot[best][0]), one_shot[best][1]
        cfg = DistillConfig(
            steps=args.kd_steps,
            batch_size=KD_BATCH,
            lr=2e-4,
            warmup_steps=max(1, args.kd_steps // 20),
            logits_weight=0.0,
            embedding_weight=1.0,
            cache_teacher="embedding",
            log_every=50,
        )
        t0 = time.perf_counter()
        kd_dir = out / "run" / f"kd-{tag[:-1]}"
        student = distill(student, dense, kd_texts, cfg, tokenizer=tok, output_dir=kd_dir, max_length=KD_LEN).student
        kd_secs = time.perf_counter() - t0
        shutil.rmtree(kd_dir, ignore_errors=True)
        kd_row = add(student, count_params(student), prune_secs + kd_secs, f"compress {tag}", method="compress",
                     budget=ratio, criterion=best, kd=True)  # fmt: skip
        q, qsecs = int8(student)
        add(q, count_params(student), prune_secs + kd_secs + qsecs, f"compress {tag} int8", method="compress",
            budget=ratio, criterion=best, kd=True, int8=True)  # fmt: skip
        kd_info.append({"budget": ratio, "criterion": best, "validation_accuracy": val_acc, "kd_seconds": kd_secs,
                        "test_accuracy": kd_row["accuracy"]})  # fmt: skip

        model, secs = torch_pruning_prune(tp, dense, ratio, example)
        add(model, count_params(model), secs, f"torch-pruning {tag}", method="torch-pruning", budget=ratio)
        timed[f"torch-pruning {tag}"] = model

        run = next(r for r in tp_runs["runs"] if r["ratio"] == ratio)
        model = replay_masks(dense, run)
        own = torch.load(Path(run["folder"]) / "test_embeddings.pt")  # computed by TextPruner's model under v4
        row = add(model, count_params(model), run["prune_seconds"], f"textpruner {tag}", method="textpruner",
                  budget=ratio)  # fmt: skip
        same = torch.nn.functional.cosine_similarity(own, embed(model, ev.test_b)).min()
        row["own"] = {**ev.scores(own), "min_cosine_to_replica": float(same), "params": run["params"]}
        timed[f"textpruner {tag}"] = model
        del one_shot

    texts = ev.test_texts[:32]
    latency = {}
    for size in (1, 32):
        x = dict(tok(texts[:size], padding="max_length", max_length=128, truncation=True, return_tensors="pt"))
        latency[size] = latency_side_by_side(timed, x, repeats=args.repeats)
        log(f"latency batch {size} done")
    for row in rows:
        for size in (1, 32):
            row[f"b{size}_ms"] = latency[size][row["latency_of"]] * 1e3
            row[f"b{size}_speedup"] = latency[size]["dense fp32"] / latency[size][row["latency_of"]]

    embedding_bytes = sum(p.numel() * p.element_size() for p in dense.embeddings.parameters())
    result = {
        "model": "all-MiniLM-L6-v2",
        "quick": args.quick,
        "budgets": budgets,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "compress": compress.__version__,
            "torch_pruning": TORCH_PRUNING.split("==")[1],
            **{f"textpruner_env_{k}": v for k, v in tp_runs["versions"].items()},
        },  # fmt: skip
        "protocol": {
            "train_sentences_probe": ev.n_train,
            "test_sentences": len(ev.test_texts),
            "validation_sentences": len(ev.val_y),
            "calibration_sentences": len(calibration),
            "eval_max_length": EVAL_LEN,
            "kd_max_length": KD_LEN,
            "kd_sentences": len(kd_texts),
            "kd_config": cfg.to_dict(),
            "textpruner_iters": args.textpruner_iters,
            "int8": "int8-dynamic, granularity=per-tensor",
            "latency_inputs": "seq 128 (padded), batch 1 and 32",
        },  # fmt: skip
        "kd": kd_info,
        "embedding_bytes": embedding_bytes,
        "setup_seconds": setup_seconds,
        "total_seconds": time.perf_counter() - t_start,
        "load_average": [load_before, os.getloadavg()[0]],
        "rows": rows,
    }
    result["goals"] = evaluate_goals(result)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    plot(result, out / "accuracy_vs_speedup.png")
    here = Path(args.report).parent
    quant = out.parent / "quantize" / "results.json"  # scripts/bench_quantize.py: the int8-embeddings addendum
    md = render_markdown(result, png=os.path.relpath(out / "accuracy_vs_speedup.png", here),
                         results=os.path.relpath(out / "results.json", here),
                         quantize=json.loads(quant.read_text()) if quant.exists() else None,
                         quantize_results=os.path.relpath(quant, here))  # fmt: skip
    Path(args.report).write_text(md)
    shutil.rmtree(out / "run", ignore_errors=True)
    log(f"wrote {out / 'results.json'}, {out / 'accuracy_vs_speedup.png'}, {args.report} "
        f"({result['total_seconds'] / 60:.1f} min)")  # fmt: skip


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


if __name__ == "__main__":
    main()
