"""ONNX export of the encoder families, verified against PyTorch, optionally int8 (ONNX Runtime dynamic quantization).

    DIR/model.onnx      the graph: inputs with dynamic `batch` (and `sequence`) axes, one output `logits` (models with
                        a task head) or `last_hidden_state` (bare encoders); int8 when asked
    DIR/config.json     the model's config and the tokenizer / processor files (Optimum's ORTModel layout)
    DIR/export.json     source, opset, versions, inputs, output, the float graph's largest difference from PyTorch and
                        the int8 one's, file sizes

The graph comes from `torch.onnx.export(dynamo=True)` with `torch.export.Dim` batch / sequence axes: the TorchScript
exporter (`dynamo=False`) gives wrong logits for transformers-5 BERT. Opset 23 by default: there the exporter writes
each scaled-dot-product attention as one ONNX `Attention` node, where older opsets spell it out in ~15 nodes (the
pruned demo model: 337 nodes instead of 434). Per-layer widths (global pruning) need nothing special: every layer's
projections are ordinary Linear layers of their own shapes, and MPNet's relative-position bias is sliced per layer by
a pre-hook that the exporter traces. int8 is `onnxruntime.quantization.quantize_dynamic` with QInt8 weights: MatMul
weights and the embedding tables (Gather), activations quantized per call; the `Attention` nodes stay float (the
quantizer would take them for Microsoft's `Attention` op of the same name and write an invalid graph).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import inspect
import json
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..version import __version__
from ..errors import CompressError
from ..io import atomic_dir
from ..models import ADAPTERS
from ..pruning.record import get_record
from ..stats import count_params, weights_size
from .runtime import feed, session

FAMILIES = ("bert", "distilbert", "mpnet", "vit", "wav2vec2")  # adapter names whose models export
FILE = "model.onnx"
OPSET = 23  # the first opset with an `Attention` op (ONNX Runtime >= 1.23 runs it on the CPU)


def exportable_model_types() -> list[str]:
    return sorted(t for t, a in ADAPTERS.items() if a.name in FAMILIES)


@dataclass
class OnnxExportConfig:
    int8: bool = False  # quantize the verified float graph with ONNX Runtime's dynamic int8 (weights + embeddings)
    tolerance: float = 1e-4  # refuse a float graph whose outputs differ by more than this × max(1, max |output|)
    verify_batches: int = 4  # calibration batches compared (plus two synthetic shapes)
    opset: int = OPSET  # ONNX opset; below 23 attention is exported as MatMul / Softmax / ... nodes

    def __post_init__(self):
        if not self.tolerance > 0:
            raise CompressError("tolerance", f"must be > 0, got {self.tolerance}", "use e.g. 1e-4")
        if self.verify_batches < 0:
            raise CompressError("verify_batches", f"must be >= 0, got {self.verify_batches}", "use e.g. 4")


def check_exportable(config) -> None:
    """Fail before any work (the CLI calls this on config.json alone): family supported, weights not quantized."""
    model_type = getattr(config, "model_type", None)
    adapter = ADAPTERS.get(model_type)
    if adapter is None or adapter.name not in FAMILIES:
        raise CompressError(
            "model",
            f"ONNX export does not support the {model_type!r} family",
            f"supported: {', '.join(exportable_model_types())}",
        )
    quantization = (get_record(config) or {}).get("quantization")
    if quantization:
        raise CompressError(
            "model",
            f"this model is quantized by compress ({quantization['method']}); ONNX export needs float weights",
            "export the model it was quantized from, with int8 (--int8): ONNX Runtime quantizes it",
        )


# -- inputs ------------------------------------------------------------------------------------------------------
def input_axes(model: nn.Module, tokenizer=None) -> dict[str, dict[int, str]]:
    """Graph inputs and their dynamic axes, by the kind of model. Text models take `token_type_ids` when they use them
    and the tokenizer (if given) returns them, so its output feeds the graph as it is."""
    config, kind = model.config, model.main_input_name
    if kind == "pixel_values":
        return {"pixel_values": {0: "batch"}}
    if kind == "input_values":
        axes = {"input_values": {0: "batch", 1: "sequence"}}
        if getattr(config, "feat_extract_norm", "group") == "layer":  # only these wav2vec2 models take a mask
            axes["attention_mask"] = {0: "batch", 1: "sequence"}
        return axes
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    takes_types = "token_type_ids" in inspect.signature(model.forward).parameters
    if tokenizer is not None and callable(tokenizer):
        takes_types = takes_types and "token_type_ids" in tokenizer("a")
    if takes_types and getattr(config, "type_vocab_size", 0) > 1:
        axes["token_type_ids"] = {0: "batch", 1: "sequence"}
    return axes


def _receptive_field(config) -> int:
    """Samples the wav2vec2 convolutional front end needs for one frame."""
    field, stride = 1, 1
    for k, s in zip(config.conv_kernel, config.conv_stride):
        field += (k - 1) * stride
        stride *= s
    return field


def synthetic_inputs(model: nn.Module, batch: int, length: int, seed: int = 0, axes=None) -> dict[str, torch.Tensor]:
    """Random inputs of `batch` examples; `length` tokens (text) or `length` frames' worth of samples (audio)."""
    g = torch.Generator().manual_seed(seed)
    config, axes = model.config, axes or input_axes(model)
    if "pixel_values" in axes:
        size = config.image_size
        return {"pixel_values": torch.randn(batch, config.num_channels, size, size, generator=g)}
    if "input_values" in axes:
        samples = _receptive_field(config) * (length + 1)
        x = {"input_values": torch.randn(batch, samples, generator=g)}
        if "attention_mask" in axes:
            x["attention_mask"] = torch.ones(batch, samples, dtype=torch.long)
        return x
    low = min(5, config.vocab_size - 1)  # skip the special ids at the start of most vocabularies
    x = {"input_ids": torch.randint(low, config.vocab_size, (batch, length), generator=g)}
    x["attention_mask"] = torch.ones(batch, length, dtype=torch.long)
    if batch > 1:
        x["attention_mask"][0, -max(1, length // 4) :] = 0  # padding in the first row
    if "token_type_ids" in axes:
        x["token_type_ids"] = torch.zeros(batch, length, dtype=torch.long)
        x["token_type_ids"][:, length // 2 :] = 1  # a sentence pair
    return x


def _verification_inputs(model, axes, calibration, n: int) -> list[dict]:
    """Calibration batches restricted to the graph's inputs, then two synthetic shapes unlike the traced one."""
    out = [{k: b[k] for k in axes if k in b} for b in (calibration or [])[:n]]
    return out + [synthetic_inputs(model, 1, 7, 1, axes), synthetic_inputs(model, 3, 23, 2, axes)]


class _Positional(nn.Module):
    """The model called with named inputs in a fixed order, returning its first output (logits or hidden states)."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *args):
        return self.model(**dict(zip(self.names, args)))[0]


@contextlib.contextmanager
def _quiet():
    """The exporter and the quantizer warn about things that do not concern the user (torchvision ops, deprecations)."""
    logs = [logging.getLogger("torch.onnx"), logging.getLogger()]  # root: quantize_dynamic's pre-processing tip
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)


def _to_onnx(model: nn.Module, axes: dict, file: Path, output: str, opset: int) -> int:
    """Write the float graph to `file`; returns how many attention layers `graph.attention_3d` rewrote."""
    import onnx
    from torch.export import Dim

    from .graph import attention_3d

    names = list(axes)
    example = synthetic_inputs(model, 2, 16, axes=axes)
    dims = {}
    for name, spec in axes.items():
        dims[name] = {}
        for axis, label in spec.items():
            if label not in dims:
                # wav2vec2 needs one frame's worth of samples; text lengths of 0 and 1 would specialise the trace
                low = _receptive_field(model.config) if "input_values" in axes and axis == 1 else 2 if axis else 1
                dims[label] = Dim(label, min=low)
            dims[name][axis] = dims[label]
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(
            _Positional(model, names),
            tuple(example[k] for k in names),
            dynamo=True,
            dynamic_shapes=(tuple(dims[k] for k in names),),
            input_names=names,
            output_names=[output],
            optimize=True,
            verbose=False,
            opset_version=opset,
        )
        proto = program.model_proto
    rewritten = attention_3d(proto)
    onnx.save_model(proto, str(file))
    return rewritten


def _compare(file: Path, model: nn.Module, batches: list[dict], output: str) -> dict:
    """Run the graph and PyTorch on the same inputs: largest absolute difference, largest |output|, argmax agreement."""
    sess = session(file)
    diff, scale, agree, total = 0.0, 0.0, 0, 0
    for b in batches:
        with torch.inference_mode():
            ref = model(**b)[0].float().numpy()
        (got,) = sess.run([output], feed(sess, b))
        if got.shape != ref.shape:
            raise CompressError("model", f"the exported graph gave shape {got.shape}, PyTorch {ref.shape}")
        diff, scale = max(diff, float(np.abs(got - ref).max())), max(scale, float(np.abs(ref).max()))
        agree += int((got.argmax(-1) == ref.argmax(-1)).sum())
        total += ref[..., 0].size
    out = {"max_abs_diff": diff, "max_abs_output": scale}
    if output == "logits":
        out["argmax_agreement"] = agree / max(total, 1)
    return out


def _int8(src: Path, dst: Path) -> dict:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    ops = [op for op in IntegerOpsRegistry if op != "Attention"]  # see the module docstring
    with _quiet():
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=ops)
    return {"tool": "onnxruntime.quantization.quantize_dynamic", "weight_type": "QInt8", "per_channel": False}


def _size(folder: Path, stem: str = FILE) -> int:
    return sum(f.stat().st_size for f in folder.glob(stem + "*"))


def _opset(file: Path) -> int:
    import onnx

    proto = onnx.load(str(file), load_external_data=False)
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _versions() -> dict:
    names = ("torch", "transformers", "onnx", "onnxruntime", "onnxscript")
    return {"compress": __version__, **{n: importlib.metadata.version(n) for n in names}}


def export_onnx(
    model: nn.Module,
    path: Path,
    config: OnnxExportConfig,
    tokenizer=None,
    calibration: list[dict] | None = None,
    source=None,
    overwrite: bool = False,
) -> dict:
    """See `compress.export`. Nothing is written unless the float graph passed the check."""
    check_exportable(model.config)
    if path.exists() and not overwrite:
        raise CompressError("output", f"{path} already exists", "choose another folder or pass --overwrite")
    floats = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if floats - {torch.float32}:
        raise CompressError("model", f"weights are {sorted(map(str, floats))}", "export the float32 model")
    was_training, axes = model.training, input_axes(model, tokenizer)
    model.eval()
    with torch.inference_mode():
        first = model(**synthetic_inputs(model, 1, 4, axes=axes))
    output = "logits" if getattr(first, "logits", None) is not None else "last_hidden_state"
    batches = _verification_inputs(model, axes, calibration, config.verify_batches)
    try:
        with tempfile.TemporaryDirectory(prefix="compress-onnx-") as scratch, atomic_dir(path, overwrite) as tmp:
            fp32 = (Path(scratch) if config.int8 else tmp) / FILE
            rewritten = _to_onnx(model, axes, fp32, output, config.opset)
            check = _compare(fp32, model, batches, output)
            allowed = config.tolerance * max(1.0, check["max_abs_output"])
            if not check["max_abs_diff"] <= allowed:
                raise CompressError(
                    "tolerance",
                    f"the exported graph differs from PyTorch by {check['max_abs_diff']:.3g} (allowed {allowed:.3g})",
                    "this is an exporter problem: please report it with the model's config.json",
                )
            verification = {**check, "tolerance": config.tolerance, "allowed": allowed, "batches": len(batches)}
            quantization, sizes = None, {"onnx_fp32": _size(fp32.parent)}
            if config.int8:
                quantization = _int8(fp32, tmp / FILE)
                q = _compare(tmp / FILE, model, batches, output)
                verification["int8"] = {k: v for k, v in q.items() if k != "max_abs_output"}
            sizes["onnx"] = _size(tmp)
            if source is not None and Path(source).is_dir():
                sizes["source_safetensors"] = weights_size(source)
            model.config.save_pretrained(tmp)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
            info = {
                "format": "onnx",
                "file": FILE,
                "int8": config.int8,
                "quantization": quantization,
                "source": None if source is None else str(source),
                "model_type": model.config.model_type,
                "architecture": type(model).__name__,
                "params": count_params(model),
                "inputs": {i.name: i.shape for i in session(tmp / FILE).get_inputs()},  # axes named or sized
                "output": output,
                "opset": _opset(tmp / FILE),
                "exporter": "torch.onnx.export(dynamo=True)",
                "attention_3d": rewritten,  # attention layers fed 3-D tensors (compress/export/graph.py)
                "versions": _versions(),
                "verification": verification,
                "size_bytes": sizes,
            }
            (tmp / "export.json").write_text(json.dumps(info, indent=2))
    finally:
        model.train(was_training)
    return info
