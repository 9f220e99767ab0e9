"""One-shot settings for recipes/whisper-tiny-asr.yaml (no training): Whisper tiny.en with its audio window cut
(`compress.prune(audio_window=N)`), with or without the least-squares refit, and int8-dynamic with or without the
vocabulary projection. WER on the recipe's three real splits, end-to-end transcription time of one utterance at
batch 1 (log-mel of the model's own window + encoder + greedy decoding; mean over the first 3 Asterisk test clips),
timed side by side with the dense model in the same rounds (median of 5 after one warm-up round).

    flock /tmp/heavy.lock .venv/bin/python scripts/check_whisper_window.py   # ~15 min on the 2-core CPU

Writes benchmarks/whisper-tiny-asr/window/results.json (one row per setting, written as it goes) and its README.md.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("COMPRESS_PROGRESS", "0")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from rich.console import Console  # noqa: E402

import compress  # noqa: E402
from compress import assets  # noqa: E402
from compress.evaluate.speech import transcribe_features, wer  # noqa: E402
from compress.models.whisper import window_samples  # noqa: E402
from compress.recipe.load import load_recipe  # noqa: E402
from compress.recipe.runner import RecipeRun  # noqa: E402

ROOT = Path(__file__).parents[1]
OUT = ROOT / "benchmarks" / "whisper-tiny-asr" / "window"
SETTINGS = {  # name: (prune kwargs or None for the dense model, int8 options or None)
    "dense": (None, None),
    "dense, int8": (None, {"granularity": "per-tensor"}),
    "dense, int8 + head": (None, {"granularity": "per-tensor", "skip_head": False}),
    "window 25 s": ({"audio_window": 25, "reconstruct": False}, None),
    "window 20 s": ({"audio_window": 20, "reconstruct": False}, None),
    "window 15 s": ({"audio_window": 15, "reconstruct": False}, None),
    "window 20 s + refit": ({"audio_window": 20, "reconstruct": True}, None),
    "window 20 s + refit (ridge 1)": ({"audio_window": 20, "reconstruct": True, "ridge": 1.0}, None),
    "window 20 s, int8": ({"audio_window": 20, "reconstruct": False}, {"granularity": "per-tensor"}),
    "window 20 s, int8 + head": (
        {"audio_window": 20, "reconstruct": False},
        {"granularity": "per-tensor", "skip_head": False},
    ),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main() -> None:
    torch.set_num_threads(2)
    recipe = load_recipe(str(ROOT / "recipes" / "whisper-tiny-asr.yaml"), [])
    with tempfile.TemporaryDirectory() as tmp:
        run = RecipeRun(recipe, Path(tmp) / "run", resume=False, console=Console(quiet=True))
    dense, proc = run.model.eval(), run.processor
    calib = run.calibration()  # the recipe's: 32 Asterisk training clips
    fe = proc.feature_extractor
    ast, ps = assets.load("asterisk-prompts"), assets.load("pocketsphinx-utterances")
    splits = {"asterisk test": ast["test"], "pocketsphinx": ps["test"], "asterisk validation": ast["validation"]}
    feats = {k: fe([r["audio"] for r in v], sampling_rate=16_000, return_tensors="pt").input_features
             for k, v in splits.items()}  # fmt: skip
    clips = [r["audio"] for r in ast["test"][:3]]

    def quality(model) -> dict:
        out = {}
        for name, rows in splits.items():
            hyps = transcribe_features(model, proc, feats[name], 8, recipe.data.max_length)
            out[name] = round(100 * wer([r["text"] for r in rows], hyps), 2)
        return out

    @torch.inference_mode()
    def e2e(models: dict) -> dict:
        times = {n: [] for n in models}
        for _ in range(6):
            for name, model in models.items():
                samples = window_samples(model, fe)
                t = time.perf_counter()
                for audio in clips:
                    x = fe([audio], sampling_rate=16_000, max_length=samples, return_tensors="pt").input_features
                    model.generate(input_features=x, max_new_tokens=recipe.data.max_length)
                times[name].append((time.perf_counter() - t) / len(clips))
        return {n: statistics.median(v[1:]) for n, v in times.items()}

    rows = []
    for name, (prune_kw, int8) in SETTINGS.items():
        model = copy.deepcopy(dense)
        t0 = time.perf_counter()
        if prune_kw:
            compress.prune(model, calibration=calib, dense=dense, **prune_kw)
        if int8:
            compress.quantize(model, "int8-dynamic", **int8)
        seconds = time.perf_counter() - t0
        row = {"setting": name, "prune": prune_kw, "int8": int8, "seconds": round(seconds, 1), "wer": quality(model)}
        if name != "dense":
            t = e2e({"dense": dense, name: model})
            row.update(e2e_ms=round(1e3 * t[name], 1), dense_e2e_ms=round(1e3 * t["dense"], 1))
            row["e2e_speedup"] = round(t["dense"] / t[name], 3)
        rows.append(row)
        log(json.dumps(row))
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "results.json").write_text(json.dumps({"threads": 2, "rows": rows}, indent=2) + "\n")
    (OUT / "README.md").write_text(render(rows))


def render(rows: list[dict]) -> str:
    lines = [
        "# Whisper tiny.en: audio window and int8, one-shot",
        "",
        "Generated by `scripts/check_whisper_window.py` from `results.json` (do not edit by hand). No training; WER %",
        "on the recipe's real splits (81 held-out Asterisk test clips, the 10 pocketsphinx utterances, 28 Asterisk",
        "validation clips); end-to-end = log-mel of the model's own window + encoder + greedy decoding of one",
        "utterance at batch 1, timed side by side with the dense model (median of 5 rounds, 2 threads). *refit*: the",
        "least-squares refit of every sublayer to the full-window model on the recipe's 32 calibration clips; *head*:",
        "the vocabulary projection quantized too (untied from the token embeddings).",
        "",
        "| setting | asterisk test | pocketsphinx | asterisk validation | end-to-end vs dense |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        w = r["wer"]
        speed = f"{r['e2e_speedup']:.2f}x" if "e2e_speedup" in r else ""
        lines.append(
            f"| {r['setting']} | {w['asterisk test']:.2f} | {w['pocketsphinx']:.2f} | "
            f"{w['asterisk validation']:.2f} | {speed} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
