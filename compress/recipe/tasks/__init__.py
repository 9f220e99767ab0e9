"""Recipe tasks: one class per task (text.py, causal_lm.py, vision.py, speech.py).
`get(name)` -> the class."""

from __future__ import annotations

from ...errors import CompressError
from .base import Task
from .causal_lm import CausalLM
from .speech import AudioClassification, SpeechRecognition
from .text import SentenceEmbedding, TextClassification
from .vision import ImageClassification

TASKS: dict[str, type[Task]] = {
    t.name: t
    for t in (
        TextClassification,
        SentenceEmbedding,
        CausalLM,
        ImageClassification,
        SpeechRecognition,
        AudioClassification,
    )
}


def get(name: str) -> type[Task]:
    if name not in TASKS:
        raise CompressError(
            "task", f"recipes cannot run {name!r} yet", f"use one of {', '.join(TASKS)}, or the Python API"
        )
    return TASKS[name]


__all__ = ["TASKS", "Task", "get"]
