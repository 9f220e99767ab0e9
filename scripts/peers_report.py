"""Goals, Markdown report and plot for scripts/bench_peers.py, computed from its results dict only (no model, no
torch), so they can be re-rendered from benchmarks/peers/results.json and tested on made-up rows:

    .venv/bin/python scripts/peers_report.py benchmarks/peers/results.json benchmarks/RESULTS.md

benchmarks/quantize/results.json (scripts/bench_quantize.py), when present, adds the int8-embeddings addendum.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PEERS = ("torch-pruning", "textpruner")
NAMES = {"compress": "compress", "torch-pruning": "Torch-Pruning", "textpruner": "TextPruner", "dense": "dense"}


def row_label(row: dict) -> str:
    parts = [NAMES[row["method"]]]
    if row.get("criterion"):
        parts.append(row["criterion"])
    if row.get("kd"):
        parts.append("+KD")
    if row.get("int8"):
        parts.append("+int8")
    return (f"{row['budget']:.0%} " if row["budget"] else "") + " ".join(parts)


def find(rows: list[dict], **match) -> list[dict]:
    """Rows whose fields equal `match`; booleans compare with a missing field as False."""

    def ok(r, k, v):
        return bool(r.get(k)) == v if isinstance(v, bool) else r.get(k) == v

    return [r for r in rows if all(ok(r, k, v) for k, v in match.items())]


def one(rows: list[dict], **match) -> dict:
    found = find(rows, **match)
    if len(found) != 1:
        raise ValueError(f"expected one row for {match}, found {len(found)}")
    return found[0]


def _brief(row: dict, dense: dict) -> dict:
    return {
        "row": row_label(row),
        "accuracy_loss_pts": 100 * (dense["accuracy"] - row["accuracy"]),
        "b1_speedup": row["b1_speedup"],
        "times_smaller": dense["disk_bytes"] / row["disk_bytes"],
    }


def evaluate_goals(result: dict) -> dict:
    """The issue's three goals, per budget and overall."""
    rows = result["rows"]
    dense = one(rows, method="dense", int8=False)
    chosen = {k["budget"]: k["criterion"] for k in result["kd"]}
    has_activation = bool(find(rows, criterion="activation"))
    default = "activation" if has_activation else sorted(r["criterion"] for r in find(rows, method="compress"))[0]

    fidelity, accuracy = [], []
    for b in result["budgets"]:
        peers = {p: one(rows, method=p, budget=b) for p in PEERS}
        ours = one(rows, method="compress", budget=b, criterion=default, kd=False, int8=False)
        sel = one(rows, method="compress", budget=b, criterion=chosen[b], kd=False, int8=False)
        kd = one(rows, method="compress", budget=b, kd=True, int8=False)
        same = len({r["params"] for r in [ours, sel, kd, *peers.values()]}) == 1
        f = {"budget": b, "same_params": same, "criterion": default, "cosine": ours["cosine"]}
        f["accuracy"] = ours["accuracy"]
        for p, r in peers.items():
            f[f"{p}_cosine"], f[f"{p}_accuracy"] = r["cosine"], r["accuracy"]
        f["met"] = same and all(ours["cosine"] > r["cosine"] for r in peers.values())
        fidelity.append(f)
        a = {"budget": b, "criterion": chosen[b], "one_shot_accuracy": sel["accuracy"], "kd_accuracy": kd["accuracy"]}
        a.update({f"{p}_accuracy": r["accuracy"] for p, r in peers.items()})
        a["one_shot_margin_pts"] = min(100 * (sel["accuracy"] - r["accuracy"]) for r in peers.values())
        a["kd_margin_pts"] = min(100 * (kd["accuracy"] - r["accuracy"]) for r in peers.values())
        a["met_one_shot"], a["met_kd"] = same and a["one_shot_margin_pts"] >= 1, same and a["kd_margin_pts"] >= 1
        accuracy.append(a)

    def smaller(r):
        return dense["disk_bytes"] / r["disk_bytes"]

    within = [r for r in rows if r is not dense and 100 * (dense["accuracy"] - r["accuracy"]) <= 1]
    winners = [r for r in within if r["b1_speedup"] >= 4 and smaller(r) >= 4]
    speed_size = {
        "met": bool(winners),
        "rows_meeting": [row_label(r) for r in winners],
        "fastest_within_1pt": _brief(max(within, key=lambda r: r["b1_speedup"]), dense) if within else None,
        "fastest_overall": _brief(max(rows, key=lambda r: r["b1_speedup"]), dense),
        "smallest_overall": _brief(max(rows, key=smaller), dense),
        "size_bound_fp32_embeddings": dense["disk_bytes"] / result["embedding_bytes"],
    }
    return {
        "fidelity_one_shot": {"met": all(f["met"] for f in fidelity), "per_budget": fidelity},
        "speed_and_size": speed_size,
        "accuracy_vs_peers": {
            "met_one_shot": all(a["met_one_shot"] for a in accuracy),
            "met_with_kd": all(a["met_kd"] for a in accuracy),
            "per_budget": accuracy,
        },
    }


