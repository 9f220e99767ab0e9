"""Runs llm-compressor's SparseGPT or Wanda modifier in its own environment (scripts/bench_sparsity.py builds it:
torch 2.13.0 CPU + llmcompressor 0.14.0.1, which brings transformers 5.17 and compressed-tensors 0.19).

    python llmcompressor_worker.py JOB.json      # writes OUT/weights.safetensors and OUT/result.json

JOB: {"model": dir, "kind": "causal"|"encoder", "modifier": "sparsegpt"|"wanda", "mask_structure": "0:0"|"2:4",
      "sparsity": 0.5, "ignore": [...], "calibration": [[ids...], ...], "threads": 2, "out": dir}
The calibration token ids are the ones compress used (tokenized by the benchmark), one sample per sequence.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _status(field: str) -> int:
    line = next(ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)

    import llmcompressor
    import torch
    import transformers
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.pruning import WandaPruningModifier
    from llmcompressor.modifiers.pruning.sparsegpt import SparseGPTModifier
    from safetensors.torch import save_file

    torch.set_num_threads(job["threads"])
    cls = transformers.AutoModelForCausalLM if job["kind"] == "causal" else transformers.AutoModel
    model = cls.from_pretrained(job["model"], dtype=torch.float32).eval()
    ids = job["calibration"]
    data = Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids]})
    modifier = {"sparsegpt": SparseGPTModifier, "wanda": WandaPruningModifier}[job["modifier"]]
    recipe = modifier(sparsity=job["sparsity"], mask_structure=job["mask_structure"], ignore=job["ignore"])

    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set
    rss0 = _status("VmRSS")
    t0 = time.perf_counter()
    oneshot(
        model=model,
        processor=transformers.AutoTokenizer.from_pretrained(job["model"]),  # required with a dataset; unused
        dataset=data,
        recipe=recipe,
        num_calibration_samples=len(ids),
        max_seq_length=max(len(x) for x in ids),
        shuffle_calibration_samples=False,
        output_dir=None,
    )
    seconds = time.perf_counter() - t0
    peak = _status("VmHWM") - rss0

    weights = {
        f"{name}.weight": m.weight.detach().clone().contiguous()
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear)
    }
    save_file(weights, str(out / "weights.safetensors"))
    result = {
        "seconds": seconds,
        "peak_rss_delta_mb": peak / 2**20,
        "versions": {
            "llmcompressor": llmcompressor.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    }
    (out / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
