"""Repair after pruning: layer-wise ridge least-squares refit of each pruned sublayer's output projection.

For a sublayer y = W·x + b whose input units (heads feeding o_proj, neurons feeding down_proj / fc2 / output.dense)
were cut to a kept set K, new weights for the kept columns (and the bias) are fitted so the pruned sublayer reproduces
the dense model's sublayer output on calibration tokens (K-prune 2024, GRAIL 2025; FLAP's bias compensation is the
zero-order case):

    W', b' = argmin  sum_tokens ||(W_d·x_dense + b_d) - (W'·x_K + b')||^2  +  lam·||[W' b'] - [W b]||^2

with x_K taken from the *pruned* model, already repaired below this sublayer, so upstream error is corrected too.
With `target="residual"` (the default) the target is stronger where the block is pre-norm (Llama, GPT-2, ViT,
Whisper: layer output = input + the sum of its sublayers' projections, checked on the calibration batches per layer):
the dense residual stream after the sublayer minus the pruned stream before it, so the refit also cancels drift that
reached the residual stream from below, and the last sublayer before layers that were dropped stands in for them.
Post-norm blocks (BERT, DistilBERT, MPNet, Gemma2/3's extra norms) fail the check and use the sublayer output.
The ridge term pulls towards the current (unrefit) weights, so the fit never increases the calibration error, and
lam = ridge · mean(diag(G)) is relative to the Gram matrix G = [x_K 1]ᵀ[x_K 1]. G and [x_K 1]ᵀY are accumulated in
float64 over calibration batches (memory ~ |K|², never all activations); the system is solved by Cholesky, with a
larger lam and then `lstsq` as fallbacks. Every `holdout`-th calibration token is held out: a sublayer whose refit is
worse there than its unrefit weights keeps the unrefit ones (reported in the summary).

Layers are replayed one at a time: one forward pass per layer stack captures each layer's inputs (hidden states and
the keyword arguments the model passes, e.g. masks, rotary embeddings, encoder states), then each pruned layer runs on
the cached hidden states of the pruned model and each dense layer on the dense model's. Depth-pruned models map each
kept layer to its original dense layer through the pruning record; dense layers that were dropped still advance the
dense hidden states.

With `tune_epochs` > 0, each pruned layer is then tuned (block reconstruction, `tune_layer`): Adam on all of the
layer's weights, `tune_epochs` passes over the calibration batches, so its output on the pruned model's inputs matches
the dense layer's output; kept only if the held-out tokens' error fell. It costs a forward and backward pass of one
layer per batch and epoch, and on MiniLM at 75 % brings the embeddings far closer than more calibration data does
(benchmarks/repair/).

    report = compress.reconstruct(pruned, dense, calibration)   # also: compress.prune(..., reconstruct=True)
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from ..errors import CompressError
from ..models import get_adapter
from ..models.base import in_features, out_features
from ..progress import track
from .masks import StopForward
from .record import attention_key, get_record, iter_layers, mlp_key

SITES = ("pruned", "all")
# Below this many fitted calibration tokens per input column the refit fits the calibration data more than the model
# (benchmarks/repair/): SmolLM2's recipe plan with 32 passages (7.5 per MLP column) ends at 2.05x the teacher's
# perplexity with 3 sublayers kept unrefit, with 128 (30) at 1.58x, with 256 (60) no better; MiniLM at 75 % with 256
# sentences (16 per FFN column) has embedding cosine 0.71 to the dense model's, with 1,024 (61) 0.77.
MIN_TOKENS_PER_COLUMN = 24
TARGETS = ("output", "residual")


@dataclass
class ReconstructConfig:
    """How the refit is done (see the module docstring)."""

    ridge: float = 1e-2  # lam = ridge * mean(diag(G)); pulls towards the unrefit weights
    holdout: int = 8  # every holdout-th calibration token is held out to check each refit (0: no check)
    sites: str = "pruned"  # "pruned": sublayers that lost units; "all": every sublayer (also corrects drift)
    # "output": the dense sublayer's output; "residual": the dense residual stream after the sublayer (pre-norm
    # blocks only, checked per layer; the last sublayer before dropped layers then also stands in for them)
    target: str = "residual"
    # then, per kept layer, this many passes of Adam over the calibration batches on all the layer's weights (block
    # reconstruction; 0: the closed-form refit only) at learning rate tune_lr
    tune_epochs: int = 0
    tune_lr: float = 1e-3

    def __post_init__(self):
        if not isinstance(self.ridge, (int, float)) or not self.ridge > 0:
            raise CompressError("ridge", f"{self.ridge!r} is not a positive number", "use e.g. 1e-2")
        if not isinstance(self.holdout, int) or self.holdout == 1 or self.holdout < 0:
            raise CompressError("holdout", f"{self.holdout!r} is not 0 or an integer >= 2", "use e.g. 8")
        if self.sites not in SITES:
            raise CompressError("sites", f"unknown value {self.sites!r}", f"use one of {', '.join(SITES)}")
        if self.target not in TARGETS:
            raise CompressError("target", f"unknown value {self.target!r}", f"use one of {', '.join(TARGETS)}")
        if not isinstance(self.tune_epochs, int) or isinstance(self.tune_epochs, bool) or self.tune_epochs < 0:
            raise CompressError("tune_epochs", f"{self.tune_epochs!r} is not an integer >= 0", "use e.g. 10, or 0")
        if not isinstance(self.tune_lr, (int, float)) or not self.tune_lr > 0:
            raise CompressError("tune_lr", f"{self.tune_lr!r} is not a positive number", "use e.g. 1e-3")


# --- pure math ----------------------------------------------------------------------------------------------------


def ridge_refit(G: torch.Tensor, C: torch.Tensor, W0: torch.Tensor, ridge: float) -> tuple[torch.Tensor, dict]:
    """Solve (G + lam·I) W = C + lam·W0 for W (F, D), lam = ridge · mean(diag(G)). G: (F, F), C = XᵀY: (F, D).

    Falls back to a 10x larger lam (up to 4 times), then to `lstsq`; returns W0 unchanged if nothing gives finite
    weights. info: {"lam": ..., "method": "cholesky" | "cholesky+" | "lstsq" | "unchanged"}."""
    scale = float(G.diagonal().mean()) if G.numel() else 0.0
    if not scale > 0 or not torch.isfinite(G).all() or not torch.isfinite(C).all():
        return W0, {"lam": 0.0, "method": "unchanged"}
    eye = torch.eye(G.shape[0], dtype=G.dtype)
    lam = ridge * scale
    for attempt in range(5):
        A = G + lam * eye
        L, info = torch.linalg.cholesky_ex(A)
        if int(info) == 0:
            W = torch.cholesky_solve(C + lam * W0, L)
            if torch.isfinite(W).all():
                return W, {"lam": lam, "method": "cholesky" if attempt == 0 else "cholesky+"}
        lam *= 10
    W = torch.linalg.lstsq(A, C + lam * W0, driver="gelsd").solution
    if torch.isfinite(W).all():
        return W, {"lam": lam, "method": "lstsq"}
    return W0, {"lam": lam, "method": "unchanged"}


def fit_error(G: torch.Tensor, C: torch.Tensor, yy: float, W: torch.Tensor) -> float:
    """sum ||Y - X·W||² from G = XᵀX, C = XᵀY and yy = sum ||Y||², without the activations."""
    return float((W * (G @ W)).sum() - 2 * (W * C).sum() + yy)


def augmented_weight(module: nn.Module) -> torch.Tensor:
    """The projection as one (in [+1 for the bias], out) float64 matrix: y = [x 1] @ W."""
    w = module.weight.detach().double()
    w = w if isinstance(module, Conv1D) else w.t()  # Conv1D stores (in, out), Linear (out, in)
    if module.bias is not None:
        w = torch.cat([w, module.bias.detach().double()[None, :]])
    return w


@torch.no_grad()
def set_augmented_weight(module: nn.Module, W: torch.Tensor) -> None:
    n_in = in_features(module)
    w = W[:n_in].to(module.weight.dtype)
    module.weight.copy_(w if isinstance(module, Conv1D) else w.t())
    if module.bias is not None:
        module.bias.copy_(W[n_in].to(module.bias.dtype))


@dataclass
class Gram:
    """G = XᵀX, C = XᵀY and sum ||Y||² (float64), for fitted tokens and for held-out tokens."""

    features: int
    outputs: int
    bias: bool
    G: list = field(default_factory=list)
    C: list = field(default_factory=list)
    yy: list = field(default_factory=list)
    tokens: list = field(default_factory=list)

    def __post_init__(self):
        f = self.features + int(self.bias)
        self.G = [torch.zeros(f, f, dtype=torch.float64) for _ in range(2)]
        self.C = [torch.zeros(f, self.outputs, dtype=torch.float64) for _ in range(2)]
        self.yy = [0.0, 0.0]
        self.tokens = [0, 0]

    def add(self, x: torch.Tensor, y: torch.Tensor, held: torch.Tensor | None) -> None:
        """x: (N, features), y: (N, outputs) for the same tokens; held: (N,) bool, True = held-out token."""
        x = x.double()
        if self.bias:
            x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], 1)
        y = y.double()
        for part in (0, 1):
            sel = (~held if part == 0 else held) if held is not None else None
            if sel is None and part == 1:
                continue
            xs, ys = (x, y) if sel is None else (x[sel], y[sel])
            self.G[part] += xs.t() @ xs
            self.C[part] += xs.t() @ ys
            self.yy[part] += float((ys * ys).sum())
            self.tokens[part] += xs.shape[0]


# --- layer replay -------------------------------------------------------------------------------------------------


@dataclass
class _Call:
    """How the model called one layer for one batch: hidden states given positionally or by keyword, and the rest."""

    positional: bool
    args: tuple
    kwargs: dict

    def run(self, layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        if self.positional:
            out = layer(hidden, *self.args, **self.kwargs)
        else:
            out = layer(*self.args, hidden_states=hidden, **self.kwargs)
        return out[0] if isinstance(out, tuple) else out


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def _capture(model: nn.Module, stack: str, batches: list[dict]) -> tuple[list[torch.Tensor], list[list[_Call]]]:
    """One forward pass per batch, stopped after the stack's last layer: the first layer's hidden input and every
    layer's call arguments (kept by reference: tensors shared by all layers are stored once)."""
    layers = get_adapter(model).stacks(model)[stack]
    hidden: list[torch.Tensor] = []
    calls: list[list[_Call]] = []
    device = next(model.parameters()).device

    def pre(pos):
        def hook(module, args, kwargs):
            positional = len(args) > 0
            h = args[0] if positional else kwargs["hidden_states"]
            if pos == 0:
                hidden.append(h.detach())
            rest = args[1:] if positional else args
            kw = {k: v for k, v in kwargs.items() if positional or k != "hidden_states"}
            calls[-1].append(_Call(positional, rest, kw))
            if pos == len(layers) - 1:
                raise StopForward

        return hook

    handles = [layer.register_forward_pre_hook(pre(pos), with_kwargs=True) for pos, layer in enumerate(layers)]
    use_cache = getattr(model.config, "use_cache", None)
    try:
        if use_cache is not None:
            model.config.use_cache = False  # no KV cache objects shared between replayed layers
        for batch in batches:
            calls.append([])
            try:
                model(**_to(batch, device))
            except StopForward:
                pass
            if len(calls[-1]) != len(layers):
                raise RuntimeError(f"the forward pass reached {len(calls[-1])} of {len(layers)} {stack} layers")
    finally:
        for h in handles:
            h.remove()
        if use_cache is not None:
            model.config.use_cache = use_cache
    return hidden, calls


