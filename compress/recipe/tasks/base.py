"""What a recipe needs to know about its task: how data rows become model inputs, which head the model gets, and
how quality is measured. One subclass per task; the runner and the evaluate stage only talk to this interface."""

from __future__ import annotations

from pathlib import Path

import torch

from ...evaluate import tasks as metrics


class Task:
    name: str = ""
    head = None  # classification tasks: the transformers Auto class of their head
    predicts = False  # quality() leaves (predictions, references) in `last_predictions` for `evaluate` metrics
    primary: str = ""  # the metric plotted against latency
    higher_is_better: bool = True
    eval_batch_size: int = 64
    input_key: str = "text"  # the row field holding the model input; the recipe's `data.<input_key>_column` names it

    def __init__(self, run):
        self.run, self.data = run, run.recipe.data

    # -- model side --------------------------------------------------------------------------------------------
    @classmethod
    def check(cls, recipe) -> None:
        """Checks of the recipe against its model, run before anything is written (e.g. a multilingual Whisper
        needs `data.language`). Default: none."""

    def processor(self, model_path: str):
        """Tokenizer / image processor / feature extractor; saved next to every model a stage writes."""
        raise NotImplementedError

    def load_model(self, model_path: str, say=None):
        """The recipe's model as this task uses it. Default: the checkpoint as it is, loaded exactly. Classification
        tasks give it their head (`heads.load_with_head`); `say` gets the line naming a newly initialised head."""
        from ... import io

        return io.load(model_path)

    def with_head(self, model, model_path: str, num_labels: int | None):
        """The model a `train` stage trains (e.g. a new classification head on an encoder). Default: unchanged."""
        return model

    # -- data side ---------------------------------------------------------------------------------------------
    def examples(self, rows: list[dict]) -> list:
        """Per-example inputs for training and distillation: texts, or dicts of tensors."""
        raise NotImplementedError

    def distill_examples(self, rows: list[dict], teacher, stage, run_dir) -> list:
        """Distillation inputs; a task may add teacher-made examples (cached under `run_dir`)."""
        return self.examples(rows)

    def labels(self, rows: list[dict]) -> list[int]:
        """Label ids of the rows: names (`spam`) through the run's class names, ids as they are."""
        from ..labels import to_ids

        return to_ids([r["label"] for r in rows], self.classes.names if self.classes else None)

    @property
    def classes(self):
        """The run's `labels.Classes` (None outside a recipe run)."""
        return getattr(self.run, "classes", None)

    def batches(self, rows: list[dict], batch_size: int, with_labels: bool = False) -> list[dict]:
        raise NotImplementedError

    def latency_inputs(self, rows: list[dict], batch_size: int) -> dict:
        """One fixed-shape batch (padded to the full length) for side-by-side latency."""
        raise NotImplementedError

    def macs_length(self) -> int:
        """Sequence length the MACs estimate is taken at."""
        return self.data.max_length

    def macs(self, model) -> int:
        """Multiply-accumulates of one inference (see `stats.estimate_macs`), at `macs_length` tokens."""
        from ...stats import estimate_macs

        return estimate_macs(model, self.macs_length())

    # -- quality ---------------------------------------------------------------------------------------------------
    def prepare(self, dense, eval_rows: list[dict], stage) -> None:
        """Compute once what every model is compared with (e.g. the dense model's embeddings); `stage` is the
        evaluate stage (its options)."""
        self.stage = stage
        self.eval_batches = self.batches(eval_rows, self.eval_batch_size, with_labels=True)

    @torch.inference_mode()
    def quality(self, model, dense: bool = False) -> dict:
        raise NotImplementedError

    @torch.inference_mode()
    def generation_latency(self, models: dict, repeats: int) -> dict[str, float] | None:
        """Generative tasks: seconds per generated token of each model, measured side by side. None otherwise."""
        return None

    @torch.inference_mode()
    def transcription_latency(self, models: dict, repeats: int) -> dict[str, float] | None:
        """Speech recognition: end-to-end seconds per utterance of each model, measured side by side. None
        otherwise."""
        return None

    # -- the finished model ----------------------------------------------------------------------------------------
    def finish(self, folder: Path) -> list[str]:
        """Last touches to the finished model's folder (DIR/final) before its model card is written; returns
        markdown lines for the card. Default: none."""
        return []


class Classifier(Task):
    """A task whose model ends in a classification head (`head`), whose classes the data may name; quality is
    accuracy and macro F1 (and top-5 accuracy beyond 5 classes)."""

    predicts = True

    @torch.inference_mode()
    def quality(self, model, dense=False):
        preds, labels, top5 = metrics.classify(model, self.eval_batches)
        self.last_predictions = (preds, labels)
        return metrics.classification_scores(preds, labels, top5, model.config.num_labels)

    def load_model(self, model_path: str, say=None):
        from ..heads import load_with_head

        c = self.classes
        model, line = load_with_head(model_path, self.head, c and c.num_labels, c and c.names, c and c.new_head_labels)
        if line and say:
            say(line)
        return model

    def with_head(self, model, model_path, num_labels):
        has_head = isinstance(model, self.head._model_mapping.get(type(model.config), ()))
        if has_head and num_labels in (None, model.config.num_labels):
            return model
        from ..heads import load_with_head

        model, line = load_with_head(model_path, self.head, num_labels, self.classes and self.classes.names)
        if line:
            self.run.console.print(line)
        return model
