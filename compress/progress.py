"""Progress bars for long work (rich), on the main process only; COMPRESS_PROGRESS=0 turns them off."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def enabled() -> bool:
    if os.environ.get("COMPRESS_PROGRESS", "1") == "0":
        return False
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    if not enabled():
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, total=total, transient=True)
