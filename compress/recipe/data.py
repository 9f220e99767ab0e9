"""A recipe's data: built-in assets, local files or hub datasets (through `datasets`) -> rows per split.

A row is {input: ..., "label": ...}, where the task names its input (`Task.input_key`: "text", "image") and the recipe
names the column holding it (`data.text_column`, `data.image_column`)."""

from __future__ import annotations

from .. import assets
from ..errors import CompressError
from .schema import DataSpec

BUILTIN = set(assets.DATA)


class Rows(dict):
    """{split: rows}; `label_names`: the data set's ClassLabel names of label ids, when it declares them."""

    label_names: list[str] | None = None


def _row(row: str | tuple | dict) -> dict:
    """An asset row: a dict of features, a text or a (text, label) pair -> a dict; plain texts get label None."""
    if isinstance(row, dict):
        return row
    text, label = row if isinstance(row, tuple) else (row, None)
    return {"text": text, "label": label}


def _builtin(source: str, subset: str | None) -> dict[str, list[dict]]:
    raw = assets.load(source, subset) if subset else assets.load(source)
    return {name: [_row(r) for r in rows] for name, rows in raw.items()}


def load_rows(spec: DataSpec, input_key: str = "text") -> dict[str, list[dict]]:
    """{split: [{input_key: ..., "label": ...}]} (audio rows also carry "sampling_rate" and "text"). A split named
    `asset:split` or `asset/subset:split` (e.g. pocketsphinx-utterances:test) comes from that built-in asset."""
    if spec.source in BUILTIN:
        rows = _builtin(spec.source, spec.subset)
        first = next((r[0] for r in rows.values() if r), {})
        if input_key not in first:
            raise CompressError(
                "data.source", f"{spec.source!r} holds {', '.join(k for k in first if k != 'label')}, not {input_key}",
                "choose a data source that matches the recipe's task",
            )  # fmt: skip
    else:
        rows = _load_dataset(spec, input_key)
    for name in (spec.train_split, spec.eval_split, *spec.extra_eval_splits, *spec.extra_train_splits):
        if ":" in name and name not in rows:
            source, _, part = name.rpartition(":")
            source, _, subset = source.partition("/")
            if source not in BUILTIN:
                raise CompressError(
                    "data",
                    f"split {name!r} names {source!r}, not a built-in asset",
                    f"use {', '.join(sorted(BUILTIN))}",
                )
            same = source == spec.source and (subset or None) == spec.subset  # the data source's own split
            rows[name] = split(rows if same else _builtin(source, subset or None), part)
    return rows


def _load_dataset(spec: DataSpec, input_key: str) -> dict[str, list[dict]]:
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
    out = Rows()
    for split in ds:
        cols = ds[split].column_names
        if column not in cols:
            raise CompressError(f"data.{field}", f"split {split!r} has no column {column!r}", f"columns: {cols}")
        labels = ds[split][spec.label_column] if spec.label_column in cols else [None] * len(ds[split])
        out.label_names = out.label_names or getattr(ds[split].features.get(spec.label_column), "names", None)
        out[split] = [{input_key: x, "label": y} for x, y in zip(ds[split][column], labels)]
    return out


def split(rows: dict[str, list[dict]], name: str, limit: int = 0) -> list[dict]:
    if name not in rows:
        raise CompressError("data", f"no split {name!r} (have {sorted(rows)})", "set data.train_split / eval_split")
    return rows[name][:limit] if limit else rows[name]
