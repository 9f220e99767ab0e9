"""Generate the recipe reference (docs/recipe.md) from the schema: `python -m compress.recipe.docs > docs/recipe.md`."""

from __future__ import annotations

from pydantic import BaseModel

from .guard_spec import GuardSpec
from .schema import (
    DataSpec,
    DistillStage,
    EvaluateStage,
    ExportStage,
    PruneStage,
    PushStage,
    QuantizeStage,
    Recipe,
    TrainStage,
)
from .sparsify_stage import SparsifyStage


def _table(model) -> list[str]:
    lines = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for name, f in model.model_fields.items():
        if name == "type":
            continue
        default = "required" if f.is_required() else f.get_default(call_default_factory=True)
        default = "{}" if isinstance(default, BaseModel) else default if default == "required" else repr(default)
        kind = getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", "")
        cells = [f"`{name}`", kind, default, f.description or ""]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def render() -> str:
    out = (
        [
            "# Recipe reference",
            "",
            "Generated from `compress/recipe/schema.py`; do not edit by hand.",
            "",
            "A recipe is a YAML mapping. Unknown keys are errors. Stages run in order; each is written as",
            "`- <type>: {fields}`. Rules across stages: `train` (if any) is first; only `export`, `evaluate` and",
            "`push` may follow `quantize`; `push` is last.",
            "Override any field from the command line: `compress run r.yaml --output out --set stages.1.steps=200`.",
            "",
            "## Top level",
            "",
        ]
        + _table(Recipe)
        + ["", "## `data`", ""]
        + _table(DataSpec)
    )
    for title, model in (
        ("train", TrainStage),
        ("prune", PruneStage),
        ("sparsify", SparsifyStage),
        ("distill", DistillStage),
        ("quantize", QuantizeStage),
        ("export", ExportStage),
        ("evaluate", EvaluateStage),
        ("push", PushStage),
    ):
        out += ["", f"## Stage `{title}`", ""] + _table(model)
    out += ["", "## `guard` (in `prune` and `quantize`)", ""] + _table(GuardSpec)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render(), end="")
