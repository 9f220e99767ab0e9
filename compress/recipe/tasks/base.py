"""What a recipe needs to know about its task: how data rows become model inputs, which head the model gets, and
how quality is measured. One subclass per task; the runner and the evaluate stage only talk to this interface."""

from __future__ import annotations

import torch


class Task:
    name: str = ""
    primary: str = ""  # the metric plotted against latency
    higher_is_better: bool = True
    eval_batch_size: int = 64
    input_key: str = "text"  # the row field holding the model input; the recipe's `data.<input_key>_column` names it

    def __init__(self, run):
        self.run, self.data = run, run.recipe.data

    # -- model side --------------------------------------------------------------------------------------------
    def processor(self, model_path: str):
        """Tokenizer / image processor / feature extractor; saved next to every model a stage writes."""
        raise NotImplementedError

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
        return [int(r["label"]) for r in rows]

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
