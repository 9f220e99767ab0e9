"""Compact storage of sparse weights: every mostly-zero tensor of a checkpoint as its non-zero values + a bitmask.

A tensor of n elements with a fraction s of zeros takes n*(1-s)*bytes + n/8 bytes instead of n*bytes: a 50 % sparse
fp32 layer 53 %, a 2:4 one the same (one bit per weight is as small as 2-bit positions of the kept half), an int8
one 62.5 %. Lossless: the mask is taken on the bit pattern, so even -0.0 comes back. In the files

    <key>.sparse_values   (nnz,)        the non-zero elements in row-major order, original dtype
    <key>.sparse_bitmask  (ceil(n/8),)  uint8, bit j%8 of byte j//8 = element j is non-zero

and the safetensors metadata `compress.sparse` = {key: [shape, dtype]}. `compress.save` writes it for sparsified
models (`storage="bitmask"`, the default; "dense" writes plain tensors that any transformers install reads);
`compress.load` expands it to a temporary plain checkpoint and loads that, so every load path stays the same.

Why not the compressed-tensors format: its sparse compressors (sparse-bitmask, sparse-24-bitmask) were removed in
compressed-tensors 0.15.0, and transformers 5.24 requires compressed-tensors >= 0.15.0 and no longer reads a
`sparsity_config`: such a checkpoint loads with its sparse layers missing and randomly initialised
(scripts/check_compressed_tensors.py, benchmarks/sparsity/compressed_tensors.json).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

METADATA_KEY = "compress.sparse"
MIN_ZEROS = 0.25  # tensors with fewer zeros are stored as they are
_BITS = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)
_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _nonzero_bits(t: torch.Tensor) -> torch.Tensor:
    flat = t.reshape(-1)
    if flat.is_floating_point():
        flat = flat.view(_INT_VIEW[flat.element_size()])  # -0.0 is a non-zero bit pattern: kept as a value
    return flat != 0


def pack(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """tensor -> (non-zero values (nnz,), bitmask (ceil(n/8),) uint8)."""
    bits = _nonzero_bits(t)
    values = t.reshape(-1)[bits].contiguous()
    padded = torch.nn.functional.pad(bits, (0, (-bits.numel()) % 8)).reshape(-1, 8).to(torch.uint8)
    return values, (padded * _BITS).sum(1, dtype=torch.uint8)


def unpack(values: torch.Tensor, bitmask: torch.Tensor, shape: list[int]) -> torch.Tensor:
    n = 1
    for s in shape:
        n *= s
    bits = ((bitmask[:, None] & _BITS) != 0).reshape(-1)[:n]
    out = torch.zeros(n, dtype=values.dtype)
    out[bits] = values
    return out.reshape(shape)


def worth_packing(t: torch.Tensor) -> bool:
    if t.dim() < 2 or t.numel() < 256 or t.dtype == torch.bool:
        return False
    zeros = 1 - float(_nonzero_bits(t).float().mean())
    return zeros >= MIN_ZEROS and (1 - zeros) * t.element_size() + 1 / 8 < t.element_size()


def compact_folder(folder: Path) -> int:
    """Rewrite every *.safetensors file of `folder` with its mostly-zero tensors packed; returns how many were."""
    packed = 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        out, index = {}, {}
        for key, t in tensors.items():
            if worth_packing(t):
                out[f"{key}.sparse_values"], out[f"{key}.sparse_bitmask"] = pack(t)
                index[key] = [list(t.shape), str(t.dtype).removeprefix("torch.")]
            else:
                out[key] = t
        if index:
            meta[METADATA_KEY] = json.dumps(index)
            tmp = path.with_suffix(".tmp")
            save_file(out, str(tmp), metadata=meta)
            os.replace(tmp, path)
            packed += len(index)
    return packed


def expand_file(src: Path, dst: Path) -> None:
    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata() or {})
        index = json.loads(meta.pop(METADATA_KEY, "{}"))
        sparse = {f"{k}.sparse_values" for k in index} | {f"{k}.sparse_bitmask" for k in index}
        out = {k: f.get_tensor(k) for k in f.keys() if k not in sparse}
        for key, (shape, _dtype) in index.items():
            out[key] = unpack(f.get_tensor(f"{key}.sparse_values"), f.get_tensor(f"{key}.sparse_bitmask"), shape)
    save_file(out, str(dst), metadata=meta)


def is_compact(folder: Path) -> bool:
    for path in Path(folder).glob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            if METADATA_KEY in (f.metadata() or {}):
                return True
    return False


@contextlib.contextmanager
def expanded(folder: str | os.PathLike) -> Iterator[Path]:
    """`folder` itself, or, when it holds packed tensors, a temporary copy with plain tensors (removed afterwards)."""
    folder = Path(folder)
    if not folder.is_dir() or not is_compact(folder):
        yield folder
        return
    tmp = Path(tempfile.mkdtemp(prefix="compress-expanded-"))
    try:
        for item in folder.iterdir():
            if item.suffix == ".safetensors":
                expand_file(item, tmp / item.name)
            elif item.is_file():
                shutil.copy2(item, tmp / item.name)
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
