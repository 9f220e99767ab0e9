"""Text tasks: classification (accuracy, macro F1) and sentence embeddings (cosine to the dense model, probe
accuracy); `_Text` turns rows into token batches for every text task (causal LMs too)."""

from __future__ import annotations

import torch
import transformers

from ...data import text_batches
from ...evaluate import tasks as metrics
from ...evaluate.embeddings import cosine_fidelity, embed
from .base import Task


class _Text(Task):
    def processor(self, model_path: str):
        tok = transformers.AutoTokenizer.from_pretrained(model_path)
        if tok.pad_token is None:  # causal LMs often ship without one; padding is masked out everywhere
            tok.pad_token = tok.eos_token
        return tok

    def examples(self, rows):
        return [r["text"] for r in rows]

    def batches(self, rows, batch_size, with_labels=False):
        out = text_batches(self.run.processor, [r["text"] for r in rows], batch_size, self.data.max_length)
        if with_labels and rows and rows[0].get("label") is not None:
            for i, b in enumerate(out):
                b["labels"] = torch.tensor(self.labels(rows[i * batch_size : (i + 1) * batch_size]))
        return out

    def latency_inputs(self, rows, batch_size):
        texts = [r["text"] for r in rows] or ["x"]
        return dict(
            self.run.processor(
                (texts * batch_size)[:batch_size],
                padding="max_length",
                truncation=True,
                max_length=self.data.max_length,
                return_tensors="pt",
            )
        )


class TextClassification(_Text):
    name, primary = "text-classification", "accuracy"

    def with_head(self, model, model_path, num_labels):
        if type(model).__name__.endswith("SequenceClassification"):
            return model
        return transformers.AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=num_labels)

    def quality(self, model, dense=False):
        return metrics.classification(model, self.eval_batches)


class SentenceEmbedding(_Text):
    name, primary = "sentence-embedding", "cosine_vs_dense"

    def prepare(self, dense, eval_rows, stage):
        self.stage, self.eval_batches = stage, self.batches(eval_rows, self.eval_batch_size)
        self.eval_labels = self.labels(eval_rows) if eval_rows and eval_rows[0].get("label") is not None else None
        self.dense_emb = embed(dense, self.eval_batches)
        self.probe = self._probe(dense) if self.eval_labels is not None else None

    def _probe(self, dense):
        """Logistic regression on the dense model's embeddings of (up to 2,000) training sentences, then fixed."""
        from sklearn.linear_model import LogisticRegression

        from ..data import split

        rows = split(self.run.rows, self.data.train_split, 2000)
        if not rows or rows[0].get("label") is None:
            return None
        x = embed(dense, self.batches(rows, 64)).numpy()
        return LogisticRegression(max_iter=2000).fit(x, self.labels(rows))

    def quality(self, model, dense=False):
        emb = self.dense_emb if dense else embed(model, self.eval_batches)
        out = {"cosine_vs_dense": cosine_fidelity(self.dense_emb, emb)}
        if self.probe is not None:
            out["probe_accuracy"] = float(self.probe.score(emb.numpy(), self.eval_labels))
        return out
