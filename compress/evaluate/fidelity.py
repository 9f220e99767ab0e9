"""Fidelity guard: how far a stage moved a model from its own input, measured on a few calibration batches.

    from compress.evaluate import fidelity
    numbers = fidelity.compare(before, after, batches)  # {"kind": "causal-lm", "ppl_ratio": 1.04, "kl": 0.01, ...}
    result = fidelity.guard("quantize", before, after, batches)  # numbers + limits + passed (+ a one-line warning)

What is compared depends on the model's output:
- causal-lm (decoder-only LMs): next-token KL(before || after) in nats per token, the perplexity ratio after / before
  on the batches' own next tokens, and top-1 agreement;
- logits (classifiers, encoder-decoders such as Whisper, token classifiers): top-1 agreement, KL of the output
  distributions, cosine of the logits;
- hidden (headless encoders, sentence embeddings): cosine of the mean-pooled last hidden states.

Limits are per stage kind (`LIMITS`): quantization and export should be nearly lossless; pruning before
distillation is not, so its limits only catch a model that was broken rather than slimmed. Every stage that
changes weights (prune, quantize; sparsify and export call the same `guard`) records the result in its summary and
the run's report, and a result beyond the limits warns in one line. The quantize stage goes further and falls back to
a safer configuration (`compress.quantize.guard`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn


@dataclass(frozen=True)
class Limits:
    """What a stage may change before the guard speaks (one value per kind of output)."""

    max_ppl_ratio: float = 1.10  # causal LMs: perplexity after / before on the calibration batches
    max_kl: float = 0.10  # causal LMs and logits: mean KL(before || after) per token / example, nats
    min_agreement: float = 0.90  # logits: share of the same top-1 prediction (32 examples: 3 may flip)
    min_cosine: float = 0.99  # hidden: cosine of mean-pooled last hidden states


# quantization and export should not change what the model computes; pruning before distillation will, a lot
LIMITS = {
    "quantize": Limits(),
    "export": Limits(),
    "prune": Limits(max_ppl_ratio=2.0, max_kl=1.0, min_agreement=0.75, min_cosine=0.75),
    "sparsify": Limits(max_ppl_ratio=2.0, max_kl=1.0, min_agreement=0.75, min_cosine=0.75),
}
HINTS = {
    "prune": "heavier than the guard expects; distillation may recover it, else prune less",
    "sparsify": "heavier than the guard expects; distillation may recover it, else sparsify less",
}


def limits_for(stage: str, **overrides) -> Limits:
    """The stage kind's default limits with the given fields replaced (None values are ignored)."""
    base = LIMITS.get(stage, Limits())
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def kind_of(model: nn.Module) -> str:
    if getattr(model.config, "is_encoder_decoder", False):
        return "logits"
    names = [c.__name__ for c in type(model).__mro__]
    if any(n.endswith(("ForCausalLM", "LMHeadModel")) for n in names):
        return "causal-lm"
    return "logits-or-hidden"


def _inputs(model: nn.Module, batch: dict) -> dict:
    """Model inputs of a calibration batch: labels only where an encoder-decoder builds its decoder inputs from them."""
    keep_labels = getattr(model.config, "is_encoder_decoder", False) and "decoder_input_ids" not in batch
    return {k: v for k, v in batch.items() if k != "labels" or keep_labels}


def _output(out) -> tuple[str, torch.Tensor]:
    logits = getattr(out, "logits", None)
    if logits is not None:
        return "logits", logits.float()
    hidden = getattr(out, "last_hidden_state", None)
    return "hidden", (hidden if hidden is not None else out[0]).float()


class _Totals:
    """Running sums of one candidate's numbers over the batches."""

    def __init__(self):
        self.kl = self.agree = self.cos = self.nll = self.ref_nll = 0.0
        self.n = self.tokens = 0


