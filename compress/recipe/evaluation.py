"""The `evaluate` stage: quality next to efficiency for the dense model and every model a stage produced.

Latency is measured side by side with the dense model in the same run (interleaved, median of `repeats`), and
reported as a ratio; parameters, weight bytes on disk, peak memory (a fresh process loading the model and running
the largest latency batch) and a MACs estimate come with it. Exported graphs (an `export` stage) are scored by running
them in ONNX Runtime, with the same data and inputs; their size is the graph file's."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from .. import io
from ..errors import CompressError
from ..evaluate.extra import load_metric, metric_name, score
from ..memory import peak_rss
from ..progress import track
from ..export.runtime import is_exported, load_exported
from ..stats import count_params, latency_side_by_side, weights_size
from .data import split
from .export_stage import exported_stats
from .sparsity_report import linear_sparsity


def _macs(task, model) -> int | None:
    try:
        return task.macs(model)
    except Exception:  # quantized modules are not Linear layers: no estimate rather than a wrong one
        return None


def _peak_mb(folder: Path, shapes: dict) -> float | None:
    """Peak memory (MB) of a fresh process loading the model and running the largest latency batch."""
    peak = peak_rss(folder, shapes[max(shapes)])
    return None if peak is None else peak / 2**20


def dense_folder(run, dense, tmp: Path) -> Path:
    """The dense model's checkpoint folder: the local one, or (a hub model) a copy saved once into `tmp`, so that its
    size on disk and peak memory are measured like every other row's, never estimated."""
    local = Path(run.model_path)
    if local.exists():
        return local
    io.save(dense, tmp / "dense")
    return tmp / "dense"


