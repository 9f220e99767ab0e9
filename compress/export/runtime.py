"""Run an exported model in ONNX Runtime behind the PyTorch call convention, so evaluation code scores it unchanged.

    model = load_exported("out/onnx")            # a folder written by compress.export(..., format="onnx")
    logits = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits

`OrtModel(**inputs)` takes the tensors a tokenizer / processor returns (extra keys such as `labels` are ignored, a
missing `token_type_ids` is zeros), runs the session and returns a transformers `ModelOutput` with `logits` or
`last_hidden_state` (torch tensors), so `out[0]` and `out.logits` work as with the PyTorch model.

Sessions use `torch.get_num_threads()` intra-op threads and `session.intra_op.allow_spinning = 0`: ONNX Runtime's
spinning threads otherwise keep the cores busy between calls and slow down PyTorch models timed beside it. They also
leave out ONNX Runtime 1.32's `SkipLayerNormFusion`: on this project's AMD EPYC its fused `SkipLayerNormalization`
kernel was several times slower than the `Add` + `LayerNormalization` it replaces (ORT's profiler, MiniLM at batch 1);
the "all fusions" rows of benchmarks/export (scripts/bench_export.py) time the same graphs with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput

from ..errors import CompressError

_NUMPY = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32}


SLOW_FUSIONS = ["SkipLayerNormFusion"]  # see the module docstring


def session(file: str | Path, threads: int | None = None, disabled: list[str] | None = None):
    """An `onnxruntime.InferenceSession` on the CPU that shares the cores politely (no spinning between calls),
    without the graph fusions in `disabled` (default `SLOW_FUSIONS`)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or torch.get_num_threads()
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3  # errors only: constant-folding notes are not the user's concern
    disabled = SLOW_FUSIONS if disabled is None else disabled
    return ort.InferenceSession(str(file), so, providers=["CPUExecutionProvider"], disabled_optimizers=disabled)


def feed(sess, inputs: dict) -> dict[str, np.ndarray]:
    """The session's inputs from a dict of tensors / arrays: extra keys dropped, `token_type_ids` zeros if absent."""
    out = {}
    for spec in sess.get_inputs():
        value = inputs.get(spec.name)
        if value is None and spec.name == "token_type_ids" and inputs.get("input_ids") is not None:
            value = torch.zeros_like(torch.as_tensor(inputs["input_ids"]))
        if value is None:
            raise CompressError("inputs", f"the exported model needs `{spec.name}`", f"pass {spec.name}=...")
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        out[spec.name] = array.astype(_NUMPY.get(spec.type, array.dtype), copy=False)
    return out


class OrtModel:
    """An exported folder in ONNX Runtime, called like the PyTorch model it came from (see the module docstring)."""

    def __init__(self, folder: str | Path, threads: int | None = None, disabled: list[str] | None = None):
        folder = Path(folder)
        info_file = folder / "export.json"
        if not info_file.exists():
            raise CompressError("model", f"{folder} has no export.json", "give a folder written by compress export")
        self.folder, self.info = folder, json.loads(info_file.read_text())
        self.session = session(folder / self.info["file"], threads, disabled)
        self.output_name = self.info["output"]
        self.config = transformers.AutoConfig.from_pretrained(folder)

    def eval(self) -> OrtModel:  # the evaluation helpers call it on every model
        return self

    def __call__(self, **inputs):
        (out,) = self.session.run([self.output_name], feed(self.session, inputs))
        tensor = torch.from_numpy(out)
        if self.output_name == "logits":
            return SequenceClassifierOutput(logits=tensor)
        return BaseModelOutput(last_hidden_state=tensor)

    def __repr__(self) -> str:
        return f"OrtModel({self.folder}, int8={self.info.get('int8')})"


def load_exported(folder: str | Path, threads: int | None = None, disabled: list[str] | None = None) -> OrtModel:
    """The exported model in `folder`, ready to call (needs the `compress[onnx]` extra); `disabled`: ONNX Runtime
    graph fusions left out (default `SLOW_FUSIONS`, `[]` for all of them)."""
    from .formats import require

    require("onnx")
    return OrtModel(folder, threads, disabled)


def is_exported(folder: str | Path) -> bool:
    return (Path(folder) / "export.json").exists()
