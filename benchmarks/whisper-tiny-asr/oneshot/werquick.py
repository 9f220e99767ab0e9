# ruff: noqa  (a quick throw-away check, kept as run)
"""One-shot WER of pruning settings on a few real clips (no timing): asterisk validation + pocketsphinx.

    PYTHONPATH=. python benchmarks/whisper-tiny-asr/oneshot/werquick.py 1 > werquick.jsonl   # also 2, 3

Set 1 also scores the dense model first (a plain `dense (...)` line). The three sets were first run as three copies
of this script that differed only in CONFIGS and that line."""

import copy, json, sys, torch, transformers as T, compress
from compress import assets
from compress.evaluate.speech import transcribe_features, wer
from compress.distill.data import collate

torch.set_num_threads(1)
folder = assets.fetch("whisper-tiny-en")
dense = compress.load(folder).eval()
p = T.AutoProcessor.from_pretrained(folder)
data = assets.load("asterisk-prompts")
fe = p.feature_extractor
val = data["validation"][:10] + assets.load("pocketsphinx-utterances")["test"][:5]
vf = fe([r["audio"] for r in val], sampling_rate=16000, return_tensors="pt").input_features
refs = [r["text"] for r in val]
cal_rows = [r for r in data["train"] if r["clean"]][:12]


def ex(r):
    return {
        "input_features": fe([r["audio"]], sampling_rate=16000, return_tensors="pt").input_features[0],
        "labels": torch.tensor(p.tokenizer(r["text"]).input_ids[1:]),
    }


cal = [collate([ex(r) for r in cal_rows[i : i + 6]]) for i in range(0, len(cal_rows), 6)]


def score(m):
    h = transcribe_features(m, p, vf, 8, 64)
    return round(wer(refs[:10], h[:10]), 4), round(wer(refs[10:], h[10:]), 4)


ENC = ["encoder.0", "encoder.1", "encoder.2", "encoder.3"]
DEC = ["decoder.0", "decoder.1", "decoder.2", "decoder.3"]
SETS = {
    "1": {
        "dec h50 m50": [dict(heads=0.5, mlp=0.5, protect=ENC)],
        "dec h50 m50 + enc h33 m50": [dict(heads=0.5, mlp=0.5, protect=ENC), dict(heads=0.34, mlp=0.5, protect=DEC)],
        "dec h50 m50 + enc m50": [dict(heads=0.5, mlp=0.5, protect=ENC), dict(mlp=0.5, protect=DEC)],
        "dec h50 m50 + enc h33": [dict(heads=0.5, mlp=0.5, protect=ENC), dict(heads=0.34, protect=DEC)],
    },
    "2": {
        "dense int8": [],
        "enc h33": [dict(heads=0.34, protect=DEC)],
        "enc h33 m25": [dict(heads=0.34, mlp=0.25, protect=DEC)],
        "enc h33 m25 + dec m25": [dict(heads=0.34, mlp=0.25, protect=DEC), dict(mlp=0.25, protect=ENC)],
    },
    "3": {
        "enc h33 no-refit": [dict(heads=0.34, protect=DEC, reconstruct=False)],
        "enc h33 m25 no-refit": [dict(heads=0.34, mlp=0.25, protect=DEC, reconstruct=False)],
        "enc m25 + dec m25 refit": [dict(mlp=0.25, protect=DEC), dict(mlp=0.25, protect=ENC)],
    },
}
which = sys.argv[1] if len(sys.argv) > 1 else "1"
if which == "1":
    print("dense", score(dense), flush=True)
for name, steps in SETS[which].items():
    m = copy.deepcopy(dense)
    for kw in steps:
        compress.prune(m, calibration=cal, **kw)
    q = compress.quantize(copy.deepcopy(m), method="int8-dynamic", granularity="per-tensor")
    print(
        json.dumps(
            {
                "name": name,
                "wer (asterisk val10, pocketsphinx5)": score(m),
                "int8": score(q),
                "params": sum(x.numel() for x in m.parameters()),
            }
        ),
        flush=True,
    )
