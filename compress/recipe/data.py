"""A recipe's data: built-in assets, local files or hub datasets (through `datasets`) -> rows per split.

A row is {input: ..., "label": ...}, where the task names its input (`Task.input_key`: "text", "image") and the recipe
names the column holding it (`data.text_column`, `data.image_column`)."""

from __future__ import annotations

from ..errors import CompressError
from .schema import DataSpec

BUILTIN = {"rotten-tomatoes", "fashion-mnist"}


def _builtin(name: str) -> dict[str, list[dict]]:
    from .. import assets

    if name == "rotten-tomatoes":
        return {split: [{"text": t, "label": y} for t, y in rows] for split, rows in assets.rotten_tomatoes().items()}
    return assets.module(name).load()  # data assets whose load() already gives rows


def load_rows(spec: DataSpec, input_key: str = "text") -> dict[str, list[dict]]:
    """{split: [{input_key: ..., "label": ...}]}"""
    if spec.source in BUILTIN:
        rows = _builtin(spec.source)
        first = next((r[0] for r in rows.values() if r), {})
        if input_key not in first:
            raise CompressError(
                "data.source", f"{spec.source!r} holds {', '.join(k for k in first if k != 'label')}, not {input_key}",
                "choose a data source that matches the recipe's task",
            )  # fmt: skip
        return rows
    import datasets

    try:
        if spec.files:
            ds = datasets.load_dataset(spec.source, data_files=spec.files)
        else:
            ds = datasets.load_dataset(spec.source, spec.subset)
    except Exception as e:  # datasets raises many types (FileNotFound, ConnectionError, DatasetNotFound...)
        raise CompressError(
            "data.source",
            f"cannot load {spec.source!r} ({type(e).__name__}: {str(e)[:120]})",
            f"use a built-in asset ({', '.join(sorted(BUILTIN))}) or local `files`",
        ) from None
    field = f"{input_key}_column"
    column = getattr(spec, field)
    out = {}
    for split in ds:
        cols = ds[split].column_names
        if column not in cols:
            raise CompressError(f"data.{field}", f"split {split!r} has no column {column!r}", f"columns: {cols}")
        labels = ds[split][spec.label_column] if spec.label_column in cols else [None] * len(ds[split])
        out[split] = [{input_key: x, "label": y} for x, y in zip(ds[split][column], labels)]
    return out


def split(rows: dict[str, list[dict]], name: str, limit: int = 0) -> list[dict]:
    if name not in rows:
        raise CompressError("data", f"no split {name!r} (have {sorted(rows)})", "set data.train_split / eval_split")
    return rows[name][:limit] if limit else rows[name]