def _table(header: list[str], body: list[list[str]], indent: str = "") -> list[str]:
    align = ["---" if i < 2 else "---:" for i in range(len(header))]
    return [indent + "| " + " | ".join(cells) + " |" for cells in [header, align, *body]]


def _met(flag: bool) -> str:
    return "**met**" if flag else "**not met**"


def _compensation(result: dict) -> str:
    """Which criteria's one-shot rows had bias compensation. Rows carry `bias_compensated` (projections adjusted)
    since issue 17; a run without it predates that fix, when `random` recorded no input means and so compensated
    nothing (silently) while every other criterion did."""
    rows = find(result["rows"], method="compress", kd=False)
    criteria = sorted({r["criterion"] for r in rows})
    recorded = all("bias_compensated" in r for r in rows)
    if recorded:
        off = sorted({r["criterion"] for r in rows if not r["bias_compensated"]})
    else:
        off = [c for c in criteria if c == "random"]
    if not off:
        return "bias compensation on for every criterion"
    why = (
        "its rows report no projection compensated"
        if recorded
        else "in this run it recorded no calibration input means, so it compensated nothing; compress now "
        "compensates it too, so a rerun would change its rows"
    )
    return f"bias compensation on for {', '.join(c for c in criteria if c not in off)}; NOT for {', '.join(off)}: {why}"


def _protocol(result: dict) -> list[str]:
    p, kd = result["protocol"], result["protocol"]["kd_config"]
    return [
        f"- **Budgets**: {', '.join(f'{b:.0%}' for b in result['budgets'])} of the attention heads AND of the FFN "
        "neurons removed, the same number in every layer, by every tool: same shapes, same parameter count (checked "
        "below). No layer is dropped; no tool touches the 11.9M-parameter embedding table.",
        "- **Accuracy**: MiniLM has no classification head. A logistic-regression probe is trained once on the DENSE "
        f"model's embeddings of {p['train_sentences_probe']:,} training sentences, then kept fixed and applied to "
        f"each model's embeddings of the {p['test_sentences']:,} test sentences (fixed seeded split of "
        "compress.assets.rotten_tomatoes). **cosine**: mean cosine similarity of each model's mean-pooled test "
        "embeddings to the dense model's (the protocol of scripts/distill_minilm.py).",
        f"- **Calibration**: the first {p['calibration_sentences']} training sentences, for every tool reading data.",
        "- **compress one-shot**: `compress.prune(heads=r, mlp=r, criterion=...)` (uniform layout, "
        f"{_compensation(result)}), every criterion. **+KD**: the criterion with the best *validation* accuracy "
        f"({p['validation_sentences']:,} validation sentences; the test set does not choose) is distilled with "
        f"`compress.distill`: {kd['steps']} steps of batch {kd['batch_size']} (one pass over the first "
        f"{p['kd_sentences']:,} training sentences), lr {kd['lr']}, loss 1 - cos of the mean-pooled embedding vs the "
        f"dense teacher (teacher embeddings computed once per run and cached), max length {p['kd_max_length']}. A "
        "CPU-sized run: scripts/distill_minilm.py shows that more steps recover more. **+int8**: "
        "`compress.quantize(model, 'int8-dynamic', granularity='per-tensor')` on the blocks' Linear layers "
        "(embeddings stay fp32).",
        "- **Torch-Pruning**: `MetaPruner`, L2 group-magnitude importance (as its Hugging Face BERT example), whole "
        "heads (`prune_num_heads=True, prune_head_dims=False`), pooler and hidden-size writers ignored; measured as "
        "Torch-Pruning returns the model.",
        f"- **TextPruner**: `TransformerPruner`, `pruning_method='iterative'`, n_iters={p['textpruner_iters']}, even "
        "masking; importance = |gradient x weight| of a task loss, the cross-entropy of the same fixed probe on the "
        "calibration sentences WITH their labels (compress's criteria see no labels). It runs in its own venv "
        "(transformers 4.57.6: transformers 5 removed `prune_heads`), where its model is saved with "
        "`save_pretrained` and reloaded. v4 `pruned_heads` checkpoints do not load in transformers 5, so the heads "
        "and neurons it kept are cut from the same dense model here with compress's surgery (no bias compensation: "
        "TextPruner changes no weight) and measured under the same conditions as the others; its own embeddings "
        "(computed under v4) are compared with that replica below.",
        "- **Size**: bytes of a safetensors file of the state dict. **Latency**: batch 1 and batch 32, seq 128 "
        f"(padded), median of {result['repeats']} rounds in which all timed models run in turn "
        "(`compress.stats.latency_side_by_side`), as a speed-up over dense fp32. Models with the same architecture "
        "and kernels share one timing: every compress row uses its budget's compress model (fp32 or int8), which is "
        "also what KD and the other criteria produce; Torch-Pruning and TextPruner are timed as their own models. "
        "**Time to compress**: wall time of scoring + pruning (+ distillation including its teacher cache, "
        "+ quantization), model loading excluded; TextPruner's is its `prune()` call in the worker.",
        f"- **Threads**: torch ran at {result['threads']} thread(s) for everything. The machine was shared with other "
        "heavy jobs; there, two torch threads waiting on each other made batch-1 latency up to 20x slower and the "
        "ratios noise, one thread gave stable ratios. Absolute milliseconds and KD minutes are inflated by the other "
        "jobs; the ratios come from models timed side by side.",
    ]


