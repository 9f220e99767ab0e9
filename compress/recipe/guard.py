"""The fidelity guard in a recipe: after each stage that changes weights, its model is compared with the stage's
input on a few calibration examples (`compress.evaluate.fidelity`); the numbers go into the stage's summary
(`stage.json`, report.json) and the report's "Fidelity guard" table, and a result beyond the limits prints one
warning line. The quantize stage also falls back to a safer configuration (`compress.quantize.guard`).

Stages call `check(run, kind, before, after, spec)`; the `guard:` block of a stage (`GuardSpec`) sets the limits.
Stages being added (sparsify, export) call the same function with their kind.
"""

from __future__ import annotations

from ..evaluate import fidelity
from .data import split
from .guard_spec import GuardSpec

BATCH = 8  # examples per comparison batch


def batches(run, spec: GuardSpec) -> list[dict]:
    """The first `spec.samples` examples of the calibration set (the head of the training split)."""
    d = run.recipe.data
    return run.task.batches(split(run.rows, d.train_split, min(spec.samples, d.calibration_size)), BATCH)


def limits(kind: str, spec: GuardSpec) -> fidelity.Limits:
    return fidelity.limits_for(
        kind,
        max_ppl_ratio=spec.max_ppl_ratio,
        max_kl=spec.max_kl,
        min_agreement=spec.min_agreement,
        min_cosine=spec.min_cosine,
    )


def warn(run, message: str | None) -> None:
    if message:
        run.console.print(f"  warning: {message}", style="yellow", markup=False, highlight=False)


def check(run, kind: str, before, after, spec: GuardSpec | None = None) -> dict | None:
    """Compare `after` with `before` for a stage of `kind`; returns the summary entry (None when disabled)."""
    spec = spec or GuardSpec()
    if not spec.enabled:
        return None
    result = fidelity.guard(kind, before, after, batches(run, spec), limits(kind, spec))
    warn(run, result.get("warning"))
    return result


def quantize(run, stage) -> dict:
    """The quantize stage: quantize the run's model under the guard (see `compress.quantize.guard`)."""
    from ..quantize import quantize as plain
    from ..quantize.guard import quantize_with_guard

    spec = stage.guard
    if not spec.enabled:
        run.model = plain(run.model, method=stage.method, calibration=batches(run, spec), **stage.options)
        return {"method": stage.method, **stage.options}
    run.model, summary = quantize_with_guard(
        run.model, stage.method, stage.options, batches(run, spec), limits("quantize", spec), spec.fallback
    )
    if summary["fallback"]:
        run.console.print(f"  fidelity guard: {summary['fallback']}", style="yellow", markup=False, highlight=False)
    if not summary["fidelity"]["passed"]:
        warn(run, summary["fidelity"].get("warning"))
    return {"method": stage.method, **stage.options, **summary}


__all__ = ["GuardSpec", "batches", "check", "limits", "quantize"]
