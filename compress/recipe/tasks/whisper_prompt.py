"""Whisper's decoder prompt for a speech-recognition recipe: which language and task every decode and every label uses.

A multilingual checkpoint (its generation config has `lang_to_id` / `task_to_id`) reads the prompt

    <|startoftranscript|> <|en|> <|transcribe|> <|notimestamps|> text ... <|endoftext|>

and, given none, guesses a language per clip (often wrongly: "And, and, and, ..."), and its tokenizer makes labels
without the language and task tokens. An English-only (`.en`) checkpoint reads `<|startoftranscript|>
<|notimestamps|>` and takes no language or task. So a recipe names them (`data.language`, `data.speech_task`):
`resolve` checks them against the model (a multilingual model without a language is an error) and `apply` sets them
as the tokenizer's prefix tokens (`set_prefix_tokens(language=, task=)`). The processor then carries them: labels
(calibration batches, KD labels, pseudo-labels) come from its tokenizer, every `generate` call takes
`generate_kwargs(model, processor)` (evaluation transcripts, generation timing, teacher transcripts), and it is saved
next to every model (tokenizer_config.json keeps `language` and `task`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import CompressError
from ...evaluate.speech import generate_kwargs, is_multilingual

TASKS = ("transcribe", "translate")
__all__ = ["WhisperPrompt", "apply", "generate_kwargs", "is_multilingual", "language_code", "of", "resolve"]


def language_code(value: str) -> str:
    """`en`, `English`, `<|en|>` -> `en` (Whisper's language codes); ValueError for anything else."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

    v = value.strip().lower().removeprefix("<|").removesuffix("|>")
    if v in LANGUAGES:
        return v
    if v in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[v]
    raise ValueError(f"unknown language {value!r}; use a Whisper language code (en, de, fr, ...) or name (english)")


@dataclass(frozen=True)
class WhisperPrompt:
    language: str | None  # Whisper language code; None on English-only models (they take none)
    task: str | None  # transcribe | translate; None on English-only models

    @property
    def text_language(self) -> str:
        """Language of the transcripts the model writes (translate writes English), for the WER normaliser."""
        return "en" if self.language is None or self.task == "translate" else self.language

    def describe(self) -> str:
        """For reports and model cards."""
        if self.language is None:
            return "the English-only prompt `<|startoftranscript|> <|notimestamps|>` (no language or task tokens)"
        tokens = f"<|startoftranscript|> <|{self.language}|> <|{self.task}|> <|notimestamps|>"
        return f"the prompt `{tokens}` (language `{self.language}`, task `{self.task}`)"


def resolve(generation_config, language: str | None, task: str | None) -> WhisperPrompt:
    """The prompt a recipe asks of this model, or a one-line error naming the recipe field."""
    if not is_multilingual(generation_config):
        if language not in (None, "en"):
            raise CompressError(
                "data.language",
                f"the model is English-only (no language tokens) and cannot read {language!r}",
                "drop `data.language` (or set it to en), or use a multilingual Whisper checkpoint",
            )
        if task == "translate":
            raise CompressError(
                "data.speech_task",
                "an English-only model cannot translate",
                "drop `data.speech_task` (or set it to transcribe), or use a multilingual Whisper checkpoint",
            )
        return WhisperPrompt(None, None)
    if language is None:
        raise CompressError(
            "data.language",
            "the model is a multilingual Whisper and no language is given (it would guess one per clip)",
            "set `data.language` to the language of the audio, e.g. `language: en`",
        )
    known = sorted(t.strip("<|>") for t in generation_config.lang_to_id)
    if f"<|{language}|>" not in generation_config.lang_to_id:
        raise CompressError("data.language", f"the model has no <|{language}|> token", f"use one of {', '.join(known)}")
    task = task or "transcribe"
    if task not in (getattr(generation_config, "task_to_id", None) or {}):
        raise CompressError("data.speech_task", f"the model has no <|{task}|> token", "use transcribe")
    return WhisperPrompt(language, task)


def apply(prompt: WhisperPrompt, tokenizer, generation_config) -> None:
    """Set the tokenizer's prefix tokens to the prompt (multilingual models), checked against the prompt the model's
    generation config builds, so labels and decoding cannot disagree."""
    if prompt.language is None:
        return
    tokenizer.set_prefix_tokens(language=prompt.language, task=prompt.task, predict_timestamps=False)
    g = generation_config
    expected = [
        g.decoder_start_token_id,
        g.lang_to_id[f"<|{prompt.language}|>"],
        g.task_to_id[prompt.task],
        g.no_timestamps_token_id,
    ]
    if tokenizer.prefix_tokens != expected:
        raise CompressError(
            "tokenizer",
            f"its prompt for {prompt.language}/{prompt.task} is {tokenizer.prefix_tokens}, the model's is {expected}",
            "use the checkpoint's own Whisper tokenizer",
        )


def of(model, processor) -> WhisperPrompt:
    """The prompt `model` decodes with given `processor` (what `apply` set on its tokenizer)."""
    kw = generate_kwargs(model, processor)
    return WhisperPrompt(kw.get("language"), kw.get("task"))
