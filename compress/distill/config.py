"""`DistillConfig`: every knob of a distillation run, validated when built (one field per line, with its meaning)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import CompressError


def _f(default, help_: str):
    """A field whose help text generates the recipe reference and stays next to the default."""
    return field(default=default, metadata={"help": help_})


CACHE_MODES = ("none", "topk", "embedding")


@dataclass
class DistillConfig:
    steps: int = _f(200, "optimizer steps (each = grad_accum micro-batches per process)")
    batch_size: int = _f(16, "examples per process per micro-batch")
    grad_accum: int = _f(1, "micro-batches accumulated per optimizer step")
    lr: float = _f(5e-5, "peak learning rate (AdamW)")
    weight_decay: float = _f(0.01, "AdamW weight decay (not applied to biases and norms)")
    warmup_steps: int = _f(10, "linear warm-up, then linear decay to 0 at `steps`")
    max_grad_norm: float = _f(1.0, "gradient clipping (0 = off)")
    mixed_precision: str = _f("no", "no | bf16 | fp16 (fp16 needs a GPU)")
    seed: int = _f(0, "data order and initialisation of everything random")
    # loss weights: 0 turns a term off
    logits_weight: float = _f(1.0, "KL(teacher || student) on logits with `temperature` (token-level for LMs)")
    temperature: float = _f(2.0, "softmax temperature of the logits KL (the loss is scaled by T^2)")
    task_weight: float = _f(0.0, "the model's own loss when batches carry labels")
    hidden_weight: float = _f(0.0, "MSE between mapped hidden states")
    hidden_loss: str = _f("mse", "mse | cosine")
    layer_map: dict[int, int] | None = _f(None, "student hidden-state index -> teacher index; None = follow the record")
    embedding_weight: float = _f(0.0, "1 - cos of mean-pooled sentence embeddings (encoders without a head)")
    # teacher caching: compute teacher targets once and reuse them every epoch
    cache_teacher: str = _f("none", "none | topk (top-k logits) | embedding (pooled embeddings)")
    topk: int = _f(64, "logits kept per position with cache_teacher=topk")
    # which weights are kept
    eval_every: int = _f(
        0,
        "score the student on held-out examples every N steps and at the last (their mean distillation loss against "
        "the teacher) and keep the best-scoring weights (0 = keep the last step's)",
    )
    # checkpoints and logs
    save_every: int = _f(0, "save_state every N steps (0 = only at the end)")
    log_every: int = _f(10, "print a loss line every N steps (main process)")
    # gradual pruning while distilling: re-score and slice the student on a cubic schedule
    prune_heads: float = _f(0.0, "gradual pruning: fraction of heads removed by `prune_steps` (0 = off)")
    prune_mlp: float = _f(0.0, "gradual pruning: fraction of MLP neurons removed by `prune_steps`")
    prune_steps: int = _f(0, "steps over which the cubic schedule reaches the pruning target")
    prune_every: int = _f(10, "re-score and slice every N steps inside the pruning phase")
    prune_criterion: str = _f("activation", "importance criterion used at each pruning step")
    prune_layout: str = _f("uniform", "uniform | global | adaptive")
    prune_reconstruct: bool = _f(
        False, "after each gradual pruning step, refit output projections to the student before that step"
    )
    extra: dict = field(default_factory=dict, metadata={"help": "free-form notes kept with the run's config"})

    def __post_init__(self):
        positive = ("steps", "batch_size", "grad_accum", "topk", "log_every", "prune_every")
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise CompressError(name, f"{getattr(self, name)!r} must be a positive integer")
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise CompressError("eval_every", f"{self.eval_every!r} must be an integer >= 0", "use e.g. 50, or 0 (off)")
        for name in ("lr", "temperature"):
            if not getattr(self, name) > 0:
                raise CompressError(name, f"{getattr(self, name)!r} must be > 0")
        weights = ("logits_weight", "task_weight", "hidden_weight", "embedding_weight")
        if any(getattr(self, w) < 0 for w in weights) or not any(getattr(self, w) > 0 for w in weights):
            raise CompressError(
                "logits_weight",
                "loss weights must be >= 0 with at least one > 0",
                "set logits_weight, task_weight, hidden_weight or embedding_weight",
            )
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise CompressError("mixed_precision", f"{self.mixed_precision!r} is not one of no, bf16, fp16")
        if self.hidden_loss not in ("mse", "cosine"):
            raise CompressError("hidden_loss", f"{self.hidden_loss!r} is not one of mse, cosine")
        if self.cache_teacher not in CACHE_MODES:
            raise CompressError("cache_teacher", f"{self.cache_teacher!r} is not one of {', '.join(CACHE_MODES)}")
        if self.cache_teacher == "embedding" and (self.logits_weight or self.hidden_weight):
            raise CompressError(
                "cache_teacher",
                "an embedding cache holds no logits or hidden states",
                "set logits_weight=0 and hidden_weight=0, or cache_teacher=none",
            )
        if self.cache_teacher == "topk" and self.hidden_weight:
            raise CompressError(
                "cache_teacher", "a top-k logits cache holds no hidden states", "use cache_teacher=none"
            )
        for name in ("prune_heads", "prune_mlp"):
            if not 0 <= getattr(self, name) < 1:
                raise CompressError(name, f"{getattr(self, name)!r} is outside [0, 1)")
        if (self.prune_heads or self.prune_mlp) and not 0 < self.prune_steps <= self.steps:
            raise CompressError("prune_steps", f"{self.prune_steps!r} must be in [1, steps] when pruning gradually")
        if self.layer_map is not None:
            self.layer_map = {int(k): int(v) for k, v in self.layer_map.items()}

    def to_dict(self) -> dict:
        return asdict(self)
