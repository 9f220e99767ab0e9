"""Causal language models (chatbots included): perplexity on held-out text, greedy chat answers next to the dense
model's with their token agreement, and generation speed (new tokens per second) measured side by side.

Distillation reads each training text to its end in `max_length`-token windows. Its data can be extended with
sequence-level KD: prompts made from training passages, wrapped in the chat template and answered by the teacher
(`distill: {chat_samples: N}`); answers are cached in the stage's run folder.

Base models (no chat template in the tokenizer) work everywhere with plain-text prompts: generation timing and the
`generation_prompt` sample continue the text; `chat_samples` / `chat_prompts` need a template and are refused with a
one-line error naming the field when the run starts, before any stage."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ...data import token_windows
from ...distill import sequence
from ...distill.data import to_examples
from ...evaluate import tasks as metrics
from ...stats import latency_side_by_side
from .text import _Text


class CausalLM(_Text):
    name, primary, higher_is_better = "causal-lm", "perplexity", False
    eval_batch_size = 8

    def processor(self, model_path: str):
        tok = super().processor(model_path)
        if not sequence.has_chat_template(tok):
            for i, stage in enumerate(self.run.recipe.stages):
                for field in ("chat_samples", "chat_prompts"):
                    if getattr(stage, field, None):
                        sequence.require_chat_template(tok, f"stages.{i}.{stage.type}.{field}")
        return tok

    def distill_examples(self, rows, teacher, stage, run_dir: Path) -> list:
        """Training passages cut into `max_length`-token windows (read to the end, not truncated), then the chat
        conversations (each truncated to `max_length`)."""
        texts = self.examples(rows)
        windows = token_windows(self.run.processor, texts, self.data.max_length)
        if not stage.chat_samples:
            return windows
        cache = run_dir / "chat_samples.json"
        if cache.exists():
            chats = json.loads(cache.read_text())
        else:
            prompts = sequence.prompts_from_passages(texts, stage.chat_samples, seed=stage.seed)
            answers = sequence.greedy_answers(teacher, self.run.processor, prompts, stage.chat_max_new_tokens)
            chats = sequence.conversations(self.run.processor, prompts, answers)
            run_dir.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(chats, indent=1))
        return windows + to_examples(chats, self.run.processor, self.data.max_length)

    def prepare(self, dense, eval_rows, stage):
        self.stage, self.eval_batches = stage, self.batches(eval_rows, self.eval_batch_size)
        self.dense_answers = self._answers(dense)

    def _answers(self, model) -> tuple[list[str], list[list[int]]]:
        """Greedy answers to the chat prompts, as text and as token ids (for the agreement)."""
        tok = self.run.processor
        answers = sequence.greedy_answers(model, tok, self.stage.chat_prompts, self.stage.max_new_tokens)
        return answers, [tok(a, add_special_tokens=False)["input_ids"] for a in answers]

    def quality(self, model, dense=False):
        out = metrics.perplexity(model, self.eval_batches)
        tok = self.run.processor
        if self.stage.generation_prompt:
            out["generation"] = metrics.generate_sample(model, tok, self.stage.generation_prompt)
        if self.stage.chat_prompts:
            out["answers"], ids = self.dense_answers if dense else self._answers(model)
            out["answer_agreement"] = _agreement(self.dense_answers[1], ids)
            if self.stage.chat_expect:
                hits = [e.lower() in a.lower() for e, a in zip(self.stage.chat_expect, out["answers"])]
                out["answers_correct"] = sum(hits) / len(hits)
        return out

    @torch.inference_mode()
    def generation_latency(self, models, repeats):
        """`max_new_tokens` new tokens (forced) for one prompt (in the chat template if the model has one), batch 1,
        greedy."""
        prompt = (self.stage.chat_prompts or [self.stage.generation_prompt or "Hello"])[0]
        ids = torch.tensor([sequence.prompt_ids(self.run.processor, prompt)])
        n = self.stage.max_new_tokens
        pad = self.run.processor.pad_token_id

        def generate(m):
            m.generate(input_ids=ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=pad)

        seconds = latency_side_by_side(models, call=generate, repeats=max(3, repeats // 2), warmup=1)
        return {name: s / n for name, s in seconds.items()}


def _agreement(reference: list[list[int]], answers: list[list[int]]) -> float:
    """Mean fraction of the reference answer's tokens that the answer reproduces at the same position (greedy
    decoding: 1.0 means the same answer)."""
    scores = [
        sum(a == b for a, b in zip(ref, ans)) / max(len(ref), len(ans), 1) for ref, ans in zip(reference, answers)
    ]
    return sum(scores) / max(len(scores), 1)
