"""`distill()`: knowledge distillation from a frozen teacher into a (pruned) student, on Accelerate.

Only the student is `prepare`d (DDP/FSDP wrap it); the teacher stays outside, in eval mode without gradients. The data
order is a seeded permutation per epoch shared by all processes: each process takes its slice of every global batch, so
one process with batch 32 and two with batch 16 see the same examples. Checkpoints (`save_state` + a small JSON) let
`resume=True` continue exactly. Optionally the student is pruned gradually while it learns (cubic schedule).

    accelerate launch --multi_gpu --num_processes 2 script_calling_distill.py   # works on CPU too (gloo)
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from torch import nn

from ..errors import CompressError
from ..evaluate.embeddings import mean_pool
from ..progress import track
from ..pruning.api import prune
from ..pruning.plan import apply_plan, plan_to_match
from ..pruning.record import get_record, layer_origins
from ..sparsity.masks import keep_zeros
from ..stats import count_params
from . import losses
from .config import DistillConfig
from .data import TeacherCache, collate, fingerprint, global_batch, to_examples


def _not_tied_copy_notice(record: logging.LogRecord) -> bool:
    """accelerate's `save_state` drops a tied copy (lm_head.weight = the embeddings) and warns at every checkpoint;
    `load_state` ties it back and the resume is exact (tests/test_distill.py), so the notice would only alarm users."""
    return "Removed shared tensor" not in record.getMessage()


logging.getLogger("accelerate.utils.other").addFilter(_not_tied_copy_notice)


@dataclass
class DistillResult:
    student: nn.Module
    curve: list[dict]
    output_dir: Path | None
    held_out: list[dict] = field(default_factory=list)  # {"step", "loss"} per evaluation (eval_every)
    kept_step: int | None = None  # the step whose weights the student has (None: the last)


def _check_pair(student, teacher, cfg: DistillConfig) -> None:
    vs, vt = getattr(student.config, "vocab_size", None), getattr(teacher.config, "vocab_size", None)
    if cfg.logits_weight and vs is not None and vt is not None and vs != vt:
        raise CompressError(
            "teacher",
            f"teacher vocabulary ({vt}) differs from the student's ({vs})",
            "distil from a teacher with the student's tokenizer, or set logits_weight=0",
        )
    if cfg.layer_map:
        n_s = _num_hidden(student) + 1
        n_t = _num_hidden(teacher) + 1
        for s, t in cfg.layer_map.items():
            if not (0 <= s < n_s and 0 <= t < n_t):
                raise CompressError(
                    "layer_map",
                    f"{s} -> {t} is out of range (student has hidden states 0..{n_s - 1}, teacher 0..{n_t - 1})",
                    "index hidden states from 0 = embeddings",
                )


def _num_hidden(model) -> int:
    from ..models import get_adapter

    return sum(len(layers) for layers in get_adapter(model).stacks(model).values())


def default_layer_map(student) -> dict[int, int]:
    """Student hidden state i -> the teacher's hidden state of the same original layer (depth pruning aware)."""
    from ..models import get_adapter

    stacks = get_adapter(student).stacks(student)
    if len(stacks) != 1:
        raise CompressError(
            "layer_map",
            "hidden-state distillation of encoder-decoder models needs an explicit map",
            "set layer_map, or hidden_weight=0",
        )
    ((stack, layers),) = stacks.items()
    origins = layer_origins(get_record(student.config), stack, len(layers))
    return {0: 0, **{i + 1: o + 1 for i, o in enumerate(origins)}}