def _token_mask(batch: dict, x: torch.Tensor) -> torch.Tensor | None:
    """(N,) bool of real (non-padding) tokens for x: (B, T, F), when the batch's mask lines up with it."""
    for name in ("attention_mask", "decoder_attention_mask"):
        m = batch.get(name)
        if m is not None and x.dim() == 3 and tuple(m.shape) == tuple(x.shape[:2]):
            return m.reshape(-1).bool().cpu()
    return None


def _held_out(tokens: int, holdout: int) -> torch.Tensor:
    """(tokens,) bool: every holdout-th flattened token is held out (the refit and the tuning check the same ones)."""
    return torch.arange(tokens) % holdout == holdout - 1


def _flat(x: torch.Tensor, length: int | None = None) -> torch.Tensor:
    """(tokens, features) in float32 on the CPU; with `length`, only the first `length` positions of (B, T, F)."""
    if length is not None and x.dim() == 3 and x.shape[1] > length:
        x = x[:, :length]
    return x.detach().reshape(-1, x.shape[-1]).float().cpu()


# --- the refit ----------------------------------------------------------------------------------------------------


def _sites(adapter, stack: str, pos: int, layer: nn.Module) -> list[tuple[str, nn.Module]]:
    """(key, output projection) of each sublayer of a layer, in forward order: attention(s), then the MLP."""
    out = [(attention_key(stack, pos, role), site.o) for role, site in adapter.attentions(layer).items()]
    return out + [(mlp_key(stack, pos), adapter.mlp(layer).output)]


