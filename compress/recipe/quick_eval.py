"""`compress eval MODEL --task T --data SOURCE`: the evaluate stage's metrics and side-by-side latency for one model
(and a baseline) without writing a recipe. It builds the one-stage recipe the user would have written, so the
numbers are the evaluate stage's own: same task code, same data loading, same timing."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console

from .. import assets
from ..errors import CompressError

OPTIONS = {"task": "--task", "data.eval_size": "--eval-size", "data.eval_split": "--split", "model": "--baseline"}
FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet", ".txt": "text"}


def data_spec(data: str, split: str, eval_size: int, columns: dict[str, str]) -> dict:
    """--data as a recipe's `data`: a local file (csv, json, parquet, text; its one split is `split`), a built-in
    asset or a hub dataset id."""
    spec = {"eval_split": split, "eval_size": eval_size, **columns}
    path = Path(data)
    if path.is_file():
        if path.suffix not in FORMATS:
            raise CompressError("--data", f"{data}: unknown file type", f"use {', '.join(FORMATS)}")
        return {**spec, "source": FORMATS[path.suffix], "files": {split: str(path.resolve())}, "train_split": split}
    return {**spec, "source": data}


def evaluate_model(
    model: str,
    task: str,
    data: str,
    split: str = "test",
    eval_size: int = 512,
    baseline: str | None = None,
    evaluate: dict | None = None,
    columns: dict[str, str] | None = None,
    console: Console | None = None,
) -> dict:
    """The evaluate stage's summary ({"rows": [...], ...}) for `model`, side by side with `baseline` if given (then
    the baseline is the `dense` row), else alone."""
    from .evaluation import check_metrics, evaluate_models
    from .runlog import RunLog
    from .runner import RecipeRun
    from .schema import Recipe

    raw = {
        "name": "eval",
        "model": baseline or model,
        "task": task,
        "data": data_spec(data, split, eval_size, columns or {}),
        "stages": [{"evaluate": dict(evaluate or {})}],
    }
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CompressError(OPTIONS.get(where, where), first["msg"].removeprefix("Value error, ")) from None
    check_metrics(recipe)
    candidates = {}
    if baseline:
        folder = Path(assets.resolve_model(model))
        if not (folder / "config.json").exists():
            raise CompressError("MODEL", f"{model} is not a model folder or built-in model", "give a local folder")
        name = model if model in assets.MODELS else folder.parent.name if folder.name == "model" else folder.name
        candidates[name] = folder
    console = console or Console(quiet=True)
    with tempfile.TemporaryDirectory(prefix="compress-eval-") as tmp, RunLog(Path(tmp), console) as log:
        run = RecipeRun(recipe, Path(tmp), resume=False, console=log.console)
        return evaluate_models(run, recipe.stages[0], candidates)
