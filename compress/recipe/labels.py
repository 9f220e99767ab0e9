"""Class labels: the data may hold ids (0, 1, ...) or names (`spam`, `ham`); models take ids and print names.

`class_names` decides the names of ids 0..n-1 once per run: the names the model's config already has (a trained
classifier keeps its order), else the data set's ClassLabel names, else the sorted unique label values. `to_ids`
turns a split's labels into ids with them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CompressError


@dataclass
class Classes:
    """What a run knows about its classes before it loads the model."""

    names: list[str] | None  # names of ids 0..n-1 (None: the labels are ids and nothing names them)
    num_labels: int | None  # the head width the recipe or the named classes require (None: the checkpoint's own)
    new_head_labels: int | None  # the width of a head made from scratch when num_labels is None: largest id + 1


def _model_names(config) -> list[str] | None:
    id2label = getattr(config, "id2label", None) or {}
    names = [id2label.get(i, id2label.get(str(i))) for i in range(len(id2label))]
    if not names or any(n is None for n in names) or names == [f"LABEL_{i}" for i in range(len(names))]:
        return None  # transformers' placeholders carry no names
    return [str(n) for n in names]


def class_names(rows: dict[str, list[dict]], declared: list[str] | None = None, config=None) -> list[str] | None:
    """Names of ids 0..n-1, or None when the labels are ids with no names known."""
    values = {r.get("label") for split in rows.values() for r in split} - {None}
    strings = {v for v in values if isinstance(v, str)}
    if not strings:
        return list(declared) if declared else None
    for names in (_model_names(config) if config is not None else None, declared):
        if names and strings <= set(names):
            return list(names)
    return sorted(strings)


def to_ids(values: list, names: list[str] | None) -> list[int]:
    """Label values -> ids: names through `names`, ids as they are."""
    index = {n: i for i, n in enumerate(names or ())}
    out = []
    for v in values:
        if isinstance(v, str):
            if v not in index:
                raise CompressError(
                    "data.label_column", f"label {v!r} is not one of the classes {sorted(index)}",
                    "check the label column, or give `num_labels` / a model whose id2label names it",
                )  # fmt: skip
            out.append(index[v])
        else:
            out.append(int(v))
    return out


def classes_of(rows: dict[str, list[dict]], model_path: str, num_labels: int | None = None) -> Classes:
    """The run's classes from all its splits, the data set's ClassLabel names (`rows.label_names`) and the names in
    the checkpoint's config; `num_labels` is what a `train` stage asks for."""
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError):  # the model load that follows says what is wrong with it
        config = None
    names = class_names(rows, getattr(rows, "label_names", None), config)
    values = [r.get("label") for split in rows.values() for r in split]
    width = max((int(v) + 1 for v in values if v is not None and not isinstance(v, str)), default=0)
    if num_labels is None and names:
        num_labels = len(names)
    return Classes(names, num_labels, width if width > 1 else None)
