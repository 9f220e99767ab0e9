"""The `export` recipe stage: the current model, and the dense model the same way, exported for a runtime (ONNX).

    - export: {format: onnx, int8: true}

    DIR/05-export/model/    the run's model so far, exported (verified against PyTorch; see compress.export)
    DIR/05-export/dense/    the dense model exported the same way: what a user gets without compressing
    DIR/05-export/stage.json

After a `quantize` stage the export starts from the float model that stage quantized (ONNX Runtime does its own
int8). A later `evaluate` stage runs both graphs in ONNX Runtime and puts them beside the PyTorch models: quality,
size of the graph file, latency measured side by side with the dense PyTorch model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import io

MODEL_KINDS = ("train", "prune", "distill", "quantize")  # stages that write DIR/NN-kind/model


class ExportStage(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    type: Literal["export"] = "export"
    format: str = Field("onnx", description="runtime format: onnx (encoders; runs in ONNX Runtime)")
    int8: bool = Field(False, description="quantize the graph with ONNX Runtime's dynamic int8 (weights, embeddings)")
    tolerance: float = Field(
        1e-4, gt=0, description="refuse a float graph whose outputs differ from PyTorch by more (× max |output|)"
    )
    dense: bool = Field(True, description="also export the dense model the same way (evaluated side by side)")

    @model_validator(mode="after")
    def _check(self):
        from ..export import check_format, require

        check_format(self.format)
        require(self.format)  # a missing extra fails the recipe before anything runs
        return self


def _float_source(run) -> tuple[object, str, str]:
    """(float model, its folder, its name): the current model, or the one a quantize stage started from."""
    made = [r for r in run.results if r["kind"] in MODEL_KINDS]
    if not made:
        return run.model, str(run.model_path), "dense"
    if made[-1]["kind"] != "quantize":
        return run.model, str(Path(made[-1]["dir"]) / "model"), made[-1]["stage"]
    floats = [r for r in made if r["kind"] != "quantize"]
    if not floats:  # quantized straight from the dense model
        return run.dense(), str(run.model_path), "dense"
    folder = Path(floats[-1]["dir"]) / "model"
    return io.load(folder), str(folder), floats[-1]["stage"]


def run_export(run, stage: ExportStage, work: Path) -> dict:
    """Export into `work` (the runner moves its contents into the stage folder); return the stage summary."""
    from ..export import export

    shutil.rmtree(work, ignore_errors=True)  # left by an interrupted run
    work.mkdir(parents=True)
    calibration = run.calibration()[:4]
    model, folder, name = _float_source(run)
    todo = [("model", model, folder, name)]
    if stage.dense:
        todo.append(("dense", run.dense(), str(run.model_path), "dense"))
    summary = {"format": stage.format, "int8": stage.int8}
    for sub, net, source, label in todo:
        info = export(
            net,
            work / sub,
            format=stage.format,
            int8=stage.int8,
            tokenizer=run.processor,
            calibration=calibration,
            tolerance=stage.tolerance,
            source=source,
        )
        v = info["verification"]
        summary[sub] = {
            "from": label,
            "max_abs_diff": v["max_abs_diff"],
            **({"int8_max_abs_diff": v["int8"]["max_abs_diff"]} if "int8" in v else {}),
            "size_bytes": info["size_bytes"]["onnx"],
        }
    return summary


def exported_candidates(results: list[dict]) -> dict[str, Path]:
    """Evaluation rows for every export stage so far: the dense graph first, then the run's model."""
    out = {}
    for r in results:
        if r["kind"] != "export":
            continue
        label = _label(Path(r["dir"]) / "model")
        if (Path(r["dir"]) / "dense").exists():
            out[f"dense ({label})"] = Path(r["dir"]) / "dense"
        out[f"{r['stage']} ({label})"] = Path(r["dir"]) / "model"
    return out


def _label(folder: Path) -> str:
    info = json.loads((folder / "export.json").read_text())
    return f"ORT {'int8' if info.get('int8') else 'fp32'}"


def exported_stats(task, folder: Path) -> dict:
    """Parameters and MACs of the model the graph was made from (loaded from its source folder), the graph's bytes."""
    info = json.loads((Path(folder) / "export.json").read_text())
    source, macs = info.get("source"), None
    if source and Path(source, "config.json").exists():
        try:
            macs = task.macs(io.load(source))
        except Exception:  # no estimate rather than a wrong one (as for quantized PyTorch models)
            macs = None
    return {"params": info["params"], "size_bytes": info["size_bytes"]["onnx"], "macs": macs, "peak_memory_mb": None}
