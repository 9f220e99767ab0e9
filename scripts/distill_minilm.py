"""Evidence for distillation on the real all-MiniLM-L6-v2 and Rotten-Tomatoes sentences (a script, not a test).

1. Teacher: the dense model. A logistic-regression sentiment classifier is trained on the teacher's embeddings of the
   training split (8,454 sentences) and kept fixed.
2. Student: 50 % heads + 50 % MLP neurons removed (activation criterion, bias compensation, 256 calibration sentences).
3. Embedding distillation (1 - cos of mean-pooled embeddings; teacher embeddings cached once) on the training texts.
Reported on the 1,057 test sentences: cosine to the teacher's embeddings and the accuracy of the teacher's classifier
applied to teacher / pruned / pruned+KD embeddings. Writes JSON + a loss-curve PNG.

    .venv/bin/python scripts/distill_minilm.py [--steps 600] [--out benchmarks/distill_minilm]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

os.environ.setdefault("COMPRESS_PROGRESS", "0")

import torch  # noqa: E402
import transformers  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import compress  # noqa: E402
from compress import assets  # noqa: E402
from compress.data import text_batches  # noqa: E402
from compress.distill import DistillConfig, distill  # noqa: E402
from compress.evaluate.embeddings import cosine_fidelity, embed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--out", default="benchmarks/distill_minilm")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    path = assets.minilm_path()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    teacher = compress.load(path)
    data = assets.rotten_tomatoes()
    train_x, train_y = [t for t, _ in data["train"]], [y for _, y in data["train"]]
    test_x, test_y = [t for t, _ in data["test"]], [y for _, y in data["test"]]
    test_b = text_batches(tok, test_x, 128, args.max_length)

    t0 = time.perf_counter()
    teacher_train = embed(teacher, text_batches(tok, train_x, 128, args.max_length))
    teacher_test = embed(teacher, test_b)
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(teacher_train.numpy(), train_y)
    acc = lambda e: float(clf.score(e.numpy(), test_y))  # noqa: E731
    print(f"teacher embeddings + classifier: {time.perf_counter() - t0:.0f}s, test accuracy {acc(teacher_test):.4f}")

    student = copy.deepcopy(teacher)
    calib = text_batches(tok, train_x[:256], 32, args.max_length)
    compress.prune(student, heads=0.5, mlp=0.5, criterion="activation", calibration=calib)
    pruned_test = embed(student, test_b)
    before = {"cosine": cosine_fidelity(teacher_test, pruned_test), "accuracy": acc(pruned_test)}
    print(f"pruned (no KD): cosine {before['cosine']:.4f}, accuracy {before['accuracy']:.4f}")

    cfg = DistillConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.steps // 20,
        logits_weight=0.0,
        embedding_weight=1.0,
        cache_teacher="embedding",
        save_every=100,
        log_every=50,
    )
    t0 = time.perf_counter()
    result = distill(student, teacher, train_x, cfg, tokenizer=tok, output_dir=out / "run", max_length=args.max_length)
    kd_seconds = time.perf_counter() - t0
    kd_test = embed(result.student, test_b)
    after = {"cosine": cosine_fidelity(teacher_test, kd_test), "accuracy": acc(kd_test)}
    print(
        f"pruned + KD ({args.steps} steps, {kd_seconds / 60:.1f} min): cosine {after['cosine']:.4f}, "
        f"accuracy {after['accuracy']:.4f}"
    )

    report = {
        "teacher_accuracy": acc(teacher_test),
        "pruned": before,
        "pruned_kd": after,
        "kd_seconds": kd_seconds,
        "params": [compress.stats.count_params(teacher), compress.stats.count_params(result.student)],
        "config": cfg.to_dict(),
        "test_sentences": len(test_x),
        "train_sentences": len(train_x),
        "threads": torch.get_num_threads(),
        "curve": [{"step": c["step"], "loss": c["loss"]} for c in result.curve],
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    _plot(report, out / "curve.png")
    print(f"wrote {out / 'results.json'} and {out / 'curve.png'}")


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [c["step"] for c in report["curve"]]
    loss = [c["loss"] for c in report["curve"]]
    k = 10
    smooth = [sum(loss[max(0, i - k + 1) : i + 1]) / len(loss[max(0, i - k + 1) : i + 1]) for i in range(len(loss))]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.plot(steps, loss, alpha=0.3, label="per step")
    ax.plot(steps, smooth, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("1 - cos(student, teacher) embedding")
    ax.set_title(
        f"MiniLM-L6, 50% heads + 50% neurons pruned: embedding KD\n"
        f"accuracy teacher {report['teacher_accuracy']:.3f} | pruned {report['pruned']['accuracy']:.3f}"
        f" | pruned+KD {report['pruned_kd']['accuracy']:.3f}"
    )
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
