"""Reports of a recipe run (report.json, report.md, pareto.png) and the model card of its final model."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..version import __version__
from .load import yaml_form
from .sparsity_report import sparsity_lines
from ..evaluate import fidelity


def _evaluation(run) -> dict | None:
    evals = [r for r in run.results if r["kind"] == "evaluate"]
    return evals[-1]["summary"] if evals else None


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and abs(v) >= 10_000:
        return f"{v:,}"
    return str(v)


def metrics_table(evaluation: dict) -> str:
    """One row per model. Beside each latency stands the dense model's latency timed in the same rounds
    (`dense_latency_b*_ms`, `dense_gen_tokens_per_s`): each speed-up is the ratio of the two numbers in its row."""
    rows = evaluation["rows"]
    skip = {"name", "generation", "answers"}
    cols = ["name"] + [k for k in rows[-1] if k not in skip]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def data_lines(recipe) -> list[str]:
    """Where each split came from, with the built-in asset's description: synthetic data is labelled SYNTHETIC."""
    from .. import assets

    d = recipe.data
    roles = [(d.train_split, "training / calibration"), (d.eval_split, "evaluation (primary metric)")]
    roles += [(s, f"extra evaluation (`<metric>@{s}` columns)") for s in d.extra_eval_splits]
    lines = []
    for name, role in roles:
        source, subset = (name.rpartition(":")[0].partition("/")[::2]) if ":" in name else (d.source, d.subset)
        about = assets.describe().get(source) if source in assets.names() else None
        label = f"{source}/{subset}" if subset else source
        flag = " **SYNTHETIC**" if about and "SYNTHETIC" in about.upper() else ""
        lines.append(f"- {role}: split `{name}` of `{label}`{flag}" + (f" ({about})" if about else ""))
    return lines


