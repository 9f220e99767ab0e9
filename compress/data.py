"""Calibration and evaluation batches from text: lists of strings, or files (.txt one text per line; .csv / .json /
.jsonl / .parquet through `datasets`, reading the `text` column)."""

from __future__ import annotations

from pathlib import Path

from .errors import CompressError

TEXT_SUFFIXES = {".txt", ".csv", ".json", ".jsonl", ".parquet"}


def read_texts(path: str | Path, column: str = "text", limit: int | None = None) -> list[str]:
    path = Path(path)
    if not path.exists():
        raise CompressError("calibration", f"file {path} does not exist", "give a .txt/.csv/.json/.jsonl/.parquet file")
    if path.suffix not in TEXT_SUFFIXES:
        raise CompressError(
            "calibration", f"unsupported file type {path.suffix!r}", f"use one of {sorted(TEXT_SUFFIXES)}"
        )
    if path.suffix == ".txt":
        texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        import datasets

        kind = {".jsonl": "json"}.get(path.suffix, path.suffix[1:])
        ds = datasets.load_dataset(kind, data_files=str(path), split="train")
        if column not in ds.column_names:
            raise CompressError(
                "calibration",
                f"{path} has no column {column!r} (columns: {ds.column_names})",
                "rename the text column to `text`",
            )
        texts = [t for t in ds[column] if isinstance(t, str) and t.strip()]
    if not texts:
        raise CompressError("calibration", f"{path} contains no text", "give a file with at least one sentence")
    return texts[:limit] if limit else texts


def text_batches(tokenizer, texts: list[str], batch_size: int = 16, max_length: int = 128) -> list[dict]:
    """Tokenized, padded batches of model inputs."""
    return [
        dict(
            tokenizer(
                texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
        )
        for i in range(0, len(texts), batch_size)
    ]


def token_windows(tokenizer, texts: list[str], max_length: int, min_tokens: int | None = None) -> list[dict]:
    """Each text's tokens cut into consecutive windows of `max_length` tokens, as feature dicts (input_ids,
    attention_mask) for `compress.distill`: language-model training then reads a long text to its end instead of
    losing everything after the first `max_length` tokens. A text's first window is always kept; a later window
    shorter than `min_tokens` (default max_length // 4) is dropped, and so is a text with no tokens."""
    min_tokens = max_length // 4 if min_tokens is None else min_tokens
    out = []
    for ids in tokenizer(texts)["input_ids"]:
        for start in range(0, len(ids), max_length):
            window = ids[start : start + max_length]
            if start and len(window) < min_tokens:
                break
            out.append({"input_ids": window, "attention_mask": [1] * len(window)})
    return out
