"""The recipe: a YAML file naming a model, its task, data and an ordered list of stages, validated with pydantic.

    name: minilm-embeddings
    model: minilm-l6                 # hub id, local folder or built-in asset
    task: sentence-embedding
    data: {source: rotten-tomatoes}
    stages:
      - prune: {heads: 0.5, mlp: 0.5, criterion: activation}
      - sparsify: {sparsity: 0.5, pattern: unstructured, criterion: sparsegpt}   # optional: weight sparsity
      - distill: {steps: 200, embedding_weight: 1.0, logits_weight: 0.0}
      - quantize: {method: int8-dynamic}
      - export: {format: onnx, int8: true}   # also runs in ONNX Runtime (compress/recipe/export_stage.py)
      - evaluate: {}

Unknown keys are rejected; every error names the file, the field path and what is allowed. Each stage is one class
below; its fields (with their help text) generate `docs/recipe.md`.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from ..assets import DATA
from ..distill.config import DistillConfig
from ..pruning.budget import LAYOUTS
from ..pruning.importance import CRITERIA
from .export_stage import ExportStage
from .guard_spec import GuardSpec
from .sparsify_stage import SparsifyStage

TASKS = (
    "text-classification",
    "sentence-embedding",
    "causal-lm",
    "image-classification",
    "speech-recognition",
    "audio-classification",
)


def _one_of(kind: str, value: str, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {kind} {value!r}; use one of {', '.join(allowed)}")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSpec(Strict):
    source: str = Field(
        description=f"built-in asset ({', '.join(DATA)}), a hub dataset id, or a format for local "
        "`files` (csv, json, parquet, text, imagefolder)"
    )
    subset: str | None = Field(
        None,
        description="hub dataset configuration name (e.g. wikitext-2-raw-v1), or a built-in asset's subset "
        "(espeak-speech: sentences | keywords)",
    )
    files: dict[str, str] | None = Field(None, description="local files per split, e.g. {train: a.csv, test: b.csv}")
    text_column: str = Field("text", description="column holding the input text")
    image_column: str = Field("image", description="column holding the input image (image-classification)")
    label_column: str = Field("label", description="column holding the class label (classification tasks)")
    train_split: str = Field("train", description="split used for calibration, training and distillation")
    eval_split: str = Field(
        "test",
        description="split used by `evaluate` (its primary metric); any split may also be `asset:split` or "
        "`asset/subset:split` of another built-in asset, e.g. pocketsphinx-utterances:test",
    )
    extra_eval_splits: list[str] = Field(
        default_factory=list, description="more splits every model is scored on, reported as `<metric>@<split>`"
    )
    extra_train_splits: list[str] = Field(
        default_factory=list,
        description="more distillation data, added to train_split's rows: `asset:split` or `asset/subset:split` "
        "names, e.g. espeak-speech/sentences:train (synthetic speech as an addition to real speech)",
    )
    calibration_size: int = Field(
        256,
        gt=0,
        description="examples used by data-driven pruning criteria, the refit (`reconstruct`), adaptive widths and "
        "the fidelity guard. The refit wants at least 24 calibration tokens per kept input column of each output "
        "projection and warns below that (the prune summary's `min_tokens_per_column`); benchmarks/repair/ shows "
        "SmolLM2's refit with 32 and with 128 passages",
    )
    train_size: int = Field(0, ge=0, description="examples used for distillation/training (0 = the whole split)")
    eval_size: int = Field(512, gt=0, description="examples evaluated (per split)")
    max_length: int = Field(128, gt=0, description="tokens per text (text tasks)")
    language: str | None = Field(
        None,
        description="speech recognition: language of the audio (Whisper code or name: en, de, english), put in the "
        "decoder prompt of every transcript and label; required for multilingual Whisper, default English for `.en`",
    )
    speech_task: str | None = Field(
        None, description="speech recognition with multilingual Whisper: transcribe (default) or translate to English"
    )

    @field_validator("language")
    @classmethod
    def _language(cls, v):
        from .tasks.whisper_prompt import language_code

        return None if v is None else language_code(v)

    @field_validator("speech_task")
    @classmethod
    def _speech_task(cls, v):
        return None if v is None else _one_of("speech_task", v, ("transcribe", "translate"))


class PruneStage(Strict):
    type: Literal["prune"] = "prune"
    heads: float = Field(0.0, ge=0, lt=1, description="fraction of query heads removed")
    kv_heads: float = Field(0.0, ge=0, lt=1, description="fraction of KV groups removed (grouped-query attention)")
    mlp: float = Field(0.0, ge=0, lt=1, description="fraction of MLP neurons removed")
    layers: float = Field(0, ge=0, description="layers removed per stack: a count (>= 1) or a fraction (< 1)")
    criterion: str = Field("activation", description=f"importance: {', '.join(sorted(CRITERIA))}")
    layout: str = Field(
        "uniform",
        description="uniform (same width per layer), global (ranked across layers) or adaptive (the uniform total "
        "spread by each layer's measured sensitivity on the calibration data)",
    )
    round_to: int = Field(1, ge=1, description="kept widths are multiples of this (64 for quantization kernels)")
    protect: list[int | str] = Field(default_factory=list, description="layers left untouched")
    target_params: int | None = Field(None, gt=0, description="instead of ratios: reach this many parameters")
    compensate: bool = Field(True, description="fold removed units' mean output into the bias (FLAP)")
    reconstruct: bool = Field(
        True,
        description="refit each pruned sublayer's output projection (weights + bias) to the unpruned model's output "
        "on the calibration data (ridge least squares, layer by layer; compress.reconstruct)",
    )
    tune_epochs: int = Field(
        0,
        ge=0,
        description="after the refit, passes over the calibration data per pruned layer of Adam on all the layer's "
        "weights so it reproduces the dense layer's output (block reconstruction; kept only where held-out "
        "calibration tokens improve); 0: the closed-form refit only. Needs reconstruct",
    )
    tune_lr: float = Field(1e-3, gt=0, description="Adam's learning rate for tune_epochs (larger models may need less)")
    audio_window: int | None = Field(
        None,
        gt=0,
        le=30,
        description="Whisper: seconds of audio the encoder reads (default its full 30 s): the encoder's positional "
        "table keeps its first 50 x N rows, its cost falls with N² (attention) and N; clips longer than N s are cut",
    )
    guard: GuardSpec = Field(default_factory=GuardSpec, description="fidelity guard (see `guard` below)")

    @field_validator("criterion")
    @classmethod
    def _criterion(cls, v):
        return _one_of("criterion", v, sorted(CRITERIA))

    @field_validator("layout")
    @classmethod
    def _layout(cls, v):
        return _one_of("layout", v, LAYOUTS)

    @model_validator(mode="after")
    def _tune_needs_refit(self):
        if self.tune_epochs and not self.reconstruct:
            raise ValueError("tune_epochs tunes layers after the refit; set reconstruct: true or tune_epochs: 0")
        return self


def _distill_fields() -> dict[str, Any]:
    hints = typing.get_type_hints(DistillConfig)
    out = {}
    for f in dataclasses.fields(DistillConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out[f.name] = (hints[f.name], Field(default, description=f.metadata.get("help", "")))
    return out


# DistillStage fields the loop never sees
_STAGE_ONLY = (
    "type", "teacher", "chat_samples", "chat_max_new_tokens", "pseudo_labels", "max_label_wer", "select_split"
)  # fmt: skip


class _DistillBase(Strict):
    @model_validator(mode="after")
    def _check(self):
        DistillConfig(**self.config_kwargs())  # the dataclass's own rules (CompressError is a ValueError)
        if getattr(self, "max_label_wer", None) is not None and not getattr(self, "pseudo_labels", False):
            raise ValueError("max_label_wer filters pseudo-labels; set pseudo_labels: true or remove it")
        return self

    def config_kwargs(self) -> dict:
        return {k: v for k, v in self.model_dump().items() if k not in _STAGE_ONLY}


DistillStage = create_model(
    "DistillStage",
    __base__=_DistillBase,
    type=(Literal["distill"], "distill"),
    teacher=(str | None, Field(None, description="teacher for this stage (default: the recipe's teacher)")),
    chat_samples=(
        int,
        Field(
            0,
            ge=0,
            description="causal LMs: add this many chat conversations (prompts made from training passages, "
            "answered greedily by the teacher: sequence-level KD)",
        ),
    ),
    chat_max_new_tokens=(int, Field(64, gt=0, description="length of the teacher's answers in `chat_samples`")),
    select_split=(
        str,
        Field(
            "validation",
            description="with `eval_every`: the data split whose held-out distillation loss picks the kept weights "
            "(up to `data.eval_size` examples; keep it apart from `eval_split` so the reported score is unbiased)",
        ),
    ),
    pseudo_labels=(
        bool,
        Field(
            False,
            description="speech recognition: train on the teacher's greedy transcripts instead of the reference "
            "transcripts (Distil-Whisper); computed once, cached in the stage's run folder under a key of the "
            "teacher and the data",
        ),
    ),
    max_label_wer=(
        float | None,
        Field(
            None,
            ge=0,
            description="with pseudo_labels: drop clips whose teacher transcript has a word error rate above this "
            "against the reference (e.g. 0.1); None keeps every clip",
        ),
    ),
    **_distill_fields(),
)
DistillStage.__doc__ = "Knowledge distillation from the teacher into the current model (see DistillConfig)."


class QuantizeStage(Strict):
    type: Literal["quantize"] = "quantize"
    method: str = Field(description="quantization method (`compress quantize --help` lists them)")
    options: dict[str, Any] = Field(default_factory=dict, description="method options")
    guard: GuardSpec = Field(
        default_factory=GuardSpec, description="fidelity guard, with fallback to safer settings (see `guard` below)"
    )

    @model_validator(mode="after")
    def _check(self):
        from ..quantize import make_config

        make_config(self.method, **self.options)  # unknown method/option, or a backend unusable here
        return self


class EvaluateStage(Strict):
    type: Literal["evaluate"] = "evaluate"
    latency_batch_sizes: list[int] = Field([1, 32], description="batch sizes for latency (batch 1) and throughput")
    repeats: int = Field(7, ge=3, description="timed runs per model (median), dense baseline interleaved")
    settle: int = Field(
        1, ge=0, description="untimed forwards of a model before each timed one (warm caches, as in a serving loop)"
    )
    peak_memory: bool = Field(
        True, description="measure each model's peak memory in a fresh process (loads it once more)"
    )
    generation_prompt: str | None = Field(None, description="causal LMs: a prompt whose greedy answer is reported")
    chat_prompts: list[str] = Field(
        default_factory=list,
        description="causal LMs: chat prompts answered greedily by every model, shown side by side in the report "
        "with their agreement with the dense model's answers; the first also times generation",
    )
    chat_expect: list[str] = Field(
        default_factory=list,
        description="causal LMs: for each chat prompt, a word its answer must contain (case-insensitive); the share "
        "of answers that do is reported as `answers_correct`",
    )
    max_new_tokens: int = Field(
        48,
        gt=0,
        description="causal LMs: tokens generated per answer and per timing run; speech recognition: "
        "tokens generated per timing run",
    )

    metrics: list[str] = Field(
        default_factory=list,
        description="more metrics through the `evaluate` package, next to the built-in ones: `evaluate:NAME` (from "
        "the Hub, needs a network) or a local metric folder (`./my_metric` holding my_metric.py, works offline); "
        "scored on class ids (classification) or transcripts (speech recognition), reported as `<metric>.<key>`",
    )

    @field_validator("metrics")
    @classmethod
    def _metric_specs(cls, v):
        from ..evaluate.extra import check_spec

        return [check_spec(s) for s in v]

    @model_validator(mode="after")
    def _expect_matches_prompts(self):
        if self.chat_expect and len(self.chat_expect) != len(self.chat_prompts):
            raise ValueError(
                f"chat_expect has {len(self.chat_expect)} items for {len(self.chat_prompts)} chat_prompts; one each"
            )
        return self


class TrainStage(Strict):
    type: Literal["train"] = "train"
    steps: int = Field(200, gt=0, description="optimizer steps on the task loss (trains the teacher; must be first)")
    batch_size: int = Field(32, gt=0, description="examples per step")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (warm-up then linear decay)")
    warmup_steps: int = Field(10, ge=1, description="steps of linear warm-up (longer helps training from scratch)")
    head_only: bool = Field(True, description="train only layers outside the transformer blocks (pooler, classifier)")
    last_layers: int = Field(0, ge=0, description="with head_only: also train the last N transformer blocks")
    num_labels: int | None = Field(None, gt=1, description="classes of a new classification head (default: from data)")


class PushStage(Strict):
    type: Literal["push"] = "push"
    repo: str = Field(description="Hub repository, e.g. user/minilm-pruned")
    private: bool = Field(True, description="create the repository as private")


Stage = Annotated[
    TrainStage | PruneStage | SparsifyStage | DistillStage | QuantizeStage | ExportStage | EvaluateStage | PushStage,
    Field(discriminator="type"),
]
STAGE_TYPES = ("train", "prune", "sparsify", "distill", "quantize", "export", "evaluate", "push")


class Recipe(Strict):
    name: str = Field(description="short name, used in reports and model cards")
    model: str = Field(
        description="hub id, local folder, or built-in asset (minilm-l6; vit-fashion-mnist-scratch, an untrained "
        "ViT that a first `train` stage with head_only: false trains from scratch)"
    )
    task: str = Field(description=f"one of {', '.join(TASKS)}")
    teacher: str | None = Field(None, description="distillation teacher (default: the model before the first stage)")
    data: DataSpec
    stages: list[Stage] = Field(min_length=1, description="ordered stages; each item is `- <type>: {fields}`")
    license: str | None = Field(None, description="licence of the base model, copied into the model card")
    threads: int | None = Field(
        None,
        gt=0,
        description="torch CPU threads for the whole run (default: torch's choice); on a shared machine 1 keeps "
        "token-by-token generation from stalling on thread synchronisation",
    )

    @model_validator(mode="before")
    @classmethod
    def _stage_items(cls, values):
        """`- prune: {...}` (YAML) becomes {"type": "prune", ...}."""
        if isinstance(values, dict) and isinstance(values.get("stages"), list):
            stages = []
            for item in values["stages"]:
                if isinstance(item, dict) and len(item) == 1 and next(iter(item)) in STAGE_TYPES:
                    ((kind, body),) = item.items()
                    item = {"type": kind, **(body or {})} if isinstance(body, dict) else {"type": kind, "_": body}
                stages.append(item)
            values = {**values, "stages": stages}
        return values

    @field_validator("task")
    @classmethod
    def _task(cls, v):
        return _one_of("task", v, TASKS)

    @model_validator(mode="after")
    def _speech_fields(self):
        given = [f for f in ("language", "speech_task") if getattr(self.data, f) is not None]
        if given and self.task != "speech-recognition":
            raise ValueError(f"data.{given[0]} is for speech-recognition recipes only; remove it")
        return self

    @model_validator(mode="after")
    def _pseudo_labels_need_transcripts(self):
        if self.task != "speech-recognition" and any(getattr(s, "pseudo_labels", False) for s in self.stages):
            raise ValueError(f"pseudo_labels needs transcripts: task speech-recognition, not {self.task}")
        return self

    @field_validator("stages")
    @classmethod
    def _cross_stage_rules(cls, stages):
        kinds = [s.type for s in stages]
        if "quantize" in kinds:
            after = [k for k in kinds[kinds.index("quantize") + 1 :] if k not in ("export", "evaluate", "push")]
            if after:
                raise ValueError(
                    f"stage {after[0]!r} comes after quantize; only export, evaluate and push may follow it"
                )
        if "train" in kinds and kinds.index("train") != 0:
            raise ValueError("a train stage must come first: it trains the teacher that later stages compress")
        if kinds.count("push") > 1 or ("push" in kinds and kinds[-1] != "push"):
            raise ValueError("push must be the last stage, once")
        return stages