def _median(rows: list[dict], key: str) -> float | None:
    seen = sorted(r[key] for r in rows)
    return seen[len(seen) // 2] if seen else None


def check_metrics(recipe) -> None:
    """Load every evaluate stage's `metrics` now (before any stage runs), so a bad or unreachable one fails first."""
    from .tasks import get

    for i, stage in enumerate(recipe.stages):
        if stage.type != "evaluate" or not stage.metrics:
            continue
        field = f"stages.{i}.evaluate.metrics"
        if not get(recipe.task).predicts:
            raise CompressError(field, f"task {recipe.task} has no predictions and references for them", "drop them")
        for spec in stage.metrics:
            load_metric(spec, field)


def _scorer(run, stage, dense):
    """quality(model, dense) on the eval split, plus `<metric>@<split>` for each of `data.extra_eval_splits` (each
    scored by its own task instance, prepared on that split), plus the `evaluate` package's `stage.metrics`."""
    d, task = run.recipe.data, run.task
    extras = {}
    for name in d.extra_eval_splits:
        extras[name] = type(task)(run)
        extras[name].prepare(dense, split(run.rows, name, d.eval_size), stage)
    hub = {metric_name(spec): load_metric(spec, "metrics") for spec in getattr(stage, "metrics", ())}

    def quality(model, dense: bool = False) -> dict:
        out = task.quality(model, dense=dense)
        if hub:
            out.update(score(hub, *task.last_predictions))
        for name, t in extras.items():
            numbers = {k: v for k, v in t.quality(model, dense=dense).items() if isinstance(v, (int, float))}
            out.update({f"{k}@{name}": v for k, v in numbers.items()})
        return out

    return quality


def evaluate_models(run, stage, candidates: dict[str, Path]) -> dict:
    d, task = run.recipe.data, run.task
    dense = run.dense()
    eval_rows = split(run.rows, d.eval_split, d.eval_size)
    shapes = {bs: task.latency_inputs(eval_rows[:bs], bs) for bs in stage.latency_batch_sizes}
    task.prepare(dense, eval_rows, stage)
    quality = _scorer(run, stage, dense)
    with tempfile.TemporaryDirectory(prefix="compress-dense-") as tmp:
        local = dense_folder(run, dense, Path(tmp))
        dense_row = {
            "name": "dense",
            "params": count_params(dense),
            "size_bytes": weights_size(local),
            "macs": _macs(task, dense),
            "peak_memory_mb": _peak_mb(local, shapes) if stage.peak_memory else None,
            **quality(dense, dense=True),
        }
    for bs in stage.latency_batch_sizes:
        dense_row[f"latency_b{bs}_ms"], dense_row[f"speedup_b{bs}"] = None, 1.0
    sparse = any(s.type == "sparsify" for s in run.recipe.stages)
    if sparse:
        dense_row["weight_sparsity"] = linear_sparsity(dense)
    rows = [dense_row]
    for name, path in track(list(candidates.items()), description="evaluating"):
        if is_exported(path):  # an exported graph, run in ONNX Runtime
            model = load_exported(path)
            row = {"name": name, **exported_stats(task, path), **quality(model)}
        else:
            model = io.load(path)
            quantized = bool((getattr(model.config, "compress", None) or {}).get("quantization"))
            # quantization keeps the shapes: the MACs of the model it was made from (the estimate reads float
            # modules: on int8 Whisper it missed most of the encoder's attention)
            macs = rows[-1]["macs"] if quantized else _macs(task, model)
            row = {
                "name": name,
                "params": count_params(model),  # int8 and 4-bit weights count in full (see count_params)
                "size_bytes": weights_size(path),
                "macs": macs,
                "peak_memory_mb": _peak_mb(path, shapes) if stage.peak_memory else None,
                **quality(model),
            }
            if sparse:  # MACs stay the dense count: dense kernels multiply the zeros too (see the report's note)
                row["weight_sparsity"] = linear_sparsity(model)
        for bs, x in shapes.items():
            with torch.inference_mode():
                lat = latency_side_by_side({"dense": dense, name: model}, x, repeats=stage.repeats, settle=stage.settle)
            row[f"latency_b{bs}_ms"] = lat[name] * 1e3
            row[f"dense_latency_b{bs}_ms"] = lat["dense"] * 1e3
            row[f"speedup_b{bs}"] = lat["dense"] / lat[name]
        gen = task.generation_latency({"dense": dense, name: model}, stage.repeats)
        if gen:
            row["gen_tokens_per_s"], row["dense_gen_tokens_per_s"] = 1 / gen[name], 1 / gen["dense"]
            row["gen_speedup"] = gen["dense"] / gen[name]
        e2e = task.transcription_latency({"dense": dense, name: model}, stage.repeats)
        if e2e:
            row["e2e_ms"], row["dense_e2e_ms"] = e2e[name] * 1e3, e2e["dense"] * 1e3
            row["e2e_speedup"] = e2e["dense"] / e2e[name]
        rows.append(row)
    # the dense model was timed beside each candidate: its row reports the median of those timings (timed alone when
    # it is the only model)
    for bs, x in shapes.items():
        dense_row[f"latency_b{bs}_ms"] = _median(rows[1:], f"dense_latency_b{bs}_ms")
        if len(rows) == 1:
            with torch.inference_mode():
                dense_row[f"latency_b{bs}_ms"] = (
                    latency_side_by_side({"dense": dense}, x, repeats=stage.repeats, settle=stage.settle)["dense"] * 1e3
                )
    if any("e2e_speedup" in r for r in rows):
        dense_row["e2e_ms"], dense_row["e2e_speedup"] = _median(rows[1:], "dense_e2e_ms"), 1.0
    if any("gen_speedup" in r for r in rows):
        dense_row["gen_tokens_per_s"], dense_row["gen_speedup"] = _median(rows[1:], "dense_gen_tokens_per_s"), 1.0
    return {
        "task": task.name,
        "primary_metric": task.primary,
        "higher_is_better": task.higher_is_better,
        "eval_split": d.eval_split,
        "extra_eval_splits": list(d.extra_eval_splits),
        "rows": rows,
    }
