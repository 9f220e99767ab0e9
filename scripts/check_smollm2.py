"""After `compress run smollm2-chat --output DIR`: the checks the chat-slimming issue asks for that the recipe's own
report does not hold (a script, not a test: it needs the 0.5 GB teacher and minutes of CPU).

  1. DIR/02-distill/model loads with plain `transformers.AutoModelForCausalLM.from_pretrained` in a fresh process
     in which `import compress` is made to fail, and answers a chat prompt with `generate`;
  2. held-out perplexity on Hamlet (the `shakespeare` asset's test split, never used for training), dense teacher
     vs pruned vs pruned + KD, on the first --tokens tokens in non-overlapping windows of --window tokens.

    .venv/bin/python scripts/check_smollm2.py out/smollm2-chat [--tokens 4096 --window 256] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PLAIN = """
import sys
sys.modules["compress"] = None  # `import compress` raises ImportError: nothing of compress can be used
import torch, transformers
path = sys.argv[1]
tok = transformers.AutoTokenizer.from_pretrained(path)
model, info = transformers.AutoModelForCausalLM.from_pretrained(path, output_loading_info=True)
ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                              add_generation_prompt=True, return_tensors="pt", return_dict=True)
out = model.generate(**ids, max_new_tokens=16, do_sample=False)
print({"missing": info["missing_keys"], "unexpected": info["unexpected_keys"],
       "layers": model.config.num_hidden_layers, "mlp": model.config.intermediate_size,
       "answer": tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)})
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    plain = subprocess.run(
        [sys.executable, "-c", PLAIN, str(args.run / "02-distill" / "model")], capture_output=True, text=True
    )
    print("plain transformers load:", plain.stdout.strip().splitlines()[-1] if plain.returncode == 0 else plain.stderr)

    import torch
    import transformers

    import compress
    from compress import assets
    from compress.evaluate.tasks import perplexity

    if args.threads:
        torch.set_num_threads(args.threads)
    teacher = assets.resolve_model("smollm2-135m-instruct")
    tok = transformers.AutoTokenizer.from_pretrained(teacher)
    text = "\n\n".join(assets.load("shakespeare")["test"])
    ids = torch.tensor(tok(text)["input_ids"][: args.tokens])
    windows = [{"input_ids": w[None]} for w in ids.split(args.window) if len(w) > 1]  # non-overlapping
    result = {}
    for name, path in (
        ("dense", teacher),
        ("01-prune", args.run / "01-prune" / "model"),
        ("02-distill", args.run / "02-distill" / "model"),
    ):
        result[name] = perplexity(compress.load(path), windows)["perplexity"]
        print(f"Hamlet perplexity {name}: {result[name]:.2f}", flush=True)
    (args.run / "check_smollm2.json").write_text(
        json.dumps({"hamlet_perplexity": result, "tokens": len(ids), "window": args.window, "plain_load": plain.stdout})
    )


if __name__ == "__main__":
    main()