def write_reports(run) -> None:
    out = run.output
    evaluation = _evaluation(run)
    report = {
        "recipe": run.recipe.model_dump(mode="json"),
        "compress_version": __version__,
        "stages": run.results,
        "evaluation": evaluation,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    md = [
        f"# {run.recipe.name}",
        "",
        f"model `{run.recipe.model}`, task `{run.recipe.task}`",
        "",
        "## Stages",
        "",
        "| stage | seconds |",
        "|---|---|",
    ]
    md += [f"| {r['stage']} | {r['seconds']} |" for r in run.results]
    md += ["", "## Data", ""] + data_lines(run.recipe)
    md += fidelity.report_lines(run.results)
    if evaluation:
        md += [
            "",
            "## Quality and efficiency",
            "",
            "speed-up = dense_latency / latency of the same row: the dense model was timed in the same rounds as that "
            "model (interleaved, median); the dense row's latency is the median of those timings.",
            "",
            metrics_table(evaluation),
        ]
        gens = [(r["name"], r["generation"]) for r in evaluation["rows"] if "generation" in r]
        if gens:
            md += ["", "## Generation sample", ""] + [f"- **{n}**: {g!r}" for n, g in gens]
        md += _answers(run, evaluation)
    md += sparsity_lines(run.results)
    if evaluation:
        _pareto(evaluation, out / "pareto.png")
        md += ["", "![quality vs speed-up](pareto.png)"]
    (out / "report.md").write_text("\n".join(md) + "\n")


def _answers(run, evaluation: dict) -> list[str]:
    """Chat prompts with every model's greedy answer, side by side."""
    rows = [r for r in evaluation["rows"] if "answers" in r]
    stage = next((s for s in reversed(run.recipe.stages) if s.type == "evaluate"), None)
    if not rows or stage is None:
        return []
    md = ["", "## Chat answers (greedy; agreement = share of the dense answer's tokens reproduced in place)", ""]
    md += ["| prompt | " + " | ".join(r["name"] for r in rows) + " |", "|" + "---|" * (len(rows) + 1)]
    cell = lambda t: t.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    for i, prompt in enumerate(stage.chat_prompts):
        md.append(f"| {cell(prompt)} | " + " | ".join(cell(r["answers"][i]) for r in rows) + " |")
    return md


def _pareto(evaluation: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = evaluation["primary_metric"]
    rows = [r for r in evaluation["rows"] if r.get(metric) is not None]
    # what a user feels: end-to-end transcription (speech), token-by-token generation (LMs), else batch latency
    speed_key = next(
        (k for k in ("e2e_speedup", "gen_speedup") if k in rows[0]),
        next((k for k in rows[0] if k.startswith("speedup_b")), None),
    )
    fig, ax = plt.subplots(figsize=(6.5, 4.5), dpi=120)
    xs = [r.get(speed_key, 1.0) for r in rows]
    ys = [r[metric] for r in rows]
    ax.plot(xs, ys, color="lightgray", zorder=1)
    for r, x, y in zip(rows, xs, ys):  # one colour per model, named in the legend (labels beside points collide)
        ax.scatter([x], [y], s=60, zorder=2, label=r["name"])
    ax.legend(fontsize=8, loc="best", framealpha=0.8)
    label = {"gen_speedup": "generation, new tokens/s", "e2e_speedup": "end-to-end transcription, batch 1"}.get(
        speed_key, (speed_key or "").replace("speedup_b", "batch ")
    )
    ax.set_xlabel(f"speed-up vs dense ({label})")
    better = "higher" if evaluation.get("higher_is_better", True) else "lower"
    split = f" on {evaluation['eval_split']}" if evaluation.get("eval_split") else ""
    ax.set_ylabel(f"{metric}{split} ({better} is better)")
    ax.set_title("quality vs latency: dense and every stage")
    ax.grid(alpha=0.3)
    ax.margins(0.15)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_model_card(folder: Path, run, extra: list[str] = ()) -> None:
    """README.md with Hub metadata: base model, licence, recipe, metrics, how to load (+ `extra` lines from the
    task, e.g. how a speech model decodes)."""
    recipe = run.recipe
    config = json.loads((folder / "config.json").read_text())
    plain = (config.get("compress") or {}).get("plain_loadable", True)
    meta = {
        "base_model": base_model(recipe.model),
        "library_name": "transformers",
        "tags": ["compress"]
        + [
            {"prune": "pruned", "sparsify": "sparse", "distill": "distilled", "quantize": "quantized"}[s.type]
            for s in recipe.stages
            if s.type in ("prune", "sparsify", "distill", "quantize")
        ],
        "pipeline_tag": _pipeline(recipe.task),
    }
    if meta["base_model"] is None:
        del meta["base_model"]
    if recipe.license:
        meta["license"] = recipe.license
    if getattr(recipe.data, "language", None):
        meta["language"] = [recipe.data.language]
    evaluation = _evaluation(run)
    arch = (config.get("architectures") or ["AutoModel"])[0]
    where = "path/to/this/folder-or-hub-repo"
    load = (
        f'from transformers import {arch}\nmodel = {arch}.from_pretrained("{where}")'
        if plain
        else f'import compress  # pip install compress\nmodel = compress.load("{where}")  '
        "# per-layer widths or quantized layers: plain from_pretrained cannot rebuild them"
    )
    text = [
        "---",
        yaml.safe_dump(meta, sort_keys=False).strip(),
        "---",
        "",
        f"# {recipe.name}",
        "",
        f"`{recipe.model}` compressed with compress {__version__} for `{recipe.task}`: "
        + ", ".join(s.type for s in recipe.stages)
        + ".",
        "",
        "## How to load",
        "",
        "```python",
        load,
        "```",
        *(["", *extra] if extra else []),
        "",
        "## Recipe",
        "",
        "```yaml",
        yaml.safe_dump(yaml_form(recipe), sort_keys=False).strip(),
        "```",
    ]
    if evaluation:
        text += ["", "## Metrics", "", *data_lines(recipe), "", metrics_table(evaluation)]
    if recipe.license:
        text += ["", f"Licence: {recipe.license} (inherited from the base model)."]
    (folder / "README.md").write_text("\n".join(text) + "\n")


def _pipeline(task: str) -> str:
    return {
        "text-classification": "text-classification",
        "sentence-embedding": "sentence-similarity",
        "causal-lm": "text-generation",
        "image-classification": "image-classification",
        "speech-recognition": "automatic-speech-recognition",
        "audio-classification": "audio-classification",
    }[task]


def base_model(model: str) -> str | None:
    """The Hub id a model card's `base_model` names: a built-in asset's origin (minilm-l6 ->
    sentence-transformers/all-MiniLM-L6-v2), a hub id as given, the origin recorded in a local folder (its
    origin.json), or None (the Hub only links ids)."""
    from .. import assets

    if model in assets.MODELS:
        return assets.hub_id(model)
    local = Path(model)
    if local.exists():
        origin = local / "origin.json"
        found = json.loads(origin.read_text()).get("model") if origin.is_file() else None
        return found if isinstance(found, str) and found.count("/") == 1 else None
    return model if model.count("/") <= 1 and not model.startswith((".", "/", "~")) else None  # a hub id
