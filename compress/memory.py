"""Peak memory of a checkpoint in use: a fresh process loads it and runs one forward on given inputs; the increase of
its peak resident set (VmHWM) over the resident set before loading is the model's footprint (weights as touched, plus
activations). Linux only (it reads /proc); elsewhere `peak_rss` returns None.

    python -m compress.memory MODEL_DIR INPUTS.safetensors   # prints {"peak_rss_delta": bytes}
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch


def proc_status(field: str) -> int:
    """VmRSS (current) or VmHWM (peak) of this process, in bytes. Not ru_maxrss: Linux carries that over exec from
    the parent, so a child would report its parent's peak."""
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def _warm_up(folder: str) -> None:
    """Pay the one-off costs (lazy imports, kernel set-up: ~150 MB) on a tiny model first, so the measured increase
    is the checkpoint's own."""
    import transformers

    from . import io

    tiny = transformers.BertModel(
        transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    )
    with tempfile.TemporaryDirectory() as tmp:
        io.save(tiny, Path(tmp) / "tiny")
        with torch.inference_mode():
            io.load(Path(tmp) / "tiny")(input_ids=torch.ones(2, 8, dtype=torch.long))
    if getattr(transformers.AutoConfig.from_pretrained(folder), "quantization_config", None):
        import importlib

        from .quantize.bnb import import_bitsandbytes

        import_bitsandbytes()
        importlib.import_module("transformers.integrations.bitsandbytes")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS (Linux >= 4.0)


def _child(folder: str, inputs_file: str) -> None:
    from safetensors.torch import load_file

    from . import io
    from .stats import inputs_for

    inputs = load_file(inputs_file)
    _warm_up(folder)
    before = proc_status("VmRSS")
    model = io.load(folder)
    with torch.inference_mode():
        model(**inputs_for(model, inputs))
    print(json.dumps({"peak_rss_delta": proc_status("VmHWM") - before}))


def peak_rss(folder: str | Path, inputs: dict[str, torch.Tensor]) -> int | None:
    """Bytes: peak resident-set increase of a fresh process loading `folder` and running one forward on `inputs`."""
    if not Path("/proc/self/clear_refs").exists():
        return None
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        save_file({k: v.contiguous() for k, v in inputs.items()}, f"{tmp}/inputs.safetensors")
        done = subprocess.run(
            [sys.executable, "-m", "compress.memory", str(folder), f"{tmp}/inputs.safetensors"],
            capture_output=True,
            text=True,
        )
    if done.returncode != 0:  # reported as missing, never as a made-up number, and the user is told why
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        warnings.warn(
            f"peak memory of {folder} not measured: the measuring process exited with code {done.returncode} "
            f"({lines[-1].strip()[:300] if lines else 'no error output'})",
            stacklevel=2,
        )
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_delta"]


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
