"""Examples, the seeded data order shared by every process, batching, and the on-disk teacher cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import CompressError
from ..progress import track


def to_examples(data, tokenizer=None, max_length: int = 128) -> list[dict]:
    """Texts (with a tokenizer) or per-example feature dicts -> list of feature dicts."""
    data = list(data)
    if not data:
        raise CompressError("data", "the distillation data set is empty", "give at least one example")
    if isinstance(data[0], str):
        if tokenizer is None:
            raise CompressError(
                "tokenizer", "text data needs a tokenizer", "pass tokenizer=... (CLI: from the student)"
            )
        enc = tokenizer(data, truncation=True, max_length=max_length)
        return [{k: enc[k][i] for k in enc} for i in range(len(data))]
    if not isinstance(data[0], dict):
        raise CompressError("data", f"examples must be texts or dicts of features, got {type(data[0]).__name__}")
    return data


def collate(examples: list[dict], tokenizer=None) -> dict:
    """Pad token sequences with the tokenizer; stack fixed-size features (images, audio frames); token labels are
    padded with -100 (ignored by losses and masks)."""
    if tokenizer is not None and "input_ids" in examples[0]:
        batch = dict(
            tokenizer.pad([{k: v for k, v in e.items() if k != "labels"} for e in examples], return_tensors="pt")
        )
        if "labels" in examples[0]:
            batch["labels"] = _pad_labels([e["labels"] for e in examples])
        return batch
    batch = {k: torch.stack([torch.as_tensor(e[k]) for e in examples]) for k in examples[0] if k != "labels"}
    if "labels" in examples[0]:  # class ids, or token sequences of different lengths (speech transcripts)
        batch["labels"] = _pad_labels([e["labels"] for e in examples])
    return batch


def _pad_labels(labels) -> torch.Tensor:
    tensors = [torch.as_tensor(y) for y in labels]
    if tensors[0].dim() == 0:
        return torch.stack(tensors)
    return torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True, padding_value=-100)


def global_batch(step: int, n_examples: int, global_size: int, seed: int) -> list[int]:
    """Example indices of micro-step `step`: a seeded permutation per epoch, consumed in order. Identical on every
    process, so a run is the same whatever the number of processes (each takes its own slice)."""
    start = step * global_size
    out = []
    while len(out) < global_size:
        epoch, offset = divmod(start + len(out), n_examples)
        perm = torch.randperm(n_examples, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        out += perm[offset : offset + global_size - len(out)]
    return out


def fingerprint(teacher, examples: list[dict], mode: str, topk: int) -> str:
    h = hashlib.sha256(json.dumps([teacher.config.to_json_string(), mode, topk, len(examples)]).encode())
    for e in examples[:64]:
        for k, v in sorted(e.items()):
            h.update(k.encode())
            if hasattr(v, "shape"):  # tensors, arrays (images, audio): their values (a large tensor's repr is abridged)
                h.update(torch.as_tensor(v).detach().cpu().float().contiguous().numpy().tobytes())
            else:
                h.update(repr(list(v) if hasattr(v, "__iter__") else v).encode())
    return h.hexdigest()[:16]


class TeacherCache:
    """Teacher targets computed once per example and kept in a safetensors file: pooled embeddings (N, D), or the
    top-k logits of every position (N, T, k) as fp16 values + int32 indices. `path=None`: kept in memory only."""

    def __init__(self, path: Path | None, tensors: dict[str, torch.Tensor]):
        self.path, self.tensors = path, tensors

    @classmethod
    def build(cls, path: Path | None, key: str, compute, n: int, batch: int) -> TeacherCache:
        if path is not None and path.exists():
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                if (f.metadata() or {}).get("fingerprint") == key:
                    return cls(path, load_file(str(path)))
        parts: dict[str, list[torch.Tensor]] = {}
        for i in track(range(0, n, batch), description="caching teacher outputs", total=-(-n // batch)):
            for name, t in compute(list(range(i, min(n, i + batch)))).items():
                parts.setdefault(name, []).append(t)
        tensors = {name: _cat_padded(ts) for name, ts in parts.items()}
        if path is None:
            return cls(None, tensors)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata={"fingerprint": key})
        tmp.rename(path)
        return cls(path, tensors)

    def get(self, indices: list[int], length: int | None = None) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices)
        out = {k: v.index_select(0, idx) for k, v in self.tensors.items()}
        if length is not None:
            out = {k: v[:, :length] if v.dim() > 2 else v for k, v in out.items()}
        return out


def _cat_padded(ts: list[torch.Tensor]) -> torch.Tensor:
    if ts[0].dim() <= 2:
        return torch.cat(ts)
    t_max = max(t.shape[1] for t in ts)
    return torch.cat([torch.nn.functional.pad(t, (0, 0, 0, t_max - t.shape[1])) for t in ts])
