"""Sequence-level distillation data for chat models (Kim & Rush 2016): prompts wrapped in the model's chat template,
answered by the teacher itself (greedy); the student then learns from the teacher's logits on those conversations.

There is no chat data set offline, so prompts are made from plain passages with a few instruction templates.
Base (pretrained, not instruction-tuned) models have no chat template: `prompt_ids` then encodes the prompt as plain
text (a continuation), and the chat-only features check `require_chat_template` first."""

from __future__ import annotations

import random
import re

import torch

from ..errors import CompressError
from ..progress import track

TEMPLATES = (
    "Continue this text:\n\n{passage}",
    "Summarize this passage in one sentence:\n\n{passage}",
    "What is this passage about?\n\n{passage}",
    "Explain this sentence in simple words: {sentence}",
    "Rewrite this sentence in modern English: {sentence}",
)


def prompts_from_passages(passages: list[str], n: int, seed: int = 0, max_words: int = 80) -> list[str]:
    """`n` instruction prompts, each a template filled with (the start of) a passage or one of its sentences."""
    rng = random.Random(seed)
    pool = [p for p in passages if len(p.split()) >= 8]
    if not pool:
        return []
    out = []
    for _ in range(n):
        text = " ".join(rng.choice(pool).split()[:max_words])
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 5] or [text]
        out.append(rng.choice(TEMPLATES).format(passage=text, sentence=rng.choice(sentences)))
    return out


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def require_chat_template(tokenizer, field: str) -> None:
    """A one-line error naming `field` when the tokenizer has no chat template (a base model)."""
    if not has_chat_template(tokenizer):
        raise CompressError(
            field,
            "needs a chat template, and this model's tokenizer has none (a base model)",
            "remove it (generation and its timing use plain-text prompts) or use an instruction-tuned model",
        )


def chat_ids(tokenizer, prompt: str) -> list[int]:
    """Token ids of one user turn in the chat template, ready for the assistant's answer."""
    require_chat_template(tokenizer, "chat template")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=False
    )


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The prompt as a user turn in the chat template when the tokenizer has one, else as plain text (base models
    continue it)."""
    if has_chat_template(tokenizer):
        return chat_ids(tokenizer, prompt)
    return tokenizer(prompt)["input_ids"]


@torch.inference_mode()
def greedy_answers(model, tokenizer, prompts: list[str], max_new_tokens: int = 48, batch_size: int = 8) -> list[str]:
    """Greedy answers (chat template if the tokenizer has one, else plain-text continuations), batched with left
    padding (the answer is everything after the prompt)."""
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers = []
    for i in track(range(0, len(prompts), batch_size), description="answering", total=-(-len(prompts) // batch_size)):
        ids = [prompt_ids(tokenizer, p) for p in prompts[i : i + batch_size]]
        width = max(map(len, ids))
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        out = model.generate(
            input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad
        )
        answers += tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    return [a.strip() for a in answers]


def conversations(tokenizer, prompts: list[str], answers: list[str]) -> list[str]:
    """Whole conversations (user prompt + assistant answer) as chat-template text."""
    require_chat_template(tokenizer, "chat_samples")
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}, {"role": "assistant", "content": a}], tokenize=False
        )
        for p, a in zip(prompts, answers)
    ]
