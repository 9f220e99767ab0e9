"""Which Linear layers a quantization method touches: the skip rules every method shares, and block-size checks.

Default for every task: quantize the Linear layers inside the transformer blocks, keep everything outside them in
full precision. Outside the blocks sits each task's head (`classifier` for classification, `lm_head` for causal LMs,
`proj_out` for Whisper, `pooler` / `qa_outputs` / `score`) and input projections such as Wav2Vec2's feature projection:
small, sensitive, and for LMs often tied to the input embeddings. Optional: the first and last block of each stack
(`skip_edge_layers`, common practice for 4-bit LLMs) and any names you list (`skip`, fnmatch patterns).
"""

from __future__ import annotations

import fnmatch
import warnings
from dataclasses import dataclass

from torch import nn
from transformers.pytorch_utils import Conv1D

from ..errors import CompressError
from ..models import get_adapter
from ..models.base import in_features, out_features


@dataclass
class Targets:
    """Skip rules; every method's config inherits them."""

    skip: tuple[str, ...] = ()  # extra module names / fnmatch patterns to keep in full precision
    skip_head: bool = True  # keep Linear layers outside the transformer blocks (task head, pooler, projections)
    skip_edge_layers: bool = False  # also keep the first and last block of every layer stack

    def __post_init__(self):
        if isinstance(self.skip, str):
            self.skip = (self.skip,)
        if not all(isinstance(p, str) and p for p in self.skip):
            raise CompressError("skip", f"expected module names or patterns, got {self.skip!r}", "e.g. skip=['*.fc2']")
        self.skip = tuple(self.skip)
        for name in ("skip_head", "skip_edge_layers"):
            if not isinstance(getattr(self, name), bool):
                raise CompressError(name, f"expected true or false, got {getattr(self, name)!r}")


def is_linear(module: nn.Module) -> bool:
    return type(module) in (nn.Linear, Conv1D)


def select_linears(model: nn.Module, rules: Targets, untie: bool = False) -> tuple[list[str], dict[str, str]]:
    """(names of the Linear / Conv1D layers to quantize, {name: why kept} for the others). With `untie` (a method
    that gives each layer its own quantized weights) an output layer tied to the input embeddings is chosen too
    when `skip_head` is off; the caller then unties them (`untie_config`)."""
    adapter = get_adapter(model)
    names = {id(m): n for n, m in model.named_modules()}
    blocks: dict[str, str] = {}  # block prefix -> "edge" or "inner"
    for layers in adapter.stacks(model).values():
        for i, layer in enumerate(layers):
            blocks[names[id(layer)] + "."] = "edge" if i in (0, len(layers) - 1) else "inner"
    try:
        embeddings = model.get_input_embeddings().weight
    except (AttributeError, NotImplementedError):  # audio / vision models have no token embeddings
        embeddings = None
    untied = tied_output(model) if untie and not rules.skip_head else None  # the one layer that may be untied

    chosen, kept = [], {}
    for name, module in model.named_modules():
        if not is_linear(module):
            continue
        block = next((kind for prefix, kind in blocks.items() if name.startswith(prefix)), None)
        if embeddings is not None and module.weight is embeddings and name != untied:
            kept[name] = "tied to the input embeddings"
        elif any(fnmatch.fnmatchcase(name, p) or name == p for p in rules.skip):
            kept[name] = "listed in skip"
        elif block is None and rules.skip_head:
            kept[name] = "outside the transformer blocks (skip_head)"
        elif block == "edge" and rules.skip_edge_layers:
            kept[name] = "first or last block (skip_edge_layers)"
        else:
            chosen.append(name)
    unmatched = [
        p for p in rules.skip if not any(fnmatch.fnmatchcase(n, p) or n == p for n, _ in model.named_modules())
    ]
    if unmatched:
        raise CompressError("skip", f"{unmatched} match no module of this model", "check the names with `print(model)`")
    if not chosen:
        raise CompressError("skip", "the skip rules leave no Linear layer to quantize", "skip fewer modules")
    return chosen, kept


def tied_output(model: nn.Module) -> str | None:
    """The output layer's module name when it shares its weight with the input embeddings, else None."""
    try:
        emb, out = model.get_input_embeddings(), model.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if emb is None or out is None or getattr(out, "weight", None) is not getattr(emb, "weight", False):
        return None
    return next(name for name, m in model.named_modules() if m is out)


def untie_config(config) -> None:
    """The output layer has its own (quantized) weights now: loading must not tie it to the input embeddings."""
    for c in {id(c): c for c in (config, config.get_text_config())}.values():
        if getattr(c, "tie_word_embeddings", False):
            c.tie_word_embeddings = False


def off_grid(model: nn.Module, names: list[str], out_multiple: int, in_multiple: int) -> dict[str, tuple[int, int]]:
    """{name: (out, in)} for layers whose widths are not multiples of the given sizes (pruned widths often are not)."""
    modules = dict(model.named_modules())
    bad = {}
    for name in names:
        out_f, in_f = out_features(modules[name]), in_features(modules[name])
        if out_f % out_multiple or in_f % in_multiple:
            bad[name] = (out_f, in_f)
    return bad


def warn_off_grid(method: str, bad: dict[str, tuple[int, int]], rule: str, consequence: str) -> None:
    if not bad:
        return
    shown = ", ".join(f"{n} ({o}x{i})" for n, (o, i) in list(bad.items())[:6])
    more = f" and {len(bad) - 6} more" if len(bad) > 6 else ""
    warnings.warn(
        f"{method}: {len(bad)} layer(s) have widths that are not {rule}: {shown}{more}; {consequence}. "
        "Prune with round_to=64 (CLI --round-to 64) to keep widths on the grid.",
        UserWarning,
        stacklevel=3,
    )