def check_dense(pruned: nn.Module, dense: nn.Module) -> None:
    """One-line error unless `dense` has the architecture the pruned model was cut from."""
    pa, da = get_adapter(pruned), get_adapter(dense)
    if pruned.config.model_type != dense.config.model_type:
        raise CompressError(
            "dense",
            f"the dense reference is a {dense.config.model_type!r} model, "
            f"the pruned one a {pruned.config.model_type!r}",
            "pass the model the pruned one was cut from",
        )
    dense_origins = {(s, o): layer for s, _, o, layer in iter_layers(dense, da)}
    for stack, pos, orig, layer in iter_layers(pruned, pa):
        d = dense_origins.get((stack, orig))
        if d is None:
            raise CompressError(
                "dense", f"the pruned model's {stack} layer {orig} has no counterpart in the dense reference",
                "pass the model the pruned one was cut from (same number of layers)",
            )  # fmt: skip
        for (key, p), (_, q) in zip(_sites(pa, stack, pos, layer), _sites(da, stack, pos, d)):
            if out_features(p) != out_features(q) or in_features(p) > in_features(q):
                raise CompressError(
                    "dense",
                    f"{key}: the dense reference's output projection is {in_features(q)}->{out_features(q)}, "
                    f"the pruned one's {in_features(p)}->{out_features(p)}",
                    "pass the model the pruned one was cut from (same hidden size, at least as wide)",
                )


