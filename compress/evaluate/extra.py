"""Metrics from the `evaluate` package, added to a recipe's evaluate stage by name (`metrics: [...]`):

- `evaluate:NAME` loads a metric from the Hugging Face Hub (needs a network; the first load caches it);
- a folder path (`./my_metric`, holding `my_metric.py` with an `evaluate.Metric`) loads offline.

A metric gets the task's predictions and references (class ids for classification, transcripts for speech
recognition) and every number it returns becomes a column `<metric>.<key>`. Note on local metric files: evaluate's
dependency scanner reads `import a, b` as one module named "a, b": write one import per line.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CompressError

HUB_PREFIX = "evaluate:"


def check_spec(spec: str) -> str:
    """Syntax only (no loading): `evaluate:NAME` or a path."""
    if spec.startswith(HUB_PREFIX) and spec[len(HUB_PREFIX) :].strip():
        return spec
    if "/" in spec or spec.startswith(".") or Path(spec).is_dir():
        return spec
    raise ValueError(f"metric {spec!r}: write `evaluate:{spec}` for a Hub metric or a folder path like ./{spec}")


def metric_name(spec: str) -> str:
    return spec[len(HUB_PREFIX) :] if spec.startswith(HUB_PREFIX) else Path(spec).name


def load_metric(spec: str, field: str = "metrics"):
    """An `evaluate` metric module, or one line saying why it cannot be had."""
    try:
        import evaluate
    except ImportError:
        raise CompressError(field, "the `evaluate` package is not installed", "pip install evaluate==0.4.6") from None
    if spec.startswith(HUB_PREFIX):
        name = spec[len(HUB_PREFIX) :]
        try:
            return evaluate.load(name)
        except Exception as e:  # offline: FileNotFoundError; network: ConnectionError and friends
            raise CompressError(
                field,
                f"cannot load metric {name!r} from the Hugging Face Hub ({type(e).__name__})",
                "it needs a network the first time; offline, give a local metric folder (./my_metric/my_metric.py)",
            ) from None
    path = Path(spec)
    if not (path / f"{path.name}.py").is_file():
        raise CompressError(
            field, f"{spec} is not a metric folder (no {path.name}/{path.name}.py)", "see evaluate's `Metric` docs"
        )
    try:
        return evaluate.load(str(path.resolve()))
    except Exception as e:  # an error in the user's metric script
        raise CompressError(field, f"metric folder {spec} does not load ({type(e).__name__}: {str(e)[:160]})") from None


def score(metrics: dict, predictions: list, references: list) -> dict[str, float]:
    """{`<metric>.<key>`: number} of every metric on the predictions."""
    out = {}
    for name, metric in metrics.items():
        result = metric.compute(predictions=predictions, references=references) or {}
        for key, value in result.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{name}.{key}"] = float(value)
            elif hasattr(value, "item") and getattr(value, "size", 1) == 1:  # numpy scalars
                out[f"{name}.{key}"] = float(value.item())
    return out
