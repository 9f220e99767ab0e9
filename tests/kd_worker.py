"""Run by test_distill under `accelerate launch` (2 processes) and plainly (1 process): a tiny KD run whose final
student weights are written to OUT/rank{r}.safetensors. A third argument N > 0 scores the student on held-out
examples every N steps and keeps the best step's weights (`eval_every`); the kept step is saved too."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("COMPRESS_PROGRESS", "0")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import compress  # noqa: E402
from compress.distill import DistillConfig, distill  # noqa: E402
from compress.distill.loop import make_accelerator  # noqa: E402
from tiny import inputs, make  # noqa: E402


def main(out: str, batch_size: int, eval_every: int = 0) -> None:
    teacher, kind = make("bert")
    teacher.config.hidden_dropout_prob = teacher.config.attention_probs_dropout_prob = 0.0
    for m in teacher.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    student, _ = make("bert")
    for m in student.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    compress.prune(student, heads=0.5, mlp=0.5, criterion="magnitude")
    # A key bias adds the same score to every key of a query, which softmax ignores: its true gradient is exactly zero
    # and what autograd returns is float noise whose size depends on the CPU's summation order. AdamW normalises that
    # noise into full-size steps, so it would make the 1- vs 2-process comparison machine-dependent: freeze them.
    for name, p in student.named_parameters():
        if name.endswith("attention.self.key.bias"):
            p.requires_grad_(False)
    initial = {k: v.detach().clone() for k, v in student.state_dict().items()}
    data = [{k: v[0] for k, v in inputs(kind, batch=1, seq=8, seed=s).items()} for s in range(16)]
    cfg = DistillConfig(
        steps=4, batch_size=batch_size, lr=5e-3, warmup_steps=1, max_grad_norm=0.0, eval_every=eval_every
    )
    acc = make_accelerator(cfg)
    held = data[:6] if eval_every else None
    result = distill(student, teacher, data, cfg, accelerator=acc, eval_data=held)
    state = {k: v.detach().contiguous() for k, v in result.student.state_dict().items()}
    state["__initial__." + "loss_curve"] = torch.tensor([c["loss"] for c in result.curve])
    if eval_every:
        state["__initial__.held_out"] = torch.tensor([h["loss"] for h in result.held_out])
        state["__initial__.kept_step"] = torch.tensor(result.kept_step)
    save_file(state, os.path.join(out, f"rank{acc.process_index}.safetensors"))
    if acc.process_index == 0:
        save_file({k: v.contiguous() for k, v in initial.items()}, os.path.join(out, "initial.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *[int(a) for a in sys.argv[3:]])
