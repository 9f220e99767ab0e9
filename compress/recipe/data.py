"""A recipe's data: built-in assets, local files or hub datasets (through `datasets`) -> rows per split."""

from __future__ import annotations

from .. import assets
from ..errors import CompressError
from .schema import DataSpec

BUILTIN = set(assets.DATA)


def _row(row: str | tuple) -> dict:
    """An asset row, a text or a (text, label) pair -> {"text", "label"}; plain texts get label None."""
    text, label = row if isinstance(row, tuple) else (row, None)
    return {"text": text, "label": label}


def load_rows(spec: DataSpec) -> dict[str, list[dict]]:
    """{split: [{"text": ..., "label": ...}]}"""
    if spec.source in BUILTIN:
        return {split: [_row(r) for r in rows] for split, rows in assets.load(spec.source).items()}
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
    out = {}
    for split in ds:
        cols = ds[split].column_names
        if spec.text_column not in cols:
            raise CompressError(
                "data.text_column", f"split {split!r} has no column {spec.text_column!r}", f"columns: {cols}"
            )
        labels = ds[split][spec.label_column] if spec.label_column in cols else [None] * len(ds[split])
        out[split] = [{"text": t, "label": y} for t, y in zip(ds[split][spec.text_column], labels)]
    return out


def split(rows: dict[str, list[dict]], name: str, limit: int = 0) -> list[dict]:
    if name not in rows:
        raise CompressError("data", f"no split {name!r} (have {sorted(rows)})", "set data.train_split / eval_split")
    return rows[name][:limit] if limit else rows[name]
