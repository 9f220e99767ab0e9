"""Speech tasks.

Audio classification (keyword spotting) with audio encoders that have a classification head (wav2vec2, HuBERT):
clips padded / cut to `AudioClassification.window_seconds`, quality = accuracy and macro F1.

Speech recognition with encoder-decoder models that read log-mel features (Whisper): audio rows -> input features,
transcripts -> decoder labels; quality = word error rate of greedy transcripts (`compress.evaluate.speech`).
Multilingual Whisper decodes and learns with a language and task prompt (`data.language`, `data.speech_task`; see
`whisper_prompt.py`): set once as the processor's tokenizer prefix tokens, so every label and every `generate` call
below uses it.

Cost of a seq2seq model is one encoded audio window plus a transcript decoded token by token, so:

- latency (`latency_b*`): one forward on a full window (Whisper: 30 s, 1,500 encoder frames) with `LATENCY_TOKENS`
  decoder tokens teacher-forced (encoder + one decoder pass);
- generation speed (`gen_tokens_per_s`): greedy `generate` of exactly `evaluate.max_new_tokens` tokens for one clip
  (encoder once + that many cached decoder steps), reported as tokens per second, side by side with the dense model;
- end-to-end transcription (`e2e_ms`, `e2e_speedup`): what a user waits for, batch 1: log-mel features of the raw
  audio, the encoder, greedy decoding until the end of text (each model stops where it stops) and detokenising, per
  utterance (mean over the first `TRANSCRIBE_CLIPS` eval clips), side by side with the dense model;
- MACs: the Linear and convolution layers as they run in the latency forward (counted with hooks: the audio front end
  and encoder per frame, cross-attention keys/values once per window, the decoder and vocabulary projection per
  token) plus the attention products.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers

from ...errors import CompressError
from ...evaluate.speech import transcribe_features, wer
from ...models.whisper import window_frames, window_samples
from ...stats import inputs_for, latency_side_by_side, traced_linear_macs
from . import whisper_prompt
from .base import Classifier, Task

LATENCY_TOKENS = 16  # decoder tokens in the latency forward and the MACs count (a short transcript)
TRANSCRIBE_CLIPS = 3  # eval clips transcribed per end-to-end timing run (mean per utterance)


def _check_rate(rows: list[dict], rate: int) -> None:
    rates = {r.get("sampling_rate", rate) for r in rows}
    if rates - {rate}:
        raise CompressError("data", f"audio at {sorted(rates)} Hz, the model reads {rate} Hz", "resample the data")


def _attention_macs(model, queries_of) -> int:
    """Scores (q.k) and weighted sums (p.v) of every attention block: 2 x queries x keys x width."""
    from ...models import get_adapter

    adapter, total = get_adapter(model), 0
    for stack, layers in adapter.stacks(model).items():
        for layer in layers:
            for role, site in adapter.attentions(layer).items():
                queries, keys = queries_of(stack, role)
                total += 2 * queries * keys * site.num_heads * site.head_dim
    return total


class AudioClassification(Classifier):
    name, primary = "audio-classification", "accuracy"
    head = transformers.AutoModelForAudioClassification
    eval_batch_size = 32
    window_seconds = 1.0  # Speech-Commands-style clips: every clip padded / cut to one second

    def processor(self, model_path: str):
        return transformers.AutoFeatureExtractor.from_pretrained(model_path)

    def _inputs(self, rows: list[dict]) -> dict:
        fe = self.run.processor
        _check_rate(rows, fe.sampling_rate)
        n = int(self.window_seconds * fe.sampling_rate)
        out = fe(
            [r["audio"][:n] for r in rows],
            sampling_rate=fe.sampling_rate,
            padding="max_length",
            max_length=n,
            truncation=True,
            return_tensors="pt",
        )
        return {k: out[k] for k in fe.model_input_names if k in out}

    def examples(self, rows):
        x = self._inputs(rows)
        return [{k: v[i] for k, v in x.items()} for i in range(len(rows))]

    def batches(self, rows, batch_size, with_labels=False):
        out = []
        for i in range(0, len(rows), batch_size):
            chunk = rows[i : i + batch_size]
            b = self._inputs(chunk)
            if with_labels and chunk and chunk[0].get("label") is not None:
                b["labels"] = torch.tensor(self.labels(chunk))
            out.append(b)
        return out

    def latency_inputs(self, rows, batch_size):
        rows = rows or [{"audio": torch.zeros(1).numpy()}]
        return self._inputs((rows * batch_size)[:batch_size])

    def macs(self, model) -> int:
        """Linear layers as they run on one window (hooks) plus attention over its frames; the convolutional front end
        is counted too (its Conv1d layers)."""
        x = self.latency_inputs([], 1)
        samples = next(iter(x.values())).shape[-1]
        frames = (
            int(model._get_feat_extract_output_lengths(samples))
            if hasattr(model, "_get_feat_extract_output_lengths")
            else samples
        )
        return traced_linear_macs(model, x) + _attention_macs(model, lambda stack, role: (frames, frames))

    def prepare(self, dense, eval_rows, stage):
        self.stage, self.eval_batches = stage, self.batches(eval_rows, self.eval_batch_size, with_labels=True)


class SpeechRecognition(Task):
    name, primary, higher_is_better = "speech-recognition", "wer", False
    predicts = True
    eval_batch_size = 8  # 30-second windows: activations of a batch are large

    @staticmethod
    def _generation_config(model_path: str):
        try:
            return transformers.GenerationConfig.from_pretrained(model_path)
        except OSError:  # none saved: transformers derives one from config.json, without language tokens
            return transformers.GenerationConfig()

    @classmethod
    def check(cls, recipe):
        from ... import assets

        for name in dict.fromkeys(m for m in (recipe.model, recipe.teacher) if m):
            try:
                gen = transformers.GenerationConfig.from_pretrained(assets.resolve_model(name))
            except OSError:  # none saved, or not reachable: loading the model says which
                continue
            whisper_prompt.resolve(gen, recipe.data.language, recipe.data.speech_task)

    def processor(self, model_path: str):
        proc = transformers.AutoProcessor.from_pretrained(model_path)
        if not hasattr(proc, "feature_extractor") or not hasattr(proc, "tokenizer"):
            raise CompressError(
                "model", f"{model_path} has no speech processor (feature extractor + tokenizer)", "use a Whisper model"
            )
        gen = self._generation_config(model_path)
        prompt = whisper_prompt.resolve(gen, self.data.language, self.data.speech_task)
        whisper_prompt.apply(prompt, proc.tokenizer, gen)  # labels and decoding read the prompt from here
        return proc

    @property
    def prompt(self) -> whisper_prompt.WhisperPrompt:
        """The decoder prompt, as the processor's tokenizer holds it."""
        return whisper_prompt.of(self.run.model, self.run.processor)

    # -- data side ---------------------------------------------------------------------------------------------
    def _features(self, rows: list[dict]) -> torch.Tensor:
        """(N, mel bins, frames): every clip padded / cut to the model's window."""
        fe = self.run.processor.feature_extractor
        _check_rate(rows, fe.sampling_rate)
        audio = [r["audio"] for r in rows]
        return fe(audio, sampling_rate=fe.sampling_rate, return_tensors="pt").input_features

    def _label_ids(self, text: str) -> list[int]:
        """Tokenizer ids (prefix tokens, text, end of text) minus the decoder start token, which the model prepends
        itself when it shifts labels right; at most `data.max_length` tokens."""
        ids = self.run.processor.tokenizer(text).input_ids
        if ids and ids[0] == self.run.model.config.decoder_start_token_id:
            ids = ids[1:]
        return ids[: self.data.max_length]

    def examples(self, rows):
        """{"input_features", "labels"} per clip: labels are the row's transcript (ground truth)."""
        feats = self._features(rows)
        return [{"input_features": f, "labels": torch.tensor(self._label_ids(r["text"]))} for f, r in zip(feats, rows)]

    def distill_examples(self, rows, teacher, stage, run_dir):
        """The reference transcripts as labels, or with `pseudo_labels` the teacher's greedy transcripts (cached in
        `run_dir`), without the clips whose teacher transcript is further than `max_label_wer` from the reference."""
        if not stage.pseudo_labels:
            return self.examples(rows)
        from ...distill.pseudo import pseudo_labels

        feats, refs = self._features(rows), [r["text"] for r in rows]
        labels = pseudo_labels(teacher, self.run.processor.tokenizer, feats, refs, run_dir, self.data.max_length)
        keep = [i for i, p in enumerate(labels) if stage.max_label_wer is None or p["wer"] <= stage.max_label_wer]
        self.distill_info = {
            "pseudo_labels": len(labels),
            "kept": len(keep),
            "teacher_wer_on_train": wer(refs, [p["text"] for p in labels]),
        }
        if not keep:
            raise CompressError(
                "max_label_wer",
                f"the teacher's transcripts of all {len(rows)} clips have a WER above {stage.max_label_wer}",
                "raise max_label_wer, or check that the data's transcripts match its audio",
            )
        ids = [labels[i]["ids"][: self.data.max_length] for i in keep]
        return [{"input_features": feats[i], "labels": torch.tensor(y)} for i, y in zip(keep, ids)]

    def batches(self, rows, batch_size, with_labels=False):
        """Features with labels always: the decoder's inputs come from them (calibration runs the decoder too)."""
        from ...distill.data import collate

        batch_size = min(batch_size, self.eval_batch_size)
        return [collate(self.examples(rows[i : i + batch_size])) for i in range(0, len(rows), batch_size)]

    def latency_inputs(self, rows, batch_size):
        rows = rows or [{"audio": torch.zeros(16_000).numpy()}]
        start = self.run.model.config.decoder_start_token_id
        return {
            "input_features": self._features((rows * batch_size)[:batch_size]),
            "decoder_input_ids": torch.full((batch_size, LATENCY_TOKENS), start, dtype=torch.long),
        }

    def macs(self, model) -> int:
        x = self.latency_inputs([], 1)
        frames = (window_frames(model) or x["input_features"].shape[-1]) // 2  # the second convolution has stride 2

        def sizes(stack, role):  # (queries, keys)
            if stack == "encoder":
                return frames, frames
            return LATENCY_TOKENS, LATENCY_TOKENS if role == "self_attn" else frames

        return traced_linear_macs(model, x) + _attention_macs(model, sizes)

    # -- quality ---------------------------------------------------------------------------------------------------
    def prepare(self, dense, eval_rows, stage):
        self.stage = stage
        self.references = [r["text"] for r in eval_rows]
        self.features = self._features(eval_rows)
        self.audio = [r["audio"] for r in eval_rows[:TRANSCRIBE_CLIPS]]

    def quality(self, model, dense=False):
        hyps = transcribe_features(model, self.run.processor, self.features, self.eval_batch_size, self.data.max_length)
        self.last_predictions = (hyps, self.references)
        return {"wer": wer(self.references, hyps, self.prompt.text_language), "generation": hyps[0] if hyps else ""}

    @torch.inference_mode()
    def generation_latency(self, models, repeats):
        """Exactly `max_new_tokens` greedy tokens (end of text suppressed) for one eval clip, batch 1."""
        model = next(iter(models.values()))
        n = min(self.stage.max_new_tokens, model.config.max_target_positions - 4)
        feats = self.features[:1]

        def generate(m):
            prompt = whisper_prompt.generate_kwargs(m, self.run.processor)
            x = inputs_for(m, {"input_features": feats})
            m.generate(**x, max_new_tokens=n, min_new_tokens=n, do_sample=False, **prompt)

        seconds = latency_side_by_side(models, call=generate, repeats=max(3, repeats // 2), warmup=1)
        return {name: s / n for name, s in seconds.items()}

    @torch.inference_mode()
    def transcription_latency(self, models, repeats):
        """End to end, batch 1: raw audio -> log-mel -> encoder -> greedy tokens -> text, per utterance."""
        proc = self.run.processor
        fe = proc.feature_extractor
        n = min(self.data.max_length, next(iter(models.values())).config.max_target_positions - 4)

        def transcribe(m):
            samples = window_samples(m, fe)  # a window-cut model's own window
            for audio in self.audio:
                feats = fe([audio], sampling_rate=fe.sampling_rate, max_length=samples, return_tensors="pt")
                feats = feats.input_features
                prompt = whisper_prompt.generate_kwargs(m, proc)
                ids = m.generate(**inputs_for(m, {"input_features": feats}), max_new_tokens=n, **prompt)
                proc.tokenizer.batch_decode(ids, skip_special_tokens=True)

        seconds = latency_side_by_side(models, call=transcribe, repeats=max(3, repeats // 2), warmup=1)
        return {name: s / len(self.audio) for name, s in seconds.items()}

    # -- the finished model ----------------------------------------------------------------------------------------
    def finish(self, folder: Path) -> list[str]:
        """Multilingual models: the recipe's language and task become the generation config's defaults, so a plain
        `model.generate(input_features=...)` decodes as the recipe evaluated it."""
        p = self.prompt
        if p.language is not None:
            gen = transformers.GenerationConfig.from_pretrained(folder)
            gen.language, gen.task = p.language, p.task
            gen.save_pretrained(folder)
        lines = [
            "## Decoding",
            "",
            f"Transcripts (evaluation) and decoder labels (calibration, distillation) use {p.describe()}.",
        ]
        if p.language is not None:
            lines += [
                f"Set as the defaults in `generation_config.json` and the tokenizer; explicitly: `model.generate("
                f'input_features, language="{p.language}", task="{p.task}")`.'
            ]
        basic = "a basic normaliser (lower case, punctuation and symbols stripped)"
        norm = "Whisper's English text normaliser" if p.text_language == "en" else basic
        return lines + [f"WER after {norm} on both sides."]
