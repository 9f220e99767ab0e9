"""A recipe's data: built-in assets, local files or hub datasets (through `datasets`) -> rows per split."""

from __future__ import annotations

from ..errors import CompressError
from .schema import DataSpec

BUILTIN = {"rotten-tomatoes", "pocketsphinx-utterances", "espeak-speech"}


def _builtin(source: str, subset: str | None) -> dict[str, list[dict]]:
    from .. import assets

    if source == "rotten-tomatoes":
        return {split: [{"text": t, "label": y} for t, y in rows] for split, rows in assets.rotten_tomatoes().items()}
    if source == "espeak-speech":  # audio rows: {"audio", "sampling_rate", "text", "label", ...}
        return assets.module(source).load(subset or "sentences")
    return assets.module(source).load()


def load_rows(spec: DataSpec) -> dict[str, list[dict]]:
    """{split: [{"text": ..., "label": ...}]} (audio rows also carry "audio" and "sampling_rate"). A split named
    `asset:split` or `asset/subset:split` (e.g. pocketsphinx-utterances:test) comes from that built-in asset."""
    rows = _builtin(spec.source, spec.subset) if spec.source in BUILTIN else _load_dataset(spec)
    for name in (spec.train_split, spec.eval_split, *spec.extra_eval_splits):
        if ":" in name and name not in rows:
            source, _, part = name.rpartition(":")
            source, _, subset = source.partition("/")
            if source not in BUILTIN:
                raise CompressError(
                    "data",
                    f"split {name!r} names {source!r}, not a built-in asset",
                    f"use {', '.join(sorted(BUILTIN))}",
                )
            rows[name] = split(_builtin(source, subset or None), part)
    return rows


def _load_dataset(spec: DataSpec) -> dict[str, list[dict]]:
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