def render_markdown(
    result: dict,
    png: str = "peers/accuracy_vs_speedup.png",
    results: str = "peers/results.json",
    quantize: dict | None = None,
    quantize_results: str = "quantize/results.json",
) -> str:
    """The report. `quantize`: scripts/bench_quantize.py's results (with int8-dynamic/embeddings rows), rendered
    as an addendum on int8 token embeddings when given."""
    rows, goals = result["rows"], result["goals"]
    dense = one(rows, method="dense", int8=False)
    load = result["load_average"]
    lines = [
        "# compress vs TextPruner vs Torch-Pruning: all-MiniLM-L6-v2 on Rotten-Tomatoes",
        "",
        "Generated by `scripts/bench_peers.py`"
        + (" (--quick smoke run: tiny data, not a result)" if result["quick"] else "")
        + f" in {result['total_seconds'] / 60:.0f} min on a shared 2-core CPU, torch at {result['threads']} "
        f"thread(s), other jobs running beside it (load average {load[0]:.1f} -> {load[1]:.1f}); raw numbers in "
        f"`{results}`. Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        "## Protocol",
        "",
        *_protocol(result),
        "",
        "## Results",
        "",
        f"Dense fp32: accuracy {100 * dense['accuracy']:.2f} %, {dense['params'] / 1e6:.2f}M params, "
        f"{dense['disk_bytes'] / 1e6:.1f} MB, batch 1 {dense['b1_ms']:.1f} ms, batch 32 {dense['b32_ms']:.0f} ms.",
        "",
    ]
    order = {"dense": 0, "compress": 1, "torch-pruning": 2, "textpruner": 3}

    def sort_key(r):
        return r["budget"], order[r["method"]], bool(r.get("kd")), r.get("criterion") or "", bool(r.get("int8"))

    body = []
    for r in sorted(rows, key=sort_key):
        body.append([
            f"{r['budget']:.0%}", row_label(r).split(" ", 1)[1] if r["budget"] else row_label(r),
            f"{100 * r['accuracy']:.2f}", f"{100 * (r['accuracy'] - dense['accuracy']):+.2f}", f"{r['cosine']:.4f}",
            f"{r['params'] / 1e6:.2f}", f"{r['disk_bytes'] / 1e6:.1f}", f"{dense['disk_bytes'] / r['disk_bytes']:.2f}",
            f"{r['b1_speedup']:.2f}x", f"{r['b32_speedup']:.2f}x", f"{r['compress_seconds']:.1f}",
        ])  # fmt: skip
    header = ["budget", "method", "accuracy %", "Δ pts", "cosine", "params M", "MB", "x smaller", "b1 speed-up"]
    lines += _table([*header, "b32 speed-up", "time to compress s"], body)
    lines += ["", f"![accuracy vs batch-1 speed-up]({png})", ""]

    lines += ["TextPruner's own pruned model (transformers 4.57.6) vs the replica measured above:", ""]
    body = [
        [f"{r['budget']:.0%}", f"{100 * r['own']['accuracy']:.2f}", f"{r['own']['cosine']:.4f}",
         f"{r['own']['min_cosine_to_replica']:.6f}", f"{r['own']['params']:,}", f"{r['params']:,}"]
        for r in find(rows, method="textpruner")
    ]  # fmt: skip
    header = ["budget", "accuracy % (own)", "cosine (own)", "min cosine own vs replica", "params (own)"]
    lines += _table([*header, "params (replica)"], body)
    lines += ["", "KD criterion choice (validation accuracy of each one-shot model, %):", ""]
    for k in result["kd"]:
        va = ", ".join(f"{c} {100 * a:.2f}" for c, a in sorted(k["validation_accuracy"].items(), key=lambda x: -x[1]))
        lines.append(f"- {k['budget']:.0%}: **{k['criterion']}** ({va}); KD took {k['kd_seconds'] / 60:.1f} min.")

    g1, g2, g3 = goals["fidelity_one_shot"], goals["speed_and_size"], goals["accuracy_vs_peers"]
    lines += ["", "## Goals", ""]
    lines += [
        f"1. **One-shot fidelity above both peers at the same shapes** (compress's default criterion, "
        f"{g1['per_budget'][0]['criterion']}, no retraining): {_met(g1['met'])}.",
        "",
    ]
    body = [
        [f"{f['budget']:.0%}", "yes" if f["same_params"] else "NO"]
        + [f"{f[k + 'cosine']:.4f} / {100 * f[k + 'accuracy']:.2f}" for k in ("", "torch-pruning_", "textpruner_")]
        for f in g1["per_budget"]
    ]
    header = ["budget", "same params", "compress cosine / acc %", "Torch-Pruning", "TextPruner"]
    lines += _table(header, body, indent="   ")
    fast, s = g2["fastest_within_1pt"], g2["smallest_overall"]
    f_all = g2["fastest_overall"]
    lines += [
        "",
        f"2. **≥ 4x batch-1 speed-up and ≥ 4x smaller at ≤ 1 point accuracy loss**: {_met(g2['met'])}"
        + (f" ({', '.join(g2['rows_meeting'])})." if g2["met"] else "."),
        f"   - Fastest model within 1 point: {fast['row']}: {fast['b1_speedup']:.2f}x at batch 1, "
        f"{fast['times_smaller']:.2f}x smaller, {fast['accuracy_loss_pts']:.2f} pts lost."
        if fast
        else "   - No compressed model stays within 1 point.",
        f"   - Fastest overall: {f_all['row']}: {f_all['b1_speedup']:.2f}x, {f_all['times_smaller']:.2f}x smaller, "
        f"{f_all['accuracy_loss_pts']:.2f} pts lost. Smallest: {s['row']}: {s['times_smaller']:.2f}x smaller, "
        f"{s['b1_speedup']:.2f}x, {s['accuracy_loss_pts']:.2f} pts lost.",
        f"   - Size: the fp32 embedding table is {result['embedding_bytes'] / 1e6:.1f} MB of the dense "
        f"{dense['disk_bytes'] / 1e6:.1f} MB. Neither head/neuron pruning nor int8-dynamic (Linear layers only) "
        "touches it, so even with every block removed the model would be at most "
        f"{g2['size_bound_fp32_embeddings']:.2f}x smaller: 4x needs the embeddings quantized (or the vocabulary "
        "pruned), which this run did not do" + (" (int8 token embeddings: see the addendum)." if quantize else "."),
        "",
        "3. **≥ 1 point more accuracy than each peer at equal parameter count**: one-shot vs one-shot "
        f"{_met(g3['met_one_shot'])}; compress with KD vs the peers as they ship (no distillation) "
        f"{_met(g3['met_with_kd'])}.",
        "",
    ]
    body = [
        [f"{a['budget']:.0%}", f"{100 * a['one_shot_accuracy']:.2f} ({a['criterion']})",
         f"{100 * a['kd_accuracy']:.2f}", f"{100 * a['torch-pruning_accuracy']:.2f}",
         f"{100 * a['textpruner_accuracy']:.2f}", f"{a['one_shot_margin_pts']:+.2f}", f"{a['kd_margin_pts']:+.2f}"]
        for a in g3["per_budget"]
    ]  # fmt: skip
    header = ["budget", "compress one-shot % (criterion)", "compress + KD %", "Torch-Pruning %", "TextPruner %"]
    lines += _table([*header, "margin one-shot, pts", "margin KD, pts"], body, indent="   ")
    lines += ["", "## Reading the numbers", "", *_notes(result), ""]
    if quantize:
        lines += _addendum(result, quantize, quantize_results)
    return "\n".join(lines)


