#!/usr/bin/env bash
# One command per table: regenerates every committed results file that README.md, the recipe headers and
# benchmarks/*.md quote (rules: docs/numbers.md; check: .venv/bin/python -m pytest -q tests/test_numbers.py).
# Heavy: about 3 hours of CPU in all (times measured on the shared 2-core machine). On a shared machine run each under
# the heavy-job lock (flock /tmp/heavy.lock ...) so that timings are comparable. Usage:
#     scripts/reproduce.sh            # everything, in order
#     scripts/reproduce.sh quantize   # one table (names below)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export COMPRESS_PROGRESS=${COMPRESS_PROGRESS:-0}

recipe() {  # a recipe's report.json is the raw output its header (and the README paragraph on it) quote
    local name=$1
    shift
    "$PY" -m compress.cli run "recipes/$name.yaml" --output "out/reproduce/$name" --overwrite "$@"
    mkdir -p "benchmarks/$name" && cp "out/reproduce/$name/report.json" "benchmarks/$name/report.json"
}

run() {
    case $1 in
    # README "Distillation": MiniLM 50/50 + embedding KD, 600 steps lr 2e-4 (~15 min) and 1,500 steps lr 3e-4 (~40 min)
    distill) "$PY" scripts/distill_minilm.py ;;
    distill-1500) "$PY" scripts/distill_minilm.py --steps 1500 --lr 3e-4 --out benchmarks/distill_minilm_1500 ;;
    # README "Quantization" and the int8-embeddings addendum of benchmarks/RESULTS.md (~3 min)
    quantize) "$PY" scripts/bench_quantize.py --methods bf16,int8-dynamic,int8-dynamic/embeddings --no-peak-memory \
        --json benchmarks/quantize/results.json ;;
    # benchmarks/RESULTS.md and README "Benchmark": compress vs TextPruner vs Torch-Pruning (~50 min); its report
    # is re-rendered from the committed results (with the quantize addendum) by the second command
    peers) "$PY" scripts/bench_peers.py ;;
    results-md) "$PY" scripts/peers_report.py benchmarks/peers/results.json benchmarks/RESULTS.md ;;
    # benchmarks/repair/: none / bias / refit / refit+adaptive / obs on MiniLM (~15 min) and SmolLM2 (~40 min)
    repair) "$PY" scripts/bench_repair.py minilm --threads 1 && "$PY" scripts/bench_repair.py smollm2 --threads 1 ;;
    # ... and on Whisper tiny.en (~12 min), and on the ViT that vit-fashion-mnist trains (run after it, ~5 min)
    repair-whisper) "$PY" scripts/bench_repair.py whisper ;;
    repair-vit) "$PY" scripts/bench_repair.py vit --threads 1 ;;
    # ... with block reconstruction after the refit (tune_epochs=10, ~15 min): MiniLM on length-sorted calibration
    # (rows "... sorted"), 1,024 sentences on two more random draws (rows "..., draw K"), and Whisper tiny.en
    repair-tune)
        "$PY" scripts/bench_repair.py minilm --append --sorted --variants bias,obs+refit,refit+tune,obs+refit+tune || return
        for d in 0 1 2; do
            "$PY" scripts/bench_repair.py minilm --append --sorted --budgets 0.75 --calibration 1024 --draw "$d" \
                --variants bias,obs+refit,refit+tune,obs+refit+tune || return
        done
        "$PY" scripts/bench_repair.py whisper --append --variants refit+tune ;;
    # ... with more calibration data (~30 min): MiniLM 75 % with 1,024, 2,048 and 4,096 sentences, the smollm2-chat plan
    # with 128 and 256 passages (rows named "..., N sentences" / "..., N passages")
    repair-calibration)
        for n in 1024 2048 4096; do
            "$PY" scripts/bench_repair.py minilm --append --budgets 0.75 --calibration "$n" --variants bias,refit,obs+refit || return
        done
        "$PY" scripts/bench_repair.py smollm2 --append --plans "4 layers + 37.5% MLP" --smol-calibration 128 \
            --variants refit,refit+adaptive &&
            "$PY" scripts/bench_repair.py smollm2 --append --plans "4 layers + 37.5% MLP" --smol-calibration 256 \
                --variants refit ;;
    # benchmarks/sparsity/: compress vs llm-compressor SparseGPT / Wanda (~40 min); the compressed-tensors check
    sparsity) "$PY" scripts/bench_sparsity.py --models smollm2 --calibration 32 --seq-len 256 --eval 32 &&
        "$PY" scripts/bench_sparsity.py --models minilm --calibration 64 --seq-len 128 &&
        "$PY" scripts/check_compressed_tensors.py ;;
    # benchmarks/export/: PyTorch vs ONNX Runtime fp32 / int8, the demo's teacher and its distilled model (~10 min;
    # run after minilm-sentiment, whose models it reads)
    export) "$PY" scripts/bench_export.py --threads 2 --teacher out/reproduce/minilm-sentiment/01-train/model \
        --student out/reproduce/minilm-sentiment/03-distill/model --json benchmarks/export/results.json ;;
    # benchmarks/int8_guard/: int8 per-tensor vs per-token on SmolLM2 as a base LM, the quantize guard and
    # `granularity: auto` (~10 min), then its README.md from results.json
    int8_guard) "$PY" scripts/bench_int8_guard.py && "$PY" scripts/int8_guard_report.py ;;
    # benchmarks/whisper_multilingual/: whisper-base with data.language vs plain transformers (~15 min)
    whisper_multilingual) "$PY" scripts/check_whisper_multilingual.py --steps 8 ;;
    # benchmarks/whisper-tiny-asr/window/: the one-shot settings whisper-tiny-asr was chosen from (~15 min)
    whisper-window) "$PY" scripts/check_whisper_window.py ;;
    # recipe headers and README "Recipes" / "Quick start" (11 to 45 min each)
    minilm-sentiment | minilm-embeddings | whisper-tiny-asr) recipe "$1" ;;
    vit-fashion-mnist) OMP_NUM_THREADS=1 recipe "$1" ;;
    # smollm2-chat also gets its plain-transformers load check and Hamlet perplexity (scripts/check_smollm2.py)
    smollm2-chat) recipe "$1" && "$PY" scripts/check_smollm2.py out/reproduce/smollm2-chat &&
        cp out/reproduce/smollm2-chat/check_smollm2.json benchmarks/smollm2-chat/ ;;
    *) echo "unknown table: $1" >&2 && exit 2 ;;
    esac
}

ALL=(distill distill-1500 quantize peers results-md repair sparsity int8_guard whisper_multilingual minilm-sentiment export minilm-embeddings vit-fashion-mnist
    repair-vit repair-whisper repair-calibration repair-tune whisper-window whisper-tiny-asr smollm2-chat)
for table in "${@:-${ALL[@]}}"; do
    echo "== $table" >&2
    run "$table"
done
