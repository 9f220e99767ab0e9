"""Speech recognition quality: word error rate and batched greedy transcription.

WER is the standard definition, (substitutions + deletions + insertions) / reference words, summed over the whole set
(jiwer), lower is better, after normalising both sides. English text goes through Whisper's English text normaliser
(lower case, punctuation removed, numbers and contractions standardised: "10 of clubs." == "ten of clubs"), run
without its British->American spelling list (`normalizer.json` is not shipped offline), so "colour" and "color"
differ. Any other language gets a basic normaliser (`basic_normalize`): Unicode NFKC, lower case,
punctuation and symbols replaced by spaces. Not Whisper's `BasicTextNormalizer`: that one also blanks combining marks,
which splits words of scripts such as Devanagari ("हिन्दी" -> "ह न द").

Multilingual Whisper decodes with a language and task prompt: `transcribe*` take them from the processor's tokenizer
(`set_prefix_tokens(language=, task=)`, saved in tokenizer_config.json), the same tokens its labels start with.
"""

from __future__ import annotations

import logging
import unicodedata

import torch
from torch import nn


def _not_both_lengths(record: logging.LogRecord) -> bool:
    """Whisper checkpoints set `generation_config.max_length` (448), so every generate() given `max_new_tokens` logs
    "Both `max_new_tokens` and `max_length` seem to have been set" (47 times in one Whisper recipe run); harmless."""
    return "seem to have been set" not in record.getMessage()


logging.getLogger("transformers.generation.utils").addFilter(_not_both_lengths)


def basic_normalize(text: str) -> str:
    """Lower case, punctuation and symbols stripped, whitespace collapsed; letters and marks of any script kept."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join("".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text).split())


def normalize(text: str, language: str = "en") -> str:
    """Whisper's English normaliser for English (`language="en"`), `basic_normalize` for any other language."""
    if language != "en":
        return basic_normalize(text)
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})(text)


def wer(references: list[str], hypotheses: list[str], language: str = "en") -> float:
    """Corpus WER of normalised texts; a reference that normalises to nothing counts as the single word it was."""
    import jiwer

    refs = [normalize(r, language) or r.strip().lower() or "<empty>" for r in references]
    return float(jiwer.wer(refs, [normalize(h, language) for h in hypotheses]))


def is_multilingual(generation_config) -> bool:
    """True for Whisper checkpoints with language tokens (tiny, base, ..., large-v3); False for `.en` ones."""
    return bool(getattr(generation_config, "lang_to_id", None)) and getattr(generation_config, "is_multilingual", True)


def generate_kwargs(model, processor) -> dict:
    """`language` / `task` for `generate`, as the processor's tokenizer holds them; empty for English-only models
    (they reject both) and for a tokenizer without a language (transformers then guesses one per clip)."""
    tok = getattr(processor, "tokenizer", processor)
    language = getattr(tok, "language", None)
    if language is None or not is_multilingual(model.generation_config):
        return {}
    return {"language": language, "task": getattr(tok, "task", None) or "transcribe"}


@torch.inference_mode()
def transcribe(
    model: nn.Module, processor, audios: list, sampling_rate: int = 16_000, batch_size: int = 8, max_new_tokens=96
) -> list[str]:
    """Greedy transcripts of raw audio arrays (one 30-second window each, as Whisper reads them)."""
    features = processor.feature_extractor(audios, sampling_rate=sampling_rate, return_tensors="pt").input_features
    return transcribe_features(model, processor, features, batch_size, max_new_tokens)


@torch.inference_mode()
def transcribe_features(model, processor, features: torch.Tensor, batch_size: int = 8, max_new_tokens=96) -> list:
    from ..stats import inputs_for

    model.eval()
    max_new_tokens = min(max_new_tokens, model.config.max_target_positions - 4)  # room for the prompt tokens
    prompt = generate_kwargs(model, processor)
    out = []
    for i in range(0, len(features), batch_size):
        x = inputs_for(model, {"input_features": features[i : i + batch_size]})  # a bf16 model reads bf16 features
        ids = model.generate(**x, max_new_tokens=max_new_tokens, do_sample=False, **prompt)
        out += processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
    return [t.strip() for t in out]