def _addendum(result: dict, quantize: dict, path: str) -> list[str]:
    """int8 token embeddings, from scripts/bench_quantize.py's rows (another script, other evaluation sentences)."""
    q = {(r["model"], r["method"]): r for r in quantize["rows"]}
    body = []
    for model, label in (("dense", "dense"), ("pruned", "50 % pruned")):
        for method, what in (
            ("int8-dynamic", "+ int8 (Linear layers)"),
            ("int8-dynamic/embeddings", "+ int8 + int8 embeddings"),
        ):
            r = q[(model, method)]
            body.append(
                [f"{label} {what}", f"{r['disk_bytes'] / 1e6:.1f}", f"{r['x_smaller']:.2f}", f"{r['cosine']:.4f}"]
            )
    kd = one(result["rows"], method="compress", budget=0.5, kd=True, int8=True) if 0.5 in result["budgets"] else None
    pruned_emb = q[("pruned", "int8-dynamic/embeddings")]
    return [
        "## Addendum: int8 token embeddings",
        "",
        "Goal 2's size half was blocked by the fp32 embedding table. `int8-dynamic` takes `embeddings=True` (int8 rows "
        "with one scale each; skipped when the table is tied to an output layer). Measured by "
        f"`scripts/bench_quantize.py` (raw numbers in `{path}`; command there) on the same MiniLM, dense and 50 % "
        "heads + neurons pruned one-shot (activation criterion, 256 calibration sentences), default per-token "
        "kernel; cosine of mean-pooled embeddings vs dense fp32 on the first 512 test sentences, not the probe "
        "protocol above:",
        "",
        *_table(["model", "MB", "x smaller", "cosine vs dense"], body),
        "",
        f"A 50 % pruned + KD + int8 model has the same shapes, so with int8 embeddings it is "
        f"{pruned_emb['x_smaller']:.2f}x smaller too"
        + (f"; its batch-1 speed-up above ({kd['b1_speedup']:.2f}x) is still short of 4x." if kd else "."),
        "",
    ]


