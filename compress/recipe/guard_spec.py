"""The `guard:` block of a weight-changing stage (prune, quantize; sparsify and export may take it too): how the
fidelity guard compares the stage's model with its input, and its limits (unset = the stage kind's defaults in
`compress.evaluate.fidelity.LIMITS`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GuardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(True, description="compare the stage's model with its input on calibration examples")
    samples: int = Field(32, gt=0, description="calibration examples compared (at most data.calibration_size)")
    max_ppl_ratio: float | None = Field(
        None, gt=1, description="causal LMs: perplexity after / before (default 1.10 quantize, 2.0 prune)"
    )
    max_kl: float | None = Field(
        None, gt=0, description="causal LMs, classifiers: KL(before || after) in nats (default 0.1 quantize, 1.0 prune)"
    )
    min_agreement: float | None = Field(
        None, ge=0, le=1, description="classifiers, seq2seq: same top-1 prediction (default 0.9 quantize, 0.75 prune)"
    )
    min_cosine: float | None = Field(
        None, ge=-1, le=1, description="encoders: cosine of mean-pooled outputs (default 0.99 quantize, 0.75 prune)"
    )
    fallback: bool = Field(
        True,
        description="quantize: beyond the limits, try safer settings (int8-dynamic per-tensor -> per-token, then the "
        "worst layers kept in float) and keep the first within them",
    )
