"""Quality metrics per task, computed offline with the standard definitions (scikit-learn / plain torch):

- text-classification:  accuracy and macro F1 of argmax logits against labels;
- sentence-embedding:   cosine similarity of mean-pooled embeddings to the dense model's (`embeddings.py`);
- causal-lm:            perplexity = exp(mean next-token negative log-likelihood over all evaluated tokens);
- image-classification: top-1 and top-5 accuracy.

Each function takes a model and prepared batches (dicts of tensors, labels under "labels") and returns a flat dict.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _inputs(b: dict) -> dict:
    return {k: v for k, v in b.items() if k != "labels"}


@torch.inference_mode()
def classify(model: nn.Module, batches: list[dict]) -> tuple[list[int], list[int], list[bool]]:
    """(predicted class ids, label ids, whether each label is among the top 5 logits)."""
    model.eval()
    preds, labels, top5 = [], [], []
    for b in batches:
        logits = model(**_inputs(b)).logits.float()
        preds += logits.argmax(-1).tolist()
        labels += b["labels"].tolist()
        k = min(5, logits.shape[-1])
        top5 += (logits.topk(k, -1).indices == b["labels"][:, None]).any(-1).tolist()
    return preds, labels, top5


def classification_scores(preds: list[int], labels: list[int], top5: list[bool], num_labels: int) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    out = {
        "accuracy": float(accuracy_score(labels, preds)),
        "f1_macro": float(f1_score(labels, preds, average="macro")),
    }
    if top5 and num_labels > 5:
        out["top5_accuracy"] = sum(top5) / len(top5)
    return out


def classification(model: nn.Module, batches: list[dict]) -> dict:
    return classification_scores(*classify(model, batches), model.config.num_labels)


@torch.inference_mode()
def perplexity(model: nn.Module, batches: list[dict]) -> dict:
    model.eval()
    nll, tokens = 0.0, 0
    for b in batches:
        logits = model(**_inputs(b)).logits.float()[:, :-1]
        target = b["input_ids"][:, 1:]
        mask = b.get("attention_mask", torch.ones_like(b["input_ids"]))[:, 1:].bool()
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
        nll += float(loss[mask.reshape(-1)].sum())
        tokens += int(mask.sum())
    return {"perplexity": math.exp(nll / max(tokens, 1)), "eval_tokens": tokens}


@torch.inference_mode()
def generate_sample(model: nn.Module, tokenizer, prompt: str, max_new_tokens: int = 32) -> str:
    ids = tokenizer(prompt, return_tensors="pt")
    out = model.generate(
        **ids,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
    )
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
