"""A recipe's model with the head its task needs, loaded from checkpoints as the Hub ships them.

Checkpoints often name another head than the task's: sentence-transformers exports say `architectures:
[BertForMaskedLM]` while their weights are the bare encoder plus a pooler; a classifier trained for other classes has a
head of another width. `load_with_head` then builds the task's model class (e.g. BertForSequenceClassification),
loads every encoder weight strictly from the checkpoint (any encoder weight missing or of another shape is an error),
initialises the head (seeded, so every load of the same checkpoint gives the same model) and returns one line naming
the new head weights and the checkpoint keys it did not use. A checkpoint that already is the task's model loads
exactly (`compress.load`). Class names, when the data has them, go into `config.id2label` / `label2id`.
"""

from __future__ import annotations

import torch
import transformers
from torch import nn

from .. import io
from ..errors import CompressError
from ..quantize.rebuild import model_class, plan_aware

HEAD_SEED = 0  # new head weights are drawn from this seed: the same checkpoint always gives the same model


def set_label_names(config, names: list[str] | None) -> None:
    """id2label / label2id from class names (id i = names[i]), when they fit the head."""
    if names and len(names) == config.num_labels:
        config.id2label = {i: str(n) for i, n in enumerate(names)}
        config.label2id = {str(n): i for i, n in enumerate(names)}


def _encoder_key(model: nn.Module, key: str) -> bool:
    """Is `key` an encoder weight (not the head, not the pooler, which task heads re-initialise when absent)?"""
    prefix = model.base_model_prefix
    if isinstance(getattr(model, prefix, None), nn.Module):  # a task model: encoder under `<prefix>.`
        if not key.startswith(prefix + "."):
            return False
        key = key[len(prefix) + 1 :]
    return not key.startswith("pooler.")


def _group(keys) -> str:
    """['classifier.bias', 'classifier.weight', 'cls.a.b'] -> 'classifier.{bias,weight}, cls.a.b'."""
    groups: dict[str, list[str]] = {}
    for k in sorted(keys):
        head, _, leaf = k.rpartition(".")
        groups.setdefault(head, []).append(leaf)
    parts = [f"{h}.{{{','.join(v)}}}" if len(v) > 1 else f"{h}.{v[0]}" if h else v[0] for h, v in groups.items()]
    return ", ".join(parts) if len(parts) <= 6 else ", ".join(parts[:6]) + f" (+{len(parts) - 6} more)"


def target_class(config, auto_cls, path) -> type:
    try:
        return auto_cls._model_mapping[type(config)]
    except KeyError:
        kind = auto_cls.__name__.removeprefix("Auto")
        raise CompressError(
            "model", f"{path} ({config.model_type}) has no {kind} class in transformers", "use a family that has one"
        ) from None


def load_with_head(
    path: str,
    auto_cls,
    num_labels: int | None = None,
    names: list[str] | None = None,
    new_head_labels: int | None = None,
) -> tuple[nn.Module, str | None]:
    """(model of `auto_cls`'s class for this checkpoint, one line saying what was newly initialised or None).
    `num_labels`: the head width required (None: the checkpoint's own); `new_head_labels`: the width of a head made
    from scratch when none is required."""
    config = transformers.AutoConfig.from_pretrained(path)
    target = target_class(config, auto_cls, path)
    try:
        own = model_class(config, path)
    except CompressError:
        own = None
    if own is target and num_labels in (None, config.num_labels):
        model = io.load(path)  # the checkpoint is the task's model: exact, as always
        if names and all(v == f"LABEL_{i}" for i, v in model.config.id2label.items()):
            set_label_names(model.config, names)
        return model, None
    config.architectures = [target.__name__]
    if (num_labels or new_head_labels) is not None:
        config.num_labels = num_labels or new_head_labels
    set_label_names(config, names)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(HEAD_SEED)
        model, info = plan_aware(target).from_pretrained(
            path, config=config, output_loading_info=True, ignore_mismatched_sizes=True
        )
    mismatched = [m[0] if isinstance(m, tuple) else m for m in info.get("mismatched_keys", ())]
    new = set(info.get("missing_keys", ())) | set(mismatched)
    broken = sorted(k for k in new if _encoder_key(model, k))
    if broken or info.get("error_msgs"):
        raise CompressError(
            "model",
            f"{path} does not hold the encoder weights of {target.__name__}: {_group(broken) or info['error_msgs'][0]}",
            "give a checkpoint of this architecture (its encoder must load exactly)",
        )
    unused = info.get("unexpected_keys", ())
    what = f"{own.__name__} checkpoint" if own is not None else "checkpoint"
    line = (
        f"model: {path} ({what}) -> {target.__name__}: encoder weights loaded strictly; newly initialised: "
        f"{_group(new) or 'nothing'}; checkpoint keys not used: {_group(unused) or 'none'}"
    )
    return model.eval(), line
