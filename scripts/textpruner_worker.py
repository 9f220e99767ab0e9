"""TextPruner side of scripts/bench_peers.py: runs in its own environment (transformers 4.57.6, TextPruner 1.1.post2,
no compress), because TextPruner calls `prune_heads`, which transformers 5 removed.

Reads a job JSON (model folder, calibration sentences + labels, the fixed logistic-regression probe, test sentences,
budgets) and, for every budget, prunes a fresh copy of the model with TextPruner's `TransformerPruner` (iterative,
importance = |gradient x weight| of the task loss, same number of heads / neurons in every layer), then writes to
OUT/h{heads}f{ffn}/: the pruned model (`save_pretrained`, v4 `pruned_heads` config, reloaded and checked here), the
kept heads / neurons per layer (`masks.json`) and the pruned model's test-set embeddings (`test_embeddings.pt`).

    VENV/bin/python scripts/textpruner_worker.py JOB.json OUT
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import textpruner
import torch
import transformers
from torch import nn


class ProbeClassifier(nn.Module):
    """MiniLM + the fixed sentiment probe (mean-pooled, L2-normalised embedding -> logistic regression): gives
    TextPruner the task loss it ranks heads and neurons by. Only the encoder (`bert`) is pruned."""

    base_model_prefix = "bert"

    def __init__(self, bert: nn.Module, coef: list[float], intercept: float):
        super().__init__()
        self.bert, self.config = bert, bert.config
        self.register_buffer("coef", torch.tensor(coef))  # (D,)
        self.register_buffer("intercept", torch.tensor(float(intercept)))

    def forward(self, input_ids, attention_mask, token_type_ids=None, labels=None):
        emb = embed_batch(self.bert, input_ids, attention_mask, token_type_ids)  # (B, D)
        z = emb @ self.coef + self.intercept  # (B,) logit of "positive"
        logits = torch.stack([torch.zeros_like(z), z], dim=-1)  # (B, 2): softmax = the probe's probabilities
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


def embed_batch(bert, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
    hidden = bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)[0]
    m = attention_mask[..., None].to(hidden.dtype)
    return nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


def batches(tok, texts, labels=None, size=32, max_length=128) -> list[dict]:
    out = []
    for i in range(0, len(texts), size):
        b = dict(tok(texts[i : i + size], padding=True, truncation=True, max_length=max_length, return_tensors="pt"))
        if labels is not None:
            b["labels"] = torch.tensor(labels[i : i + size])
        out.append(b)
    return out


@torch.inference_mode()
def embed_all(bert, data: list[dict]) -> torch.Tensor:
    bert.eval()
    return torch.cat([embed_batch(bert, b["input_ids"], b["attention_mask"], b.get("token_type_ids")) for b in data])


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    torch.manual_seed(0)
    torch.set_num_threads(job.get("threads") or torch.get_num_threads())
    transformers.logging.set_verbosity_error()
    tok = transformers.AutoTokenizer.from_pretrained(job["model"])
    calib = batches(tok, job["calibration"], job["calibration_labels"], 32, job["max_length"])
    test = batches(tok, job["test"], None, 128, job["max_length"])
    dense = transformers.AutoModel.from_pretrained(job["model"])
    layers, heads, ffn = (
        dense.config.num_hidden_layers,
        dense.config.num_attention_heads,
        dense.config.intermediate_size,
    )
    summary = {"versions": {"textpruner": textpruner.__version__, "transformers": transformers.__version__,
                            "torch": torch.__version__}, "runs": []}  # fmt: skip
    for ratio in job["budgets"]:
        keep_heads, keep_ffn = round(heads * (1 - ratio)), round(ffn * (1 - ratio))
        folder = out / f"h{keep_heads}f{keep_ffn}"
        model = ProbeClassifier(
            transformers.AutoModel.from_pretrained(job["model"]),
            job["probe"]["coef"],
            job["probe"]["intercept"],
        )
        pruner = textpruner.TransformerPruner(
            model,
            transformer_pruning_config=textpruner.TransformerPruningConfig(
                target_ffn_size=keep_ffn,
                target_num_of_heads=keep_heads,
                pruning_method="iterative",
                n_iters=job["n_iters"],
            ),
            general_config=textpruner.GeneralConfig(use_device="cpu", output_dir=str(folder / "textpruner")),
        )
        t0 = time.perf_counter()
        pruner.prune(dataloader=calib, save_model=False)
        seconds = time.perf_counter() - t0
        head_mask, ffn_mask = pruner.head_mask.bool(), pruner.ffn_mask.bool()  # (layers, heads), (layers, ffn)
        kept = {
            "heads": [torch.nonzero(head_mask[i]).flatten().tolist() for i in range(layers)],
            "neurons": [torch.nonzero(ffn_mask[i]).flatten().tolist() for i in range(layers)],
        }
        model.bert.config.intermediate_size = keep_ffn  # as TransformerPruner.save_model does
        model.bert.save_pretrained(folder / "model")
        emb = embed_all(model.bert, test)
        reloaded = transformers.AutoModel.from_pretrained(folder / "model")
        first = embed_all(reloaded, test[:1])  # the reloaded model must compute what the pruned one does
        reload_cos = float(nn.functional.cosine_similarity(first, emb[: len(first)]).min())
        torch.save(emb, folder / "test_embeddings.pt")
        run = {"ratio": ratio, "heads_per_layer": keep_heads, "ffn_per_layer": keep_ffn, "prune_seconds": seconds,
               "params": sum(p.numel() for p in model.bert.parameters()), "reload_min_cosine": reload_cos,
               "folder": str(folder), **kept}  # fmt: skip
        (folder / "masks.json").write_text(json.dumps(run))
        summary["runs"].append(run)
        print(f"textpruner {ratio:.0%}: {seconds:.1f}s, {run['params']:,} params", flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