def _token_terms(t: _Totals, ref: torch.Tensor, out: torch.Tensor, mask: torch.Tensor, chunk: int = 256) -> None:
    """KL, top-1 agreement and logit cosine over the positions in `mask` of (B, T, V) logits (or (B, V) logits with a
    (B,) mask), a chunk of positions at a time (LM vocabularies make full-size temporaries large)."""
    ref, out = ref[mask], out[mask]  # (N, V)
    for i in range(0, ref.shape[0], chunk):
        r, o = ref[i : i + chunk], out[i : i + chunk]
        lp_ref, lp_out = r.log_softmax(-1), o.log_softmax(-1)
        t.kl += float((lp_ref.exp() * (lp_ref - lp_out)).sum())
        t.agree += float((r.argmax(-1) == o.argmax(-1)).sum())
        t.cos += float(nn.functional.cosine_similarity(r, o, dim=-1).sum())
    t.n += ref.shape[0]


def _next_token_nll(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> float:
    nll = nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none"
    )
    return float(nll[mask[:, 1:].reshape(-1)].sum())


@torch.inference_mode()
def compare_many(before: nn.Module, candidates: dict[str, nn.Module], batches: list[dict]) -> dict[str, dict]:
    """{name: numbers} for each candidate against `before`, running `before` once per batch. A candidate may be any
    callable taking the model's inputs as keywords and returning an output with `.logits` / `.last_hidden_state`
    (or a tuple whose first item is the output tensor): an exported model's session wrapped so, for instance."""
    from .embeddings import mean_pool

    kind = kind_of(before)
    for m in (before, *candidates.values()):
        if hasattr(m, "eval"):
            m.eval()
    totals = {name: _Totals() for name in candidates}
    out_kind = None
    for b in batches:
        x = _inputs(before, b)
        out_kind, ref = _output(before(**x))
        mask = b.get("attention_mask")
        for name, model in candidates.items():
            _, out = _output(model(**x))
            t = totals[name]
            if kind == "causal-lm":
                ids = b["input_ids"]
                m = (mask if mask is not None else torch.ones_like(ids)).bool()
                _token_terms(t, ref, out, m)
                t.ref_nll += _next_token_nll(ref, ids, m)
                t.nll += _next_token_nll(out, ids, m)
                t.tokens += int(m[:, 1:].sum())
            elif out_kind == "logits" and ref.dim() == 3:  # seq2seq decoders, token classifiers
                labels = b.get("labels")
                m = labels != -100 if labels is not None and labels.shape == ref.shape[:2] else None
                _token_terms(t, ref, out, m if m is not None else torch.ones(ref.shape[:2], dtype=torch.bool))
            elif out_kind == "logits":  # (B, classes)
                _token_terms(t, ref, out, torch.ones(ref.shape[0], dtype=torch.bool))
            else:  # hidden states: mean-pooled cosine
                am = mask if mask is not None and mask.shape == ref.shape[:2] else torch.ones(ref.shape[:2])
                t.cos += float(nn.functional.cosine_similarity(mean_pool(ref, am), mean_pool(out, am), dim=-1).sum())
                t.n += ref.shape[0]
    examples = sum(next(iter(b.values())).shape[0] for b in batches)
    result = {}
    for name, t in totals.items():
        n = max(t.n, 1)
        if kind == "causal-lm":
            numbers = {
                "kind": "causal-lm",
                "ppl_ratio": math.exp((t.nll - t.ref_nll) / max(t.tokens, 1)),
                "kl": t.kl / n,
                "agreement": t.agree / n,
            }
        elif out_kind == "logits":
            numbers = {"kind": "logits", "agreement": t.agree / n, "kl": t.kl / n, "cosine": t.cos / n}
        else:
            numbers = {"kind": "hidden", "cosine": t.cos / n}
        result[name] = {**{k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in numbers.items()},
                        "examples": examples}  # fmt: skip
    return result


def compare(before: nn.Module, after: nn.Module, batches: list[dict]) -> dict:
    """Numbers saying how far `after` is from `before` on `batches` (see the module docstring)."""
    return compare_many(before, {"after": after}, batches)["after"]


