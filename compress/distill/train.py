"""`train()`: plain task-loss training on Accelerate, for a teacher that must first learn its task (e.g. a sentiment
head on a sentence-embedding encoder). Same data order and batching as distillation; `head_only` freezes everything
but the layers outside the transformer blocks (pooler, classifier) and the last `last_layers` blocks: fast on a CPU,
since the backward pass stops there."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from accelerate.utils import set_seed
from torch import nn

from ..errors import CompressError
from ..progress import track
from .config import DistillConfig
from .data import collate, global_batch, to_examples
from .loop import _lr, make_accelerator


def _head_parameters(model: nn.Module, last_layers: int = 0) -> list[nn.Parameter]:
    """Parameters outside the transformer blocks and embeddings (pooler, classifier), plus the last N blocks."""
    from ..models import get_adapter

    stacks = get_adapter(model).stacks(model).values()
    in_blocks = {id(p) for layers in stacks for p in layers.parameters()}
    trainable_blocks = (
        [p for layers in stacks for layer in list(layers)[len(layers) - last_layers :] for p in layer.parameters()]
        if last_layers
        else []
    )
    base = getattr(model, "base_model", model)
    embeddings = {id(p) for name, p in base.named_parameters() if "embed" in name}
    head = [p for p in model.parameters() if id(p) not in in_blocks and id(p) not in embeddings]
    return head + trainable_blocks


def train(
    model: nn.Module,
    data,
    labels: list[int],
    *,
    tokenizer=None,
    steps: int = 200,
    batch_size: int = 32,
    lr: float = 1e-3,
    warmup_steps: int = 10,
    head_only: bool = True,
    last_layers: int = 0,
    max_length: int = 128,
    seed: int = 0,
    output_dir: str | Path | None = None,
) -> list[dict]:
    """Train `model` in place on (example, label) pairs with its own loss; examples are texts (with `tokenizer`) or
    per-example feature dicts (e.g. {"pixel_values": (C, H, W)}). Returns the loss curve."""
    examples = to_examples(data, tokenizer, max_length)
    if len(labels) != len(examples):
        raise CompressError("labels", f"{len(labels)} labels for {len(examples)} examples", "give one label each")
    examples = [{**e, "labels": int(y)} for e, y in zip(examples, labels)]  # the caller's dicts stay as they were
    cfg = DistillConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=warmup_steps,
        seed=seed,
        logits_weight=0.0,
        task_weight=1.0,
    )
    acc = make_accelerator(cfg)
    set_seed(seed)
    params = _head_parameters(model, last_layers) if head_only else [p for p in model.parameters() if p.requires_grad]
    frozen = {p: p.requires_grad for p in model.parameters()}
    if head_only:
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
    model.train()
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    student, opt = acc.prepare(model, opt)
    curve = []
    try:
        for step in track(range(steps), description="training", total=steps):
            for g in opt.param_groups:
                g["lr"] = _lr(step, cfg)
            idx = global_batch(step, len(examples), batch_size * acc.num_processes, seed)
            idx = idx[acc.process_index * batch_size : (acc.process_index + 1) * batch_size]
            b = {k: v.to(acc.device) for k, v in collate([examples[i] for i in idx], tokenizer).items()}
            loss = student(**b).loss
            acc.backward(loss)
            opt.step()
            opt.zero_grad()
            curve.append({"step": step + 1, "loss": float(acc.reduce(loss.detach(), "mean"))})
    finally:
        for p, r in frozen.items():
            p.requires_grad_(r)
    model.eval()
    if output_dir is not None and acc.is_main_process:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "train_curve.json").write_text(json.dumps(curve))
    return curve