def _lr(step: int, cfg: DistillConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return cfg.lr * max(0.0, (cfg.steps - step) / max(1, cfg.steps - cfg.warmup_steps))


class _Distiller:
    def __init__(self, student, teacher, examples, cfg, tokenizer, output_dir: Path | None, accelerator):
        self.cfg, self.tokenizer, self.examples, self.output_dir = cfg, tokenizer, examples, output_dir
        self.acc = accelerator
        self.teacher = teacher.to(self.acc.device).eval()  # always run under no_grad; left outside prepare()
        self.needs_hidden = cfg.hidden_weight > 0
        self.layer_map = (cfg.layer_map or default_layer_map(student)) if self.needs_hidden else {}
        self.seq2seq = getattr(student.config, "is_encoder_decoder", False)
        self.units0 = _units(student)  # heads and neurons before any gradual pruning: the schedule's reference
        self.cache = None
        self._wrap(student)

    # -- model / optimizer (re)building ---------------------------------------------------------------------------
    def _wrap(self, student, old=None):
        if old is not None:  # after slicing, the old DDP wrapper and optimizer must not be saved or stepped again
            self.acc._models = [m for m in self.acc._models if m is not old[0]]
            self.acc._optimizers = [o for o in self.acc._optimizers if o is not old[1]]
        student.train()
        decay = [p for n, p in student.named_parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for n, p in student.named_parameters() if p.requires_grad and p.dim() < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.cfg.lr,
        )
        self.student, self.optimizer = self.acc.prepare(student, opt)
        keep_zeros(student, opt)  # a sparsified student's zeros are re-applied after every optimizer step

    def unwrapped(self) -> nn.Module:
        return self.acc.unwrap_model(self.student)

    # -- data --------------------------------------------------------------------------------------------------------
    def batch(self, micro_step: int, whole: bool = False) -> tuple[dict, list[int]]:
        n_proc, rank = self.acc.num_processes, self.acc.process_index
        idx = global_batch(micro_step, len(self.examples), self.cfg.batch_size * n_proc, self.cfg.seed)
        if not whole:
            idx = idx[rank * self.cfg.batch_size : (rank + 1) * self.cfg.batch_size]
        return self.collated([self.examples[i] for i in idx]), idx

    def collated(self, examples: list[dict]) -> dict:
        """One padded batch of `examples` on the accelerator's device."""
        return {k: v.to(self.acc.device) for k, v in collate(examples, self.tokenizer).items()}

    def build_cache(self):
        mode = self.cfg.cache_teacher
        if mode == "none":
            return
        key = fingerprint(self.teacher, self.examples, mode, self.cfg.topk)

        def compute(indices):
            b = self.collated([self.examples[i] for i in indices])
            with torch.no_grad():
                out = self.teacher(**self._inputs(b))
            if mode == "embedding":
                return {"embedding": self._embedding(out, b).float().cpu()}
            top = out.logits.float().topk(min(self.cfg.topk, out.logits.shape[-1]), dim=-1)  # k >= classes: all
            return {"values": top.values.half().cpu(), "indices": top.indices.int().cpu()}

        # without output_dir the cache lives in memory only (each process computes its own)
        path = self.output_dir / "teacher_cache" / f"{mode}.safetensors" if self.output_dir is not None else None
        with self.acc.main_process_first():  # the main process computes and writes; the others read the file
            self.cache = TeacherCache.build(path, key, compute, len(self.examples), 4 * self.cfg.batch_size)

    # -- losses --------------------------------------------------------------------------------------------------
    def _inputs(self, b: dict) -> dict:
        keep_labels = self.cfg.task_weight > 0 or self.seq2seq
        return {k: v for k, v in b.items() if k != "labels" or keep_labels}

    @staticmethod
    def _embedding(out, b) -> torch.Tensor:
        hidden = out.last_hidden_state if getattr(out, "last_hidden_state", None) is not None else out.hidden_states[-1]
        mask = b.get("attention_mask")
        if mask is None:
            mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
        return mean_pool(hidden, mask)

    def loss(self, b: dict, indices: list[int]) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        need_hidden = self.needs_hidden or (cfg.embedding_weight > 0 and not self._has_last_hidden())
        out_s = self.student(**self._inputs(b), output_hidden_states=need_hidden)
        logits = getattr(out_s, "logits", None)
        length = logits.shape[-2] if logits is not None and logits.dim() == 3 else None  # cache is padded per example
        cached = self.cache.get(indices, length) if self.cache is not None else None
        out_t = None
        if cached is None:
            with torch.no_grad():
                out_t = self.teacher(**self._inputs(b), output_hidden_states=need_hidden)
        mask = self._token_mask(b, out_s)
        terms = {}
        if cfg.logits_weight:
            if cached is not None:
                dev = out_s.logits.device
                terms["logits"] = losses.kl_topk(
                    out_s.logits, cached["values"].to(dev), cached["indices"].to(dev), cfg.temperature, mask
                )
            else:
                if out_s.logits.shape != out_t.logits.shape:
                    raise CompressError(
                        "teacher",
                        f"teacher logits {tuple(out_t.logits.shape)} do not match the "
                        f"student's {tuple(out_s.logits.shape)}",
                        "use a teacher with the student's tokenizer and task head, or logits_weight=0",
                    )
                terms["logits"] = losses.kl_logits(out_s.logits, out_t.logits, cfg.temperature, mask)
        if cfg.task_weight:
            if getattr(out_s, "loss", None) is None:
                raise CompressError(
                    "task_weight",
                    "batches carry no labels, so there is no task loss",
                    "add labels to the data or set task_weight=0",
                )
            terms["task"] = out_s.loss
        if cfg.hidden_weight:
            hm = None if self.seq2seq else b.get("attention_mask")
            terms["hidden"] = sum(
                losses.hidden_loss(out_s.hidden_states[s], out_t.hidden_states[t], cfg.hidden_loss, hm)
                for s, t in self.layer_map.items()
            ) / len(self.layer_map)
        if cfg.embedding_weight:
            target = cached["embedding"].to(self.acc.device) if cached is not None else self._embedding(out_t, b)
            terms["embedding"] = losses.embedding_loss(self._embedding(out_s, b), target)
        weights = {
            "logits": cfg.logits_weight,
            "task": cfg.task_weight,
            "hidden": cfg.hidden_weight,
            "embedding": cfg.embedding_weight,
        }
        total = sum(weights[k] * v for k, v in terms.items())
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def _has_last_hidden(self) -> bool:
        return type(self.unwrapped()).__name__.endswith("Model")

    def _token_mask(self, b: dict, out) -> torch.Tensor | None:
        logits = getattr(out, "logits", None)
        if logits is None or logits.dim() != 3:
            return None
        if self.seq2seq and "labels" in b:
            return b["labels"] != -100
        return b.get("attention_mask")

    @torch.no_grad()
    def held_out_loss(self, examples: list[dict]) -> float:
        """Mean distillation loss on `examples` (weighted by examples per batch), the teacher run on them directly."""
        cache, self.cache = self.cache, None  # the teacher cache holds the training examples only
        self.student.eval()
        total = 0.0
        try:
            for i in range(0, len(examples), self.cfg.batch_size):
                chunk = examples[i : i + self.cfg.batch_size]
                with self.acc.autocast():
                    total += float(self.loss(self.collated(chunk), [])[0]) * len(chunk)
        finally:
            self.cache = cache
            self.student.train()
        return total / len(examples)

    # -- gradual pruning ---------------------------------------------------------------------------------------
    def maybe_prune(self, step: int, micro_step: int) -> dict | None:
        cfg = self.cfg
        if not (cfg.prune_heads or cfg.prune_mlp) or step > cfg.prune_steps:
            return None
        if step % cfg.prune_every and step != cfg.prune_steps:
            return None
        frac = 1 - (1 - step / cfg.prune_steps) ** 3  # cubic: fast early, gentle near the target
        model = self.unwrapped()
        heads0, neurons0 = self.units0
        heads, neurons = _units(model)
        inc_h = 1 - round(heads0 * (1 - cfg.prune_heads * frac)) / heads if cfg.prune_heads else 0.0
        inc_m = 1 - round(neurons0 * (1 - cfg.prune_mlp * frac)) / neurons if cfg.prune_mlp else 0.0
        inc_h, inc_m = max(0.0, min(inc_h, 0.99)), max(0.0, min(inc_m, 0.99))
        if inc_h < 1e-9 and inc_m < 1e-9:
            return None
        calibration = [
            {k: v for k, v in self.batch(micro_step + i, whole=True)[0].items() if k != "labels"} for i in range(2)
        ]  # the same batches on every process: identical plans everywhere
        model.eval()
        prune(
            model,
            heads=inc_h,
            mlp=inc_m,
            criterion=cfg.prune_criterion,
            layout=cfg.prune_layout,
            calibration=calibration,
            reconstruct=cfg.prune_reconstruct,
        )
        self._wrap(model, old=(self.student, self.optimizer))
        heads, neurons = _units(model)
        return {"heads": heads, "neurons": neurons, "params": count_params(model)}

    def restore_shape(self, record: dict | None) -> None:
        if not record:
            return
        model = self.unwrapped()
        plan = plan_to_match(model, record)
        if plan.heads or plan.neurons:
            apply_plan(model, plan)
            model.config.compress["history"] = record.get("history", [])
            self._wrap(model, old=(self.student, self.optimizer))


def _units(model) -> tuple[int, int]:
    from ..models import get_adapter
    from ..pruning.record import iter_layers

    a = get_adapter(model)
    heads = neurons = 0
    for _, _, _, layer in iter_layers(model, a):
        heads += sum(s.num_heads for s in a.attentions(layer).values())
        neurons += a.mlp(layer).num_neurons
    return heads, neurons


def make_accelerator(cfg: DistillConfig) -> Accelerator:
    """An Accelerator for `cfg`. Without CUDA it must be told `cpu=True`: only then does a multi-process launch
    (`accelerate launch --multi_gpu --num_processes N`) become a real gloo MULTI_CPU run instead of N lone copies."""
    return Accelerator(
        cpu=not torch.cuda.is_available(),
        gradient_accumulation_steps=cfg.grad_accum,
        mixed_precision=cfg.mixed_precision,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def distill(
    student: nn.Module,
    teacher: nn.Module,
    data,
    config: DistillConfig | None = None,
    *,
    tokenizer=None,
    output_dir: str | Path | None = None,
    resume: bool = False,
    max_length: int = 128,
    accelerator: Accelerator | None = None,
    eval_data=None,
    **overrides,
) -> DistillResult:
    """Distil `teacher` into `student` (in place). `data`: texts (with `tokenizer`) or per-example feature dicts.

    With `eval_every` and `eval_data` (held-out examples, same kinds as `data`): the student is scored on them
    before training, every `eval_every` steps and at the last, and ends with the weights of the best-scoring step
    (step 0 is reported, not eligible: the stage's job is to train). After `resume`, only evaluations after the
    resume point compete (the best weights are kept in memory, not in checkpoints).

    With `output_dir`: checkpoints under `output_dir/checkpoints`, the loss curve in `output_dir/loss_curve.json`,
    the final student in `output_dir/model` (written atomically). Keyword overrides set DistillConfig fields."""
    cfg = config or DistillConfig()
    if overrides:
        cfg = DistillConfig(**{**cfg.to_dict(), **overrides})
    _check_pair(student, teacher, cfg)
    examples = to_examples(data, tokenizer, max_length)
    held_out_examples = to_examples(eval_data, tokenizer, max_length) if eval_data is not None else None
    if cfg.eval_every and not held_out_examples:
        raise CompressError(
            "eval_every",
            "choosing the kept weights needs held-out examples",
            "pass eval_data=... (recipes: the distill stage's select_split) or set eval_every=0",
        )
    output_dir = Path(output_dir) if output_dir is not None else None
    if resume and (output_dir is None or not (output_dir / "checkpoints" / "latest.json").exists()):
        raise CompressError(
            "resume",
            f"no checkpoint found under {output_dir}/checkpoints",
            "run without --resume first, or point --output at the interrupted run",
        )
    acc = accelerator or make_accelerator(cfg)
    set_seed(cfg.seed)
    d = _Distiller(student, teacher, examples, cfg, tokenizer, output_dir, acc)
    start, curve = 0, []
    if resume:
        state = json.loads((output_dir / "checkpoints" / "latest.json").read_text())
        d.restore_shape(state.get("record"))
        acc.load_state(str(output_dir / "checkpoints" / state["dir"]))
        start, curve = state["step"], state["curve"]
    d.build_cache()
    selector = _BestWeights(d, held_out_examples, cfg) if cfg.eval_every else None
    if selector is not None and start == 0:
        selector.score(0, eligible=False)

    for step in track(range(start, cfg.steps), description="distilling", total=cfg.steps - start):
        for g in d.optimizer.param_groups:
            g["lr"] = _lr(step, cfg)
        parts_sum: dict[str, float] = {}
        for micro in range(cfg.grad_accum):
            micro_step = step * cfg.grad_accum + micro
            b, idx = d.batch(micro_step)
            with acc.accumulate(d.student), acc.autocast():
                loss, parts = d.loss(b, idx)
                acc.backward(loss)
                if acc.sync_gradients and cfg.max_grad_norm:
                    acc.clip_grad_norm_(d.student.parameters(), cfg.max_grad_norm)
                d.optimizer.step()
                d.optimizer.zero_grad()
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v / cfg.grad_accum
        total = acc.reduce(torch.tensor(sum(parts_sum.values()) if parts_sum else 0.0, device=acc.device), "mean")
        entry = {"step": step + 1, "loss": float(total), "lr": _lr(step, cfg), **parts_sum}
        pruned = d.maybe_prune(step + 1, (step + 1) * cfg.grad_accum)
        if pruned:
            entry["pruned"] = pruned
        curve.append(entry)
        if acc.is_main_process and ((step + 1) % cfg.log_every == 0 or pruned):
            acc.print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in entry.items()}))
        if selector is not None and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            selector.score(step + 1, eligible=step + 1 >= cfg.prune_steps)  # widths fixed once pruning is done
        if output_dir is not None and cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
            _checkpoint(d, output_dir, step + 1, curve)

    kept_step = selector.restore() if selector is not None else None
    student = d.unwrapped()
    student.eval()
    if output_dir is not None:
        acc.wait_for_everyone()
        if acc.is_main_process:
            from ..io import atomic_dir

            output_dir.mkdir(parents=True, exist_ok=True)
            held = {"held_out": selector.scores, "kept_step": kept_step} if selector is not None else {}
            (output_dir / "loss_curve.json").write_text(json.dumps({"config": cfg.to_dict(), "curve": curve, **held}))
            with atomic_dir(output_dir / "model", overwrite=True) as tmp:
                student.save_pretrained(tmp)
                if tokenizer is not None:
                    tokenizer.save_pretrained(tmp)
        acc.wait_for_everyone()
    return DistillResult(
        student=student,
        curve=curve,
        output_dir=output_dir,
        held_out=selector.scores if selector is not None else [],
        kept_step=kept_step,
    )


