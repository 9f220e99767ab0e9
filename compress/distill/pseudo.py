"""Pseudo-labels for sequence-to-sequence distillation, the Distil-Whisper way (Gandhi et al. 2023): the teacher's
greedy transcript of every training clip becomes the student's target (cross-entropy on it, plus token-level KL to the
teacher's distributions along it), and clips where the teacher disagrees with the reference transcript (WER above a
threshold) are dropped, since the teacher's mistakes there would be learnt too.

Labels are computed once and cached as JSON under a key of the teacher (its config and weights) and the data (every
clip's input features and reference) plus the decoding length, so a changed teacher or data set never reuses them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from ..progress import track


def teacher_key(teacher) -> str:
    """The teacher's identity: its config and every weight."""
    h = hashlib.sha256(teacher.config.to_json_string().encode())
    for name, t in sorted(teacher.state_dict().items()):
        if not isinstance(t, torch.Tensor):
            continue
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def data_key(features: torch.Tensor, references: list[str]) -> str:
    h = hashlib.sha256(json.dumps(references).encode())
    h.update(features.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.inference_mode()
def greedy_ids(
    teacher, features: torch.Tensor, max_new_tokens: int, batch_size: int = 8, tokenizer=None
) -> list[list[int]]:
    """The teacher's greedy transcript of each clip as token ids: the text only (Whisper's `generate` may or may not
    return its prompt and end-of-text token; both are stripped), at most `max_new_tokens`. A multilingual teacher
    decodes in the tokenizer's language and task."""
    from ..evaluate.speech import generate_kwargs

    teacher.eval()
    lang = generate_kwargs(teacher, tokenizer) if tokenizer is not None else {}
    gen = teacher.generation_config
    end = gen.eos_token_id[0] if isinstance(gen.eos_token_id, list) else gen.eos_token_id
    prompt = {teacher.config.decoder_start_token_id, getattr(gen, "no_timestamps_token_id", None)}
    prompt |= set(getattr(gen, "lang_to_id", {}).values()) | set(getattr(gen, "task_to_id", {}).values())
    max_new_tokens = min(max_new_tokens, teacher.config.max_target_positions - 4)
    out, n = [], len(features)
    for i in track(range(0, n, batch_size), description="pseudo-labels", total=-(-n // batch_size)):
        seqs = teacher.generate(input_features=features[i : i + batch_size], max_new_tokens=max_new_tokens, **lang)
        for seq in seqs.tolist():
            while seq and seq[0] in prompt:
                seq = seq[1:]
            out.append(seq[: seq.index(end)] if end in seq else seq)
    return out


def as_labels(text_ids: list[int], tokenizer, end: int, max_new_tokens: int) -> list[int]:
    """Decoder labels in the form the reference transcripts get (`tokenizer(text).input_ids` minus the decoder start
    token): the prompt after the start token (language, task, no-timestamps), the text, and the end of text unless
    the transcript was cut at `max_new_tokens`."""
    prefix = list(tokenizer.prefix_tokens)[1:]
    return prefix + text_ids + ([end] if len(text_ids) < max_new_tokens else [])


def pseudo_labels(
    teacher, tokenizer, features: torch.Tensor, references: list[str], cache_dir: Path | None, max_new_tokens: int
) -> list[dict]:
    """[{"ids": decoder labels of the teacher's greedy transcript (`as_labels`), "text": that transcript, "wer": its
    word error rate against the reference}] per clip, cached in `cache_dir/pseudo_labels-<key>.json`."""
    from ..evaluate.speech import wer

    prefix = "_".join(map(str, tokenizer.prefix_tokens))  # the prompt the labels start with (language, task)
    key = f"{teacher_key(teacher)}-{data_key(features, references)}-{max_new_tokens}-{prefix}"
    path = Path(cache_dir) / f"pseudo_labels-{key}.json" if cache_dir is not None else None
    if path is not None and path.exists():
        return json.loads(path.read_text())["labels"]
    text_ids = greedy_ids(teacher, features, max_new_tokens, tokenizer=tokenizer)
    texts = [t.strip() for t in tokenizer.batch_decode(text_ids, skip_special_tokens=True)]
    gen = teacher.generation_config
    end = gen.eos_token_id[0] if isinstance(gen.eos_token_id, list) else gen.eos_token_id
    labels = [
        {"ids": as_labels(i, tokenizer, end, max_new_tokens), "text": t, "wer": wer([r], [t])}
        for i, t, r in zip(text_ids, texts, references)
    ]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "labels": labels}))
        tmp.rename(path)
    return labels
