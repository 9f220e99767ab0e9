"""The `evaluate` stage: quality next to efficiency for the dense model and every model a stage produced.

Latency is measured side by side with the dense model in the same run (interleaved, median of `repeats`), and
reported as a ratio; parameters, weight bytes on disk and a MACs estimate come with it."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import io
from ..evaluate import tasks
from ..evaluate.embeddings import cosine_fidelity, embed
from ..progress import track
from ..stats import count_params, estimate_macs, latency_side_by_side, weights_size
from .data import batches, split
from .runner import RUNNABLE_TASKS


class _EvalSet:
    """The evaluation split tokenized once, and the dense references (embeddings, probe) computed once."""

    def __init__(self, run, dense, prompt: str | None):
        d = run.recipe.data
        self.task, self.tokenizer, self.prompt = run.recipe.task, run.tokenizer, prompt
        if self.task not in RUNNABLE_TASKS:
            raise ValueError(f"task {self.task!r} has no evaluation in recipes yet")
        rows = split(run.rows, d.eval_split, d.eval_size)
        self.labels = [int(r["label"]) for r in rows] if rows and rows[0].get("label") is not None else None
        size = 8 if self.task == "causal-lm" else 64
        self.batches = batches(run.tokenizer, rows, size, d.max_length, self.task == "text-classification")
        self.dense_emb = self.probe = None
        if self.task == "sentence-embedding":
            self.dense_emb = embed(dense, self.batches)
            self.probe = _probe(run, dense)

    def quality(self, model, embeddings: torch.Tensor | None = None) -> dict:
        if self.task == "text-classification":
            return tasks.classification(model, self.batches)
        if self.task == "sentence-embedding":
            emb = embed(model, self.batches) if embeddings is None else embeddings
            out = {"cosine_vs_dense": cosine_fidelity(self.dense_emb, emb)}
            if self.probe is not None and self.labels is not None:
                out["probe_accuracy"] = float(self.probe.score(emb.numpy(), self.labels))
            return out
        out = tasks.perplexity(model, self.batches)
        if self.prompt:
            out["generation"] = tasks.generate_sample(model, self.tokenizer, self.prompt)
        return out


def _probe(run, dense):
    """A logistic-regression classifier on the dense model's embeddings of (up to 2,000) training sentences."""
    from sklearn.linear_model import LogisticRegression

    d = run.recipe.data
    rows = split(run.rows, d.train_split, 2000)
    if not rows or rows[0].get("label") is None:
        return None
    x = embed(dense, batches(run.tokenizer, rows, 64, d.max_length, with_labels=False)).numpy()
    return LogisticRegression(max_iter=2000).fit(x, [int(r["label"]) for r in rows])


def _macs(model, seq: int) -> int | None:
    try:
        return estimate_macs(model, seq)
    except Exception:  # quantized modules are not Linear layers: no estimate rather than a wrong one
        return None


def evaluate_models(run, stage, candidates: dict[str, Path]) -> dict:
    d = run.recipe.data
    dense = run.dense()
    texts = [r["text"] for r in split(run.rows, d.eval_split, max(stage.latency_batch_sizes))]
    shapes = {
        bs: dict(
            run.tokenizer(
                (texts * bs)[:bs], padding="max_length", truncation=True, max_length=d.max_length, return_tensors="pt"
            )
        )
        for bs in stage.latency_batch_sizes
    }
    evalset = _EvalSet(run, dense, stage.generation_prompt)
    local = Path(run.model_path)
    dense_row = {
        "name": "dense",
        "params": count_params(dense),
        "size_bytes": weights_size(local) if local.exists() else 4 * count_params(dense),
        "macs": _macs(dense, d.max_length),
        **evalset.quality(dense, evalset.dense_emb),
    }
    for bs in stage.latency_batch_sizes:
        dense_row[f"latency_b{bs}_ms"], dense_row[f"speedup_b{bs}"] = None, 1.0
    rows = [dense_row]
    for name, path in track(list(candidates.items()), description="evaluating"):
        model = io.load(path)
        quantized = bool((getattr(model.config, "compress", None) or {}).get("quantization"))
        # a quantized model has the parameters and MACs of the model it was made from (packed or int8, not fewer)
        params = rows[-1]["params"] if quantized else count_params(model)
        macs = rows[-1]["macs"] if quantized else _macs(model, d.max_length)
        row = {
            "name": name,
            "params": params,
            "size_bytes": weights_size(path),
            "macs": macs,
            **evalset.quality(model),
        }
        for bs, x in shapes.items():
            with torch.inference_mode():
                lat = latency_side_by_side({"dense": dense, name: model}, x, repeats=stage.repeats)
            row[f"latency_b{bs}_ms"] = lat[name] * 1e3
            row[f"dense_latency_b{bs}_ms"] = lat["dense"] * 1e3
            row[f"speedup_b{bs}"] = lat["dense"] / lat[name]
        rows.append(row)
    for bs in stage.latency_batch_sizes:  # the dense model was timed beside each candidate: report the median
        seen = sorted(r[f"dense_latency_b{bs}_ms"] for r in rows[1:])
        dense_row[f"latency_b{bs}_ms"] = seen[len(seen) // 2] if seen else None
    primary = tasks.PRIMARY.get(run.recipe.task)
    return {"task": run.recipe.task, "primary_metric": primary, "rows": rows}