def problems(numbers: dict, limits: Limits) -> list[str]:
    """What in `numbers` is beyond `limits`, as short phrases ([] when all is within)."""
    out = []
    if "ppl_ratio" in numbers and numbers["ppl_ratio"] > limits.max_ppl_ratio:
        out.append(f"perplexity x{numbers['ppl_ratio']:.3f} (limit x{limits.max_ppl_ratio:g})")
    if "kl" in numbers and numbers["kl"] > limits.max_kl:
        out.append(f"KL {numbers['kl']:.3g} nats/token (limit {limits.max_kl:g})")
    if numbers.get("kind") == "logits" and numbers["agreement"] < limits.min_agreement:
        out.append(f"top-1 agreement {numbers['agreement']:.3f} (limit {limits.min_agreement:g})")
    if numbers.get("kind") == "hidden" and numbers["cosine"] < limits.min_cosine:
        out.append(f"cosine {numbers['cosine']:.4f} (limit {limits.min_cosine:g})")
    return out


def damage(numbers: dict) -> float:
    """One number to rank configurations of the same model by (lower is closer to the input)."""
    if numbers["kind"] == "hidden":
        return 1 - numbers["cosine"]
    if numbers["kind"] == "causal-lm":
        return numbers["kl"]
    return numbers["kl"] + (1 - numbers["agreement"])


def describe(numbers: dict) -> str:
    """The numbers in a few words, e.g. 'perplexity x1.04, KL 0.012, top-1 agreement 0.973'."""
    parts = []
    if "ppl_ratio" in numbers:
        parts.append(f"perplexity x{numbers['ppl_ratio']:.3f}")
    if "kl" in numbers:
        parts.append(f"KL {numbers['kl']:.3g}")
    if "agreement" in numbers:
        parts.append(f"top-1 agreement {numbers['agreement']:.3f}")
    if numbers.get("kind") == "hidden":
        parts.append(f"cosine {numbers['cosine']:.4f}")
    return ", ".join(parts)


def verdict(stage: str, numbers: dict, limits: Limits) -> dict:
    """`numbers` with the limits and whether they hold; a `warning` line when they do not."""
    found = problems(numbers, limits)
    out = {**numbers, "limits": asdict(limits), "passed": not found}
    if found:
        hint = HINTS.get(stage, "the model no longer computes what its input did")
        out["warning"] = (
            f"{stage}: the model moved away from its input on {numbers['examples']} calibration examples: "
            f"{'; '.join(found)}; {hint}"
        )
    return out


def guard(stage: str, before: nn.Module, after: nn.Module, batches: list[dict], limits: Limits | None = None) -> dict:
    """Compare `after` with `before` and judge it against the stage's limits (see `verdict`). The hook every stage
    that changes weights calls (prune, quantize, sparsify, export)."""
    return verdict(stage, compare(before, after, batches), limits or limits_for(stage))


def report_lines(results: list[dict]) -> list[str]:
    """Markdown lines for a run's report: each guarded stage's numbers, verdict and any fallback it took."""
    rows = [(r["stage"], (r.get("summary") or {})) for r in results]
    rows = [(name, s) for name, s in rows if isinstance(s.get("fidelity"), dict)]
    if not rows:
        return []
    md = [
        "",
        "## Fidelity guard (each stage's model against its own input, on calibration examples)",
        "",
        "| stage | compared | result | note |",
        "|---|---|---|---|",
    ]
    for name, s in rows:
        f = s["fidelity"]
        note = s.get("fallback") or ("within limits" if f.get("passed") else f.get("warning", ""))
        auto = s.get("granularity_auto")
        if auto:
            note += f"; granularity auto: {auto['chosen']} ({auto['reason']})"
        status = "ok" if f.get("passed") else "**beyond limits**"
        md.append(f"| {name} | {f.get('examples')} examples | {describe(f)}: {status} | {note.replace('|', '/')} |")
    return md
