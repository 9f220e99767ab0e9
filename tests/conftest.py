import os

import numpy as np
import pytest

os.environ.setdefault("COMPRESS_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

if os.environ.get("PYTEST_XDIST_WORKER"):  # parallel workers share the cores instead of each taking all of them
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


# --- fixtures shared by test modules ------------------------------------------------------------------------------


def _clips(texts, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(8000) / 16_000
    return [
        {"audio": (0.3 * np.sin(2 * np.pi * (200 + 40 * i) * t) + 0.01 * rng.standard_normal(8000)), "text": s}
        for i, s in enumerate(texts)
    ]


@pytest.fixture
def fake_speech_cache(tmp_path, monkeypatch):
    """espeak-speech (sentences, keywords) and pocketsphinx-utterances as their cache folders would hold them (sine
    tones with transcripts: the pipeline is under test, not recognition)."""
    from compress.assets import _audio

    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path / "cache"))
    words = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    espeak = tmp_path / "cache" / "espeak-speech"
    (espeak / "sentences").mkdir(parents=True)
    splits = {
        "train": _clips([f"{a} {b}" for a, b in zip(words, words[3:])], 0),
        "validation": _clips(["go on"], 1),
        "test": _clips(["stop it", "left right"], 2),
    }
    _audio.save_clips(espeak / "sentences", {k: [{**r, "label": None} for r in v] for k, v in splits.items()})
    (espeak / ".complete").write_text("ok\n")
    (espeak / "keywords").mkdir()
    keywords = {
        split: [{**r, "label": i % 2} for i, r in enumerate(_clips(["yes", "no"] * n, seed))]
        for split, n, seed in (("train", 6, 4), ("validation", 1, 5), ("test", 3, 6))
    }
    _audio.save_clips(espeak / "keywords", keywords)
    real = tmp_path / "cache" / "pocketsphinx-utterances"
    real.mkdir()
    _audio.save_clips(real, {"test": [{**r, "label": None} for r in _clips(["ten of clubs", "five five", "go"], 3)]})
    (real / ".complete").write_text("ok\n")