class _BestWeights:
    """Held-out scores during distillation and a CPU copy of the best-scoring weights."""

    def __init__(self, d: _Distiller, examples: list[dict], cfg: DistillConfig):
        self.d, self.examples, self.cfg = d, examples, cfg
        self.scores: list[dict] = []
        self.best: tuple[float, int, dict] | None = None

    def score(self, step: int, eligible: bool = True) -> None:
        loss = self.d.held_out_loss(self.examples)
        self.scores.append({"step": step, "loss": loss})
        if self.d.acc.is_main_process:
            self.d.acc.print(json.dumps({"step": step, "held_out_loss": round(loss, 5)}))
        if eligible and (self.best is None or loss < self.best[0]):
            state = {k: v.detach().to("cpu", copy=True) for k, v in self.d.unwrapped().state_dict().items()}
            self.best = (loss, step, state)

    def restore(self) -> int | None:
        """Load the best weights into the student (if not the last step's); the kept step."""
        if self.best is None:
            return None
        loss, step, state = self.best
        if step != self.cfg.steps:
            self.d.unwrapped().load_state_dict(state)
            if self.d.acc.is_main_process:
                last = self.scores[-1]["loss"]
                self.d.acc.print(f"keeping the weights of step {step} (held-out loss {loss:.4f}; last step {last:.4f})")
        return step


def _checkpoint(d: _Distiller, output_dir: Path, step: int, curve: list[dict]) -> None:
    ckpt = output_dir / "checkpoints"
    name = f"step-{step:07d}"
    d.acc.save_state(str(ckpt / name))
    if d.acc.is_main_process:
        state = {"step": step, "dir": name, "curve": curve, "record": get_record(d.unwrapped().config)}
        tmp = ckpt / "latest.json.tmp"
        tmp.write_text(json.dumps(state))
        tmp.rename(ckpt / "latest.json")
        for old in ckpt.glob("step-*"):  # keep the newest two
            if old.name < name and old.name != _previous(ckpt, name):
                shutil.rmtree(old, ignore_errors=True)
    d.acc.wait_for_everyone()


def _previous(ckpt: Path, name: str) -> str | None:
    older = sorted(p.name for p in ckpt.glob("step-*") if p.name < name)
    return older[-1] if older else None
