"""Can plain transformers 5.24 read a sparse checkpoint in the compressed-tensors format? (It cannot; this records why.)

compressed-tensors dropped its sparse compressors (sparse-bitmask, sparse-24-bitmask) in 0.15.0, and transformers 5.24
requires compressed-tensors >= 0.15.0. This script writes a 2:4-sparse tiny Llama with the last version that has them
(0.14.0, installed with --no-deps into its own folder under $COMPRESS_CACHE/peers) and loads it with transformers 5.24
+ compressed-tensors 0.20.0 (likewise), comparing the logits with the dense original. Writes
benchmarks/sparsity/compressed_tensors.json.

    .venv/bin/python scripts/check_compressed_tensors.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from compress.assets import cache_dir
from compress.assets._cache import run_tool

WRITER, READER = "compressed-tensors==0.14.0", "compressed-tensors==0.20.0"

WRITE = """
import sys, torch, transformers as T, compressed_tensors
from compressed_tensors.compressors import ModelCompressor
from compressed_tensors.config import Sparse24BitMaskConfig
torch.manual_seed(0)
cfg = T.LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=16)
m = T.LlamaForCausalLM(cfg).eval()
with torch.no_grad():
    for n, mod in m.named_modules():
        if isinstance(mod, torch.nn.Linear) and ".layers." in n:  # 2:4 by magnitude
            w = mod.weight.view(-1, 4)
            w.scatter_(1, w.abs().topk(2, dim=1, largest=False).indices, 0.0)
m.save_pretrained(sys.argv[1] + "/dense")
mc = ModelCompressor(sparsity_config=Sparse24BitMaskConfig(global_sparsity=0.5, targets=["Linear"], ignore=["lm_head"]))
mc.compress_model(m)
m.save_pretrained(sys.argv[1] + "/ct")
mc.update_config(sys.argv[1] + "/ct")
print(compressed_tensors.__version__)
"""

READ = """
import json, sys, torch, transformers as T, compressed_tensors
ref = T.AutoModelForCausalLM.from_pretrained(sys.argv[1] + "/dense").eval()
out = {"transformers": T.__version__, "compressed_tensors": compressed_tensors.__version__}
try:
    m, info = T.AutoModelForCausalLM.from_pretrained(sys.argv[1] + "/ct", output_loading_info=True)
    x = torch.randint(0, 64, (1, 8))
    with torch.no_grad():
        diff = float((m.eval()(x).logits - ref(x).logits).abs().max())
    out.update(missing_keys=len(info["missing_keys"]), unexpected_keys=len(info["unexpected_keys"]),
               example_unexpected=sorted(info["unexpected_keys"])[:3], max_abs_logit_diff=diff)
except Exception as e:
    out["error"] = f"{type(e).__name__}: {str(e)[:300]}"
print(json.dumps(out))
"""


def target(spec: str) -> Path:
    folder = cache_dir() / "peers" / spec.replace("==", "-")
    if not (folder / ".complete").exists():
        extra = ["loguru"]  # its one dependency the shared venv lacks
        run_tool([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(folder), spec, *extra],
                 "check that PyPI is reachable", "peers")  # fmt: skip
        (folder / ".complete").write_text("ok\n")
    return folder


def python_with(folder: Path, code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(folder), "TRANSFORMERS_VERBOSITY": "error"}
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    return r.stdout.strip().splitlines()[-1]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        written_with = python_with(target(WRITER), WRITE, tmp)
        read = json.loads(python_with(target(READER), READ, tmp))
    result = {
        "written_with": f"compressed-tensors {written_with} (format sparse-24-bitmask)",
        "read_with": read,
        "loads_exactly": read.get("missing_keys") == 0 and read.get("max_abs_logit_diff") == 0.0,
    }
    out = Path("benchmarks/sparsity/compressed_tensors.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