def _refit_site(gram: Gram, module: nn.Module, ridge: float) -> dict:
    """Solve for one projection, keep the unrefit weights where the refit is worse on held-out tokens."""
    W0 = augmented_weight(module)
    W, info = ridge_refit(gram.G[0], gram.C[0], W0, ridge)
    fit0, fit1 = fit_error(gram.G[0], gram.C[0], gram.yy[0], W0), fit_error(gram.G[0], gram.C[0], gram.yy[0], W)
    yy = max(gram.yy[0], 1e-30)
    result = {"method": info["method"], "fit_before": fit0 / yy, "fit_after": fit1 / yy}
    result["tokens_per_column"] = gram.tokens[0] / W0.shape[0]  # fitted tokens per unknown of each output row
    if gram.yy[1] > 0:
        held0 = fit_error(gram.G[1], gram.C[1], gram.yy[1], W0)
        held1 = fit_error(gram.G[1], gram.C[1], gram.yy[1], W)
        result.update(held_before=held0 / gram.yy[1], held_after=held1 / gram.yy[1], held_refit=held1 / gram.yy[1])
        if held1 > held0:
            result.update(method="kept (held-out error higher)", held_after=held0 / gram.yy[1], fit_after=fit0 / yy)
            return result
    if info["method"] != "unchanged":
        set_augmented_weight(module, W)
    return result