def _notes(result: dict) -> list[str]:
    """Caveats computed from the rows: test-set noise, timing noise, where the speed-up stops."""
    rows, n = result["rows"], result["protocol"]["test_sentences"]
    dense = one(rows, method="dense", int8=False)
    se = 100 * (dense["accuracy"] * (1 - dense["accuracy"]) / n) ** 0.5
    margins = [a["one_shot_margin_pts"] for a in result["goals"]["accuracy_vs_peers"]["per_budget"]]
    spread = []
    for b in result["budgets"]:
        ups = {r["latency_of"]: r["b1_speedup"] for r in rows if r["budget"] == b and not r.get("int8")}
        spread.append(f"{b:.0%}: " + ", ".join(f"{k.rsplit(' ', 1)[0]} {v:.2f}x" for k, v in sorted(ups.items())))
    top = max(result["budgets"])
    q = one(rows, method="compress", budget=top, criterion=result["kd"][-1]["criterion"], kd=True, int8=True)
    kd_top = one(rows, method="compress", budget=top, kd=True, int8=False)
    within = [r for r in rows if r["method"] != "dense" and dense["accuracy"] - r["accuracy"] <= 0.01]
    reach = max((r["budget"] for r in within), default=None)
    return [
        f"- **Test-set noise**: one accuracy point is about {n / 100:.0f} of the {n:,} test sentences; the binomial "
        f"standard error of one model's accuracy is about {se:.1f} pts. One-shot accuracy margins over the best peer "
        f"of {min(margins):+.2f} to {max(margins):+.2f} pts are therefore suggestive, not firm; the cosine gaps (same "
        "sentences, continuous) and the KD margins are the stronger evidence.",
        "- **Timing noise**: models of identical shape are timed separately for the peers, so their spread shows the "
        "measurement noise (batch 1, fp32): " + "; ".join(spread) + ".",
        f"- **Where the speed-up stops**: removing {top:.0%} of heads and neurons cuts the blocks' Linear work about "
        f"{1 / (1 - top):.0f}x, yet batch 1 gains {q['b1_speedup']:.2f}x even with int8, against "
        f"{q['b32_speedup']:.2f}x at batch 32: at batch 1 the per-layer costs that pruning does not shrink (embedding "
        "lookup, layer norms, attention softmax, kernel dispatch) weigh more. "
        + (f"The largest budget with a model within 1 point of dense is {reach:.0%}; " if reach else "")
        + f"at {top:.0%} the {result['protocol']['kd_config']['steps']}-step KD still loses "
        f"{100 * (dense['accuracy'] - kd_top['accuracy']):.1f} pts; whether much longer distillation closes that gap "
        "was not tested here.",
        "- **What compress adds over the peers at the same shapes**: a data-driven criterion (activation x weight "
        "norm) plus bias compensation of the removed units' mean output, with no labels; Torch-Pruning's weight "
        "magnitude sees no data, TextPruner's gradient importance sees labels but removes units without compensation. "
        "Distillation is compress's own and was not applied to the peers' models.",
    ]


