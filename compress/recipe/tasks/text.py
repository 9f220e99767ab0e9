"""Text tasks: classification (accuracy, macro F1) and sentence embeddings (cosine to the dense model, probe
accuracy); `_Text` turns rows into token batches for every text task (causal LMs too)."""

from __future__ import annotations

import torch
import transformers

from ...data import text_batches
from ...evaluate.embeddings import cosine_fidelity, embed
from .base import Classifier, Task


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


class TextClassification(Classifier, _Text):
    name, primary = "text-classification", "accuracy"
    head = transformers.AutoModelForSequenceClassification


class SentenceEmbedding(_Text):
    name, primary = "sentence-embedding", "cosine_vs_dense"

    def load_model(self, model_path, say=None):
        """The checkpoint as it is; if it does not load exactly into the class its config names (sentence-transformers
        exports name *ForMaskedLM over bare encoder weights), its encoder, loaded strictly."""
        from ... import io
        from ...errors import CompressError
        from ..heads import load_with_head

        try:
            return io.load(model_path)
        except CompressError as e:
            if e.field != "model":
                raise
        model, line = load_with_head(model_path, transformers.AutoModel)
        if line and say:
            say(line)
        return model

    def prepare(self, dense, eval_rows, stage):
        self.stage, self.eval_batches = stage, self.batches(eval_rows, self.eval_batch_size)
        self.eval_labels = self.labels(eval_rows) if eval_rows and eval_rows[0].get("label") is not None else None
        self.dense_emb = embed(dense, self.eval_batches)
        self.probe = self._probe(dense) if self.eval_labels is not None else None

    def _probe(self, dense):
        """Logistic regression on the dense model's embeddings of (up to 2,000) training sentences, then fixed."""
        from sklearn.linear_model import LogisticRegression

        from ..data import split

        if self.data.train_split not in self.run.rows:  # e.g. `compress eval` on one file
            return None
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
