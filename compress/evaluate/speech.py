"""Speech recognition quality: word error rate and batched greedy transcription.

WER is the standard definition, (substitutions + deletions + insertions) / reference words, summed over the whole set
(jiwer), lower is better, after Whisper's English text normaliser on both sides (lower case, punctuation removed,
numbers and contractions standardised: "10 of clubs." == "ten of clubs"). The normaliser runs without its
British->American spelling list (`normalizer.json` is not shipped offline), so "colour" and "color" differ.
"""

from __future__ import annotations

import torch
from torch import nn


def normalize(text: str) -> str:
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})(text)


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER of normalised texts; a reference that normalises to nothing counts as the single word it was."""
    import jiwer

    refs = [normalize(r) or r.strip().lower() or "<empty>" for r in references]
    return float(jiwer.wer(refs, [normalize(h) for h in hypotheses]))


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
    out = []
    for i in range(0, len(features), batch_size):
        x = inputs_for(model, {"input_features": features[i : i + batch_size]})  # a bf16 model reads bf16 features
        ids = model.generate(**x, max_new_tokens=max_new_tokens, do_sample=False)
        out += processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
    return [t.strip() for t in out]