MARKERS = {  # (method, kd, int8) -> marker, legend label
    ("dense", False, False): ("*", "dense fp32"),
    ("dense", False, True): ("X", "dense + int8"),
    ("compress", False, False): ("o", "compress one-shot"),
    ("compress", False, True): ("s", "compress one-shot + int8"),
    ("compress", True, False): ("^", "compress + KD"),
    ("compress", True, True): ("D", "compress + KD + int8"),
    ("torch-pruning", False, False): ("v", "Torch-Pruning"),
    ("textpruner", False, False): ("P", "TextPruner"),
}
COLOURS = ["black", "tab:blue", "tab:orange", "tab:red", "tab:green", "tab:purple", "tab:brown"]


def plot(result: dict, path: Path) -> None:
    """Accuracy vs batch-1 speed-up: marker = method, colour = budget; compress one-shot shows the KD criterion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    dense = one(rows, method="dense", int8=False)
    chosen = {k["budget"]: k["criterion"] for k in result["kd"]}
    colours = dict(zip([0.0, *result["budgets"]], COLOURS))
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=130)
    seen = set()
    for r in rows:
        if r["method"] == "compress" and r["criterion"] != chosen[r["budget"]]:
            continue
        key = (r["method"], bool(r.get("kd")), bool(r.get("int8")))
        marker, label = MARKERS[key]
        ax.scatter(
            r["b1_speedup"],
            100 * r["accuracy"],
            marker=marker,
            s=130 if marker == "*" else 60,
            color=colours[r["budget"]],
            edgecolor="black",
            linewidth=0.5,
            alpha=0.85,
            zorder=3,
            label=None if key in seen else label,
        )
        seen.add(key)
    ax.axhline(100 * dense["accuracy"] - 1, color="grey", ls="--", lw=1)
    ax.text(ax.get_xlim()[0], 100 * dense["accuracy"] - 1, " dense - 1 pt", va="bottom", fontsize=8, color="grey")
    ax.axvline(4, color="grey", ls=":", lw=1)
    ax.set_xlabel("batch-1 speed-up vs dense fp32 (seq 128, CPU)")
    ax.set_ylabel("test accuracy with the fixed dense probe (%)")
    ax.set_title("all-MiniLM-L6-v2 on Rotten-Tomatoes: accuracy vs batch-1 speed-up")
    budget_handles = [
        plt.Line2D([], [], ls="", marker="o", color=c, label="dense" if b == 0 else f"{b:.0%} heads+neurons removed")
        for b, c in colours.items()
    ]
    methods = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="method", title_fontsize=8)
    ax.add_artist(methods)
    ax.legend(handles=budget_handles, loc="lower left", bbox_to_anchor=(1.01, 0), fontsize=8, title="colour")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    res = json.loads(Path(sys.argv[1]).read_text())
    res["goals"] = evaluate_goals(res)
    quant = Path(sys.argv[1]).parent.parent / "quantize" / "results.json"  # the int8-embeddings addendum, if measured
    quant = json.loads(quant.read_text()) if quant.exists() else None
    Path(sys.argv[2]).write_text(render_markdown(res, quantize=quant))
    plot(res, Path(sys.argv[1]).with_name("accuracy_vs_speedup.png"))
