"""10,568 Rotten-Tomatoes review sentences with sentiment (Hutto & Gilbert 2014, from the `vaderSentiment` sdist)."""

from __future__ import annotations

import random
import tarfile
from pathlib import Path

from ._cache import fetched, pip

DESCRIPTION = "10,568 Rotten-Tomatoes review sentences, binary sentiment, seeded 80/10/10 split, MIT"
SPLIT_SEED = 1234


def _download(tmp: Path) -> None:
    pip("download", "--no-deps", "--no-binary", ":all:", "-d", str(tmp), "vaderSentiment==3.3.2")
    with tarfile.open(next(tmp.glob("vaderSentiment-*.tar.gz"))) as sdist:
        inner = sdist.extractfile("vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz")
        with tarfile.open(fileobj=inner) as data:
            member = data.getmember("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
            (tmp / "movieReviewSnippets_GroundTruth.txt").write_bytes(data.extractfile(member).read())


def fetch() -> Path:
    return fetched("rotten-tomatoes", _download)


def load() -> dict[str, list[tuple[str, int]]]:
    """{"train"|"validation"|"test": [(sentence, label)]}, label 1 = positive (mean rating > 0); neutral ones dropped,
    a fixed seeded 80/10/10 split."""
    rows = []
    for line in (fetch() / "movieReviewSnippets_GroundTruth.txt").read_text(encoding="utf-8").splitlines():
        parts = line.strip().split("\t")
        if len(parts) != 3 or float(parts[1]) == 0:
            continue
        rows.append((parts[2], int(float(parts[1]) > 0)))
    random.Random(SPLIT_SEED).shuffle(rows)
    n = len(rows)
    a, b = int(0.8 * n), int(0.9 * n)
    return {"train": rows[:a], "validation": rows[a:b], "test": rows[b:]}
