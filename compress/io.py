"""Save and load compressed models: safetensors only, written atomically, reloaded exactly.

`load` rebuilds any pruned checkpoint: it builds the model class named in `config.json` through a thin subclass
that keeps the original class name and module (so transformers still applies its checkpoint key renames) and
reshapes layers to the pruning record before the weights are loaded; missing or unexpected keys are an error.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
import transformers
from torch import nn

from .errors import CompressError
from .models.whisper import attach_window, save_window
from .pruning.record import get_record
from .quantize.rebuild import model_class, plan_aware  # importing compress.quantize registers the methods


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it replaces `path`, on failure it is removed. An existing
    empty folder (e.g. a `tempfile.TemporaryDirectory()`) is filled; anything else needs `overwrite`."""
    path = Path(path)
    if path.exists() and not overwrite and not (path.is_dir() and not any(path.iterdir())):
        raise CompressError(
            "output", f"{path} already exists and is not empty", "choose another folder or pass --overwrite"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        path.rename(old)
    tmp.rename(path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _plain_shapes_match(model: nn.Module) -> bool:
    """Would plain transformers, building from this config alone, get every tensor shape right?"""
    cls = getattr(transformers, type(model).__name__, None)
    if cls is None:
        return False
    with torch.device("meta"):
        ref = cls._from_config(copy.deepcopy(model.config))
    ours = {k: v.shape for k, v in model.state_dict().items()}
    return ours == {k: v.shape for k, v in ref.state_dict().items()}


def save(
    model: nn.Module, path: str | os.PathLike, tokenizer=None, overwrite: bool = False, sparse_storage: str = "bitmask"
) -> Path:
    """Write model (+ tokenizer/processor) to `path` as safetensors; `config.json` carries the pruning record and
    says whether plain `from_pretrained` can load it (`compress.plain_loadable`). A sparsified model's weights are
    stored as non-zeros + bitmask (`sparse_storage="bitmask"`) or as plain tensors (`"dense"`, plain-loadable)."""
    from .sparsity.config import STORAGES
    from .sparsity.storage import compact_folder

    if sparse_storage not in STORAGES:
        raise CompressError(
            "sparse_storage", f"unknown storage {sparse_storage!r}", f"use one of {', '.join(STORAGES)}"
        )
    record = get_record(model.config)
    sparse = (record or {}).get("sparsity")
    if sparse:
        sparse["storage"] = sparse_storage
    compact = bool(sparse) and sparse_storage == "bitmask"
    if record is not None:
        record["plain_loadable"] = _plain_shapes_match(model) and not compact
    with atomic_dir(path, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        if compact:
            compact_folder(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
            save_window(model, tmp)
    return Path(path)


def load(path: str | os.PathLike, **kwargs) -> nn.Module:
    """Load a (pruned) model saved by `save` or any transformers checkpoint; raises on missing/unexpected keys."""
    local = Path(path)
    if (local.exists() and not (local / "config.json").exists()) or (
        not local.exists() and str(path).startswith((".", "/"))
    ):
        raise CompressError("model", f"{path} is not a model folder (no config.json)", "give a folder written by save")
    kwargs.setdefault("trust_remote_code", False)
    config = transformers.AutoConfig.from_pretrained(path, trust_remote_code=kwargs["trust_remote_code"])
    cls = plan_aware(model_class(config, path))
    from .sparsity.storage import expanded

    with expanded(path) as weights:  # packed sparse tensors -> a temporary plain checkpoint
        model, info = cls.from_pretrained(weights, config=config, output_loading_info=True, **kwargs)
    model.config._name_or_path = str(path)  # not the temporary copy's
    problems = {k: sorted(v) for k, v in info.items() if k != "error_msgs" and v}
    if problems or info.get("error_msgs"):
        raise CompressError(
            "model",
            f"{path} did not load exactly: {json.dumps(problems)[:300]}",
            "the checkpoint and its config.json disagree; re-save it with compress.save",
        )
    attach_window(model)
    model.eval()
    return model
