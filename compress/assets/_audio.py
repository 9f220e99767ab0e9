"""Audio clip sets on disk (rows.json + 16-bit PCM in audio.npz), WAV reading and resampling to 16 kHz."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np

RATE = 16_000


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """16-bit PCM mono WAV -> (float32 samples in [-1, 1], sampling rate)."""
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        return pcm.astype(np.float32) / 32768, w.getframerate()


def resample(x: np.ndarray, rate: int, to: int = RATE) -> np.ndarray:
    """Polyphase resampling (scipy), e.g. espeak-ng's 22,050 Hz -> 16 kHz."""
    if rate == to:
        return x.astype(np.float32)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(rate, to)
    return resample_poly(x, to // g, rate // g).astype(np.float32)


def save_clips(folder: Path, splits: dict[str, list[dict]]) -> None:
    """{split: [{"audio": float array at 16 kHz, "text": ..., "label": ..., ...}]} -> folder/rows.json + audio.npz."""
    meta, arrays = [], {}
    for split, rows in splits.items():
        for r in rows:
            key = f"c{len(meta)}"
            arrays[key] = np.round(np.clip(r["audio"], -1, 1) * 32767).astype(np.int16)
            meta.append({"split": split, "key": key, **{k: v for k, v in r.items() if k != "audio"}})
    np.savez(folder / "audio.npz", **arrays)
    (folder / "rows.json").write_text(json.dumps(meta, indent=0))


def load_clips(folder: Path) -> dict[str, list[dict]]:
    """The inverse: {split: [{"audio": float32 array, "sampling_rate": 16000, "text", "label", ...}]}."""
    out: dict[str, list[dict]] = {}
    with np.load(folder / "audio.npz") as audio:
        for m in json.loads((folder / "rows.json").read_text()):
            row = {k: v for k, v in m.items() if k not in ("split", "key")}
            row = {"audio": audio[m["key"]].astype(np.float32) / 32767, "sampling_rate": RATE, **row}
            out.setdefault(m["split"], []).append(row)
    return out
