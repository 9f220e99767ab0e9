"""Layer-by-layer calibration: each transformer block sees the inputs the already-sparsified blocks before it produce.

For every layer stack (encoder, decoder...), one forward of the model records what each block of the stack is called
with (the first block's hidden states, and every block's other arguments: masks, position embeddings, encoder
states), stopping at the stack's last block. Then, block by block, group by group of Linear layers sharing an input
(q/k/v, o, up/gate, down, in the order the block runs them): run the block on its inputs with hooks that sum the
group's input statistics (`InputStats`) and let the caller sparsify the group, so each group is fitted to the
inputs the already-sparsified groups before it produce; finally run the block again to produce the next block's
inputs. Padded tokens (attention mask 0) are left out of the statistics. Layers outside the blocks (heads, when
`skip_head=False`) are calibrated last, with one forward of the whole sparsified model.
Cost: about six forwards of the model over the calibration batches (a Llama or BERT block runs 1 + 4 + 1 times).
With `dense_inputs` (sparsify's `dense_target`), each block also runs once on the dense model's hidden states before
it is sparsified (its layers' dense inputs X_d are kept for the block), and each group gets the cross-statistics
X^T X_d besides the Hessian X^T X.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..models import get_adapter
from ..progress import track
from ..pruning.masks import StopForward
from .criteria import InputStats


def _model_inputs(model: nn.Module, batch: dict) -> dict:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    if getattr(model.config, "use_cache", None) is not None:
        inputs["use_cache"] = False  # a cache object would be shared by the recorded calls and grow
    return inputs


def _hidden(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _with_hidden(args: tuple, kwargs: dict, hidden: torch.Tensor) -> tuple[tuple, dict]:
    if args:
        return (hidden, *args[1:]), kwargs
    return args, {**kwargs, "hidden_states": hidden}


def _output_hidden(out) -> torch.Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


def _flat(x: torch.Tensor, token_mask: torch.Tensor | None) -> torch.Tensor:
    """(…, in) -> (real tokens, in) float32, padded tokens (mask 0) left out where the shapes line up."""
    if token_mask is not None and x.dim() == 3 and tuple(x.shape[:2]) == tuple(token_mask.shape):
        x = x[token_mask.bool()]
    return x.reshape(-1, x.shape[-1]).float()


class StatsHooks:
    """Forward hooks summing each named Linear / Conv1D layer's input statistics; inputs shared by several layers
    (q/k/v, gate/up) are reduced once per call."""

    def __init__(self, modules: dict[str, nn.Module], needs: str):
        self.needs, self.stats = needs, {name: InputStats() for name in modules}
        self.token_mask: torch.Tensor | None = None  # (batch, seq) of the current call, 1 = real token
        self._seen: dict[tuple, tuple] = {}
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in modules.items()]

    def new_call(self, token_mask: torch.Tensor | None) -> None:
        self.token_mask, self._seen = token_mask, {}

    def _reduce(self, x: torch.Tensor) -> tuple:
        x = _flat(x, self.token_mask)  # (real tokens, in)
        if self.needs == "hessian":
            return x.shape[0], (x.T @ x).double()
        return x.shape[0], x.double().pow(2).sum(0)

    def _hook(self, name: str):
        def hook(module, args, out):
            x = args[0].detach()
            key = (x.data_ptr(), tuple(x.shape))
            if key not in self._seen:  # the tensor is kept with its result: its memory cannot be reused meanwhile
                self._seen[key] = (x, *self._reduce(x))
            _, tokens, value = self._seen[key]
            s = self.stats[name]
            s.tokens += tokens
            field = "hessian" if self.needs == "hessian" else "sq_norms"
            setattr(s, field, value.clone() if getattr(s, field) is None else getattr(s, field) + value)

        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _inputs_of(modules: dict[str, nn.Module], block: nn.Module, call: tuple, hidden: torch.Tensor):
    """(the input each of `modules` inside `block` gets, the block's output) when the block runs on `hidden` with a
    recorded call."""
    seen: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda mod, a, o, n=n: seen.__setitem__(n, a[0].detach())) for n, m in
               modules.items()]  # fmt: skip
    try:
        args, kwargs = _with_hidden(*call, hidden)
        out = block(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return seen, _output_hidden(out)


def _paired_stats(group, layer, block_calls, dense_inputs: list[dict]) -> dict[str, InputStats]:
    """Hessian H = X^T X of each layer's inputs X in the (partly sparse) model, and C = X^T X_d with X_d the same
    tokens' inputs in the dense model (`dense_inputs`: per batch, recorded before the block was sparsified)."""
    stats = {n: InputStats() for n in group}
    for (call, hidden, batch), dense_x in zip(block_calls, dense_inputs):
        sparse_x, _ = _inputs_of(group, layer, call, hidden)
        mask, done = batch.get("attention_mask"), {}
        for n in group:
            key = (sparse_x[n].data_ptr(), dense_x[n].data_ptr())  # q/k/v (gate/up) share their inputs
            if key not in done:
                x, xd = _flat(sparse_x[n], mask), _flat(dense_x[n], mask)
                done[key] = (x.shape[0], (x.T @ x).double(), (x.T @ xd).double())
            tokens, h, c = done[key]
            s = stats[n]
            s.tokens += tokens
            s.hessian = h.clone() if s.hessian is None else s.hessian + h
            s.cross = c.clone() if s.cross is None else s.cross + c
    return stats


def _record_stack_calls(model: nn.Module, layers: nn.ModuleList, batches: list[dict]) -> list[list[tuple]]:
    """[batch][layer] -> (args, kwargs) of that block's call; hidden states kept for block 0 only."""
    calls: list[list[tuple]] = []
    current: list[tuple] = []

    def pre_hook(index: int):
        def hook(module, args, kwargs):
            if index:
                args, kwargs = _with_hidden(args, kwargs, None)  # only block 0's hidden states are needed
            current.append((args, kwargs))
            if index == len(layers) - 1:
                raise StopForward

        return hook

    handles = [layer.register_forward_pre_hook(pre_hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
    try:
        for batch in batches:
            current = []
            try:
                model(**_model_inputs(model, batch))
            except StopForward:
                pass
            calls.append(current)
    finally:
        for h in handles:
            h.remove()
    return calls


def _run_block(layer: nn.Module, block_calls: list[tuple], hooks: StatsHooks | None = None) -> None:
    """Run one block on every recorded call: (its (args, kwargs), the hidden states it gets, the batch)."""
    for call, hidden, batch in block_calls:
        if hooks is not None:
            hooks.new_call(batch.get("attention_mask"))  # used where its (batch, seq) shape fits
        args, kwargs = _with_hidden(*call, hidden)
        layer(*args, **kwargs)


def _input_groups(modules: dict[str, nn.Module], layer: nn.Module, block_calls: list) -> list[dict[str, nn.Module]]:
    """The block's target layers grouped by shared input, in the order the block runs them (one call records it)."""
    if not modules:
        return []
    order: dict[tuple, list[str]] = {}
    alive = []  # inputs seen, kept so that no later input reuses their memory (and their data_ptr)

    def hook(name):
        def record(module, args, out):
            x = args[0]
            alive.append(x)
            key = (x.data_ptr(), tuple(x.shape))
            if not any(name in names for names in order.values()):
                order.setdefault(key, []).append(name)

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in modules.items()]
    try:
        _run_block(layer, block_calls)
    finally:
        for h in handles:
            h.remove()
    groups = [{n: modules[n] for n in names} for names in order.values()]
    missed = {n: m for n, m in modules.items() if not any(n in g for g in groups)}  # never called: sparsify last
    return groups + ([missed] if missed else [])


@torch.no_grad()
def sequential(
    model: nn.Module,
    batches: list[dict],
    targets: dict[str, nn.Module],
    needs: str,
    sparsify_group: Callable[[dict[str, InputStats]], None],
    by_group: bool = True,
    dense_inputs: bool = False,
) -> None:
    """Calibrate `targets` (name -> Linear/Conv1D) block by block; `sparsify_group(stats)` is called once per group
    of a block's targets sharing an input (once per block if not `by_group`; once for the layers outside the blocks)
    with the statistics of the targets in it, which it sparsifies. `dense_inputs` (Hessians only): also the
    cross-statistics with the dense model's inputs to the same layers (`_paired_stats`), recorded by running each
    block, before it is sparsified, on the dense model's hidden states."""
    adapter = get_adapter(model)
    names = {id(m): n for n, m in model.named_modules()}
    remaining = dict(targets)
    for stack, layers in adapter.stacks(model).items():
        calls = _record_stack_calls(model, layers, batches)
        hidden = [_hidden(*c[0]) for c in calls]  # per batch: block 0's input
        dense_hidden = list(hidden)  # the dense model's hidden states (dense_inputs)
        for i, layer in enumerate(track(layers, description=f"sparsifying {stack}")):
            prefix = names[id(layer)] + "."
            in_block = {n: m for n, m in remaining.items() if n.startswith(prefix)}
            block_calls = [(calls[b][i], hidden[b], batch) for b, batch in enumerate(batches)]
            dense_x = None
            if dense_inputs:  # the block is still dense: its layers' inputs and output on the dense hidden states
                runs = [_inputs_of(in_block, layer, calls[b][i], dense_hidden[b]) for b in range(len(batches))]
                dense_x, dense_hidden = [seen for seen, _ in runs], [out for _, out in runs]
            groups = _input_groups(in_block, layer, block_calls[:1]) if by_group else [in_block] if in_block else []
            for group in groups:  # q/k/v, o, up/gate, down
                if dense_x is not None:
                    sparsify_group(_paired_stats(group, layer, block_calls, dense_x))
                else:
                    hooks = StatsHooks(group, needs)
                    try:
                        _run_block(layer, block_calls, hooks)  # fitted to what the groups sparsified before produce
                    finally:
                        hooks.remove()
                    sparsify_group(hooks.stats)
                for n in group:
                    remaining.pop(n)
            for b in range(len(batches)):  # the next block's inputs, from this (now sparse) block
                args, kwargs = _with_hidden(*calls[b][i], hidden[b])
                hidden[b] = _output_hidden(layer(*args, **kwargs))
    if remaining:  # outside the blocks: one forward of the whole sparsified model
        hooks = StatsHooks(remaining, needs)
        try:
            for batch in batches:
                hooks.new_call(batch.get("attention_mask"))
                model(**_model_inputs(model, batch))
        finally:
            hooks.remove()
        sparsify_group(hooks.stats)


def is_target(module: nn.Module) -> bool:
    return type(module) in (nn.Linear, Conv1D)