@torch.no_grad()
def reconstruct(
    pruned: nn.Module,
    dense: nn.Module,
    calibration: Iterable[dict] | None,
    ridge: float = 1e-2,
    holdout: int = 8,
    sites: str = "pruned",
    target: str = "residual",
    tune_epochs: int = 0,
    tune_lr: float = 1e-3,
) -> dict:
    """Refit the output projections of `pruned` (in place) against `dense` on `calibration` batches; returns a summary
    (also appended to the pruning history in `config.compress`). See the module docstring."""
    cfg = ReconstructConfig(
        ridge=ridge, holdout=holdout, sites=sites, target=target, tune_epochs=tune_epochs, tune_lr=tune_lr
    )
    summary = refit_model(pruned, dense, calibration, cfg)
    get_record(pruned.config, create=True)["history"].append({"reconstruct": summary})
    return summary


@torch.no_grad()
def refit_model(
    pruned: nn.Module, dense: nn.Module, calibration: Iterable[dict] | None, cfg: ReconstructConfig
) -> dict:
    """`reconstruct` without writing the history (`prune` puts the summary into its own history entry)."""
    batches = list(calibration) if calibration is not None else []
    if not batches:
        raise CompressError(
            "calibration",
            "reconstruction needs calibration batches",
            "pass calibration data (CLI: --calibration FILE) or turn reconstruction off (--no-reconstruct)",
        )
    check_dense(pruned, dense)
    t0 = time.perf_counter()
    adapter, dense_adapter = get_adapter(pruned), get_adapter(dense)
    modes = pruned.training, dense.training
    pruned.eval()
    dense.eval()
    per_site: dict[str, dict] = {}
    tuned: dict[str, dict] = {}
    try:
        for stack in adapter.stacks(pruned):
            per_site.update(_reconstruct_stack(pruned, dense, adapter, dense_adapter, stack, batches, cfg, tuned))
    finally:
        pruned.train(modes[0])
        dense.train(modes[1])
    return _summarise(per_site, tuned, cfg, time.perf_counter() - t0)


def _reconstruct_stack(pruned, dense, adapter, dense_adapter, stack: str, batches, cfg, tuned: dict) -> dict[str, dict]:
    p_hidden, p_calls = _capture(pruned, stack, batches)
    d_hidden, d_calls = _capture(dense, stack, batches)
    # a Whisper encoder cut to a shorter audio window sees the first frames of the dense one's: targets are cut alike
    length = p_hidden[0].shape[1] if p_hidden[0].dim() == 3 and p_hidden[0].shape[1] < d_hidden[0].shape[1] else None
    d_layers = dense_adapter.stacks(dense)[stack]
    d_pos_of = {orig: pos for s, pos, orig, _ in iter_layers(dense, dense_adapter) if s == stack}
    d_next = 0  # dense layer whose input d_hidden holds
    per_site = {}
    layers = [(pos, orig, layer) for s, pos, orig, layer in iter_layers(pruned, adapter) if s == stack]
    for i, (pos, orig, layer) in enumerate(track(layers, description=f"reconstructing {stack}")):
        d_pos = d_pos_of[orig]
        while d_next < d_pos:  # dense layers dropped from the pruned model still advance the dense stream
            d_hidden = [c[d_next].run(d_layers[d_next], h) for c, h in zip(d_calls, d_hidden)]
            d_next += 1
        d_layer = d_layers[d_pos]
        p_sites = _sites(adapter, stack, pos, layer)
        d_sites = dict(zip([k for k, _ in p_sites], [m for _, m in _sites(dense_adapter, stack, d_pos, d_layer)]))
        todo = [
            (key, module)
            for key, module in p_sites
            if cfg.sites == "all" or in_features(module) < in_features(d_sites[key])
        ]
        wanted = d_sites if cfg.target == "residual" else {k: d_sites[k] for k, _ in todo}
        post = _post_norms(adapter, dense_adapter, layer, d_layer, p_sites) if cfg.target == "residual" else None
        norm_in: dict[str, list] = {}
        targets, d_out = (
            _dense_targets(d_layer, wanted, d_calls, d_pos, d_hidden, post[1] if post else {}, norm_in, length)
            if todo
            else ({}, None)
        )
        if d_out is None:
            d_out = [c[d_pos].run(d_layer, h) for c, h in zip(d_calls, d_hidden)]
        d_next = d_pos + 1
        residual = cfg.target == "residual" and not post and _is_residual(d_hidden, targets, d_out, length)
        if residual:  # match the dense residual stream itself; the last sublayer also stands in for dropped layers
            end = d_pos_of[layers[i + 1][1]] if i + 1 < len(layers) else len(d_layers)
            while d_next < end:
                d_out = [c[d_next].run(d_layers[d_next], h) for c, h in zip(d_calls, d_out)]
                d_next += 1
            targets = _residual_targets(d_hidden, targets, d_out, length, {k for k, _ in todo})
        if post:  # post-norm: match the dense norm's input (sublayer output + residual)
            targets = norm_in
        for key, module in todo:
            gram = Gram(in_features(module), out_features(module), module.bias is not None)
            before = [m for k, m in p_sites[: [k for k, _ in p_sites].index(key)]] if residual else None
            norm = post[0][key] if post else None
            _accumulate(layer, module, p_calls, pos, p_hidden, targets[key], batches, gram, cfg.holdout, before, norm)
            per_site[key] = _refit_site(gram, module, cfg.ridge)
            per_site[key]["target"] = "residual" if residual else "norm input" if post else "output"
        if cfg.tune_epochs and todo:  # only layers the cut touched (protected ones stay as they are)
            tuned[f"{stack}.{pos}"] = tune_layer(layer, p_calls, pos, p_hidden, d_out, batches, cfg, length)
        d_hidden = d_out
        p_hidden = [c[pos].run(layer, h) for c, h in zip(p_calls, p_hidden)]
    return per_site


def _tune_masks(batch: dict, y: torch.Tensor, holdout: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fitted, held-out) float masks over y's (B, T) tokens: padding excluded, every holdout-th token held out
    (the same tokens as the refit's)."""
    real = torch.ones(y.shape[:-1], dtype=torch.bool)
    m = _token_mask(batch, y)
    if m is not None:
        real = m.reshape(real.shape)
    held = torch.zeros_like(real)
    if holdout:
        held = _held_out(real.numel(), holdout).reshape(real.shape)
    return (real & ~held).to(y.device, y.dtype), (real & held).to(y.device, y.dtype)


def tune_layer(
    layer: nn.Module, calls, pos: int, hidden, targets, batches, cfg: ReconstructConfig, length=None
) -> dict:
    """Block reconstruction (as BRECQ 2021 does for quantization, BESA 2024 for pruning): after the closed-form refit,
    `cfg.tune_epochs` passes of Adam over the calibration batches on all of the pruned layer's weights, so that its
    output on the pruned model's inputs matches the dense layer's output (`targets`; the dense stream at the next
    kept layer where layers were dropped). The loss is the squared error over the fitted tokens relative to the
    target's energy; the tuned weights are kept only if the error on the held-out tokens fell, else the layer is
    restored. Deterministic for a given machine (fixed batch order)."""

    def error(i: int, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = calls[i][pos].run(layer, hidden[i])
        t = targets[i] if length is None or targets[i].dim() != 3 else targets[i][:, :length]
        return ((y - t).pow(2).sum(-1) * mask).sum(), (t.pow(2).sum(-1) * mask).sum()

    masks = [_tune_masks(b, h, cfg.holdout) for b, h in zip(batches, hidden)]
    check = 1 if cfg.holdout else 0  # without held-out tokens the fitted error decides

    @torch.no_grad()
    def rel_error() -> float:
        e = [error(i, m[check]) for i, m in enumerate(masks)]
        return float(sum(x for x, _ in e)) / max(float(sum(r for _, r in e)), 1e-30)

    before = rel_error()
    saved = {k: v.detach().clone() for k, v in layer.state_dict().items()}
    params = [p for p in layer.parameters() if p.is_floating_point()]
    flags = [p.requires_grad for p in params]
    opt = torch.optim.Adam(params, lr=cfg.tune_lr)
    order = torch.Generator().manual_seed(0)
    try:
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            for _ in range(cfg.tune_epochs):
                for i in torch.randperm(len(batches), generator=order).tolist():
                    err, energy = error(i, masks[i][0])
                    if not energy > 0:
                        continue
                    opt.zero_grad(set_to_none=True)
                    (err / energy).backward()
                    opt.step()
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
            p.grad = None
    after = rel_error()
    kept = not after < before or not all(torch.isfinite(p).all() for p in params)
    if kept:
        layer.load_state_dict(saved)
    return {"error_before": before, "error_after": before if kept else after, "kept_untuned": kept}


def _post_norms(adapter, dense_adapter, layer, d_layer, p_sites) -> tuple[dict, dict] | None:
    """({key: pruned norm}, {key: dense norm}) when the adapter names a post-norm for every sublayer, else None."""
    pn, dn = adapter.post_norms(layer), dense_adapter.post_norms(d_layer)
    roles = {key: key.rsplit(".", 1)[1] for key, _ in p_sites}
    if not pn or not all(r in pn and r in dn for r in roles.values()):
        return None
    return {k: pn[r] for k, r in roles.items()}, {k: dn[r] for k, r in roles.items()}


def _dense_targets(d_layer, modules: dict[str, nn.Module], calls, pos, hidden, norms=None, norm_in=None, length=None):
    """Outputs of the dense layer's output projections, per batch ({key: [(N, D) per batch]}), and the layer's
    outputs (one per batch). With `norms` ({key: norm module}), also the inputs of those norms into `norm_in`."""
    out: dict[str, list] = {k: [] for k in modules}
    handles = [
        m.register_forward_hook(lambda mod, a, y, key=key: out[key].append(_flat(y, length)))
        for key, m in modules.items()
    ]
    for key, norm in (norms or {}).items():
        norm_in[key] = []
        handles.append(norm.register_forward_pre_hook(lambda mod, a, key=key: norm_in[key].append(_flat(a[0], length))))
    try:
        layer_out = [c[pos].run(d_layer, h) for c, h in zip(calls, hidden)]
    finally:
        for h in handles:
            h.remove()
    return out, layer_out


def _is_residual(hidden, outputs: dict[str, list], layer_out, length=None) -> bool:
    """Whether layer output == layer input + the sum of its sublayers' projections (pre-norm blocks: Llama, GPT-2,
    ViT, Whisper), checked on the calibration batches; post-norm blocks (BERT) fail it and keep output targets."""
    for b, (h, y) in enumerate(zip(hidden, layer_out)):
        total = _flat(h, length).double() + sum(o[b].double() for o in outputs.values())
        if not torch.allclose(total, _flat(y, length).double(), rtol=1e-4, atol=1e-4 * float(total.abs().max())):
            return False
    return True


def _residual_targets(hidden, outputs: dict[str, list], stream_end, length=None, only=None) -> dict[str, list]:
    """Per sublayer (of `only`, when given: the ones being refit): the dense residual stream right after it (the
    last one: the dense stream at the next kept layer); `_accumulate` subtracts the pruned stream before the
    sublayer."""
    keys, targets = list(outputs), {}
    for j, key in enumerate(keys):
        if only is not None and key not in only:
            continue
        if j == len(keys) - 1:
            targets[key] = [_flat(e, length) for e in stream_end]
        else:
            targets[key] = [_flat(h, length) + sum(outputs[k][b] for k in keys[: j + 1]) for b, h in enumerate(hidden)]
    return targets


def _accumulate(
    layer, module, calls, pos, hidden, targets, batches, gram: Gram, holdout: int, before=None, norm=None
) -> None:
    """Run the pruned layer up to `module` on every batch and add [x 1]ᵀ[x 1], [x 1]ᵀY to the Gram sums. With
    `before` (residual targets) Y = target - (layer input + outputs of the sublayers `before` this one); with `norm`
    (post-norm targets) Y = target - (norm input - module output), i.e. minus the residual branch."""
    seen: list[torch.Tensor] = []
    earlier: list[torch.Tensor] = []
    own: list[torch.Tensor] = []

    def pre(mod, args):
        seen.append(args[0])
        if norm is None:
            raise StopForward

    def at_norm(mod, args):
        earlier.append(_flat(args[0]))
        raise StopForward

    handles = [module.register_forward_pre_hook(pre)]
    if norm is not None:
        handles.append(module.register_forward_hook(lambda mod, a, y: own.append(_flat(y))))
        handles.append(norm.register_forward_pre_hook(at_norm))
    for m in before or []:
        handles.append(m.register_forward_hook(lambda mod, a, y: earlier.append(_flat(y))))
    try:
        for c, h, y, batch in zip(calls, hidden, targets, batches):
            seen.clear()
            earlier.clear()
            own.clear()
            try:
                c[pos].run(layer, h)
            except StopForward:
                pass
            x = seen[0]
            if before is not None:
                y = y - _flat(h) - sum(earlier, torch.zeros(()))
            elif norm is not None:
                y = y - (earlier[0] - own[0])
            keep = _token_mask(batch, x)
            xf = _flat(x)
            held = None
            if holdout:
                held = _held_out(xf.shape[0], holdout)
            if keep is not None:
                xf, y = xf[keep], y[keep]
                held = held[keep] if held is not None else None
            gram.add(xf, y, held)
    finally:
        for handle in handles:
            handle.remove()


def _rounded(result: dict) -> dict:
    return {n: (round(v, 6) if isinstance(v, float) else v) for n, v in result.items()}


def _summarise(per_site: dict[str, dict], tuned: dict[str, dict], cfg: ReconstructConfig, seconds: float) -> dict:
    refit = [k for k, r in per_site.items() if r["method"] in ("cholesky", "cholesky+", "lstsq")]
    kept = [k for k, r in per_site.items() if r["method"].startswith("kept")]
    fallback = [k for k, r in per_site.items() if r["method"] in ("cholesky+", "lstsq", "unchanged")]

    def mean(name):
        vals = [r[name] for r in per_site.values() if name in r]
        return round(sum(vals) / len(vals), 6) if vals else None

    ratios = {k: r["tokens_per_column"] for k, r in per_site.items()}
    thin = min(ratios, key=ratios.get) if ratios else None
    if thin is not None and ratios[thin] < MIN_TOKENS_PER_COLUMN:
        warnings.warn(
            f"reconstruct: {thin} was refit from {ratios[thin]:.1f} calibration tokens per input column (fewer than "
            f"{MIN_TOKENS_PER_COLUMN}; {len(kept)} of {len(per_site)} sublayers kept their unrefit weights): the refit "
            "fits the calibration data more than the model; more calibration examples (recipe data.calibration_size, "
            "CLI --samples) usually repair better",
            stacklevel=4,
        )
    return {
        "ridge": cfg.ridge,
        "holdout": cfg.holdout,
        "min_tokens_per_column": round(ratios[thin], 1) if thin is not None else None,
        "sites": cfg.sites,
        "target": cfg.target,
        "sublayers": len(per_site),
        "refit": len(refit),
        "kept_unrefit": kept,  # held-out error was higher with the refit
        "fallback": fallback,  # larger ridge or lstsq was needed (or no finite solution: left unchanged)
        "rel_error_before": mean("held_before") if cfg.holdout else mean("fit_before"),
        "rel_error_after": mean("held_after") if cfg.holdout else mean("fit_after"),
        "per_sublayer": {k: _rounded(r) for k, r in per_site.items()},
        "tune_epochs": cfg.tune_epochs,
        "tune_lr": cfg.tune_lr,
        "tuned_layers": len([k for k, r in tuned.items() if not r["kept_untuned"]]),
        "kept_untuned": [k for k, r in tuned.items() if r["kept_untuned"]],  # tuning did not lower held-out error
        "per_layer_tune": {k: _rounded(r) for k, r in tuned.items()},
        "seconds": round(seconds, 3),
    }
