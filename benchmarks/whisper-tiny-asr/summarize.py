"""Print the lines of recipes/whisper-tiny-asr.yaml's results header from a run's report.json:
python benchmarks/whisper-tiny-asr/summarize.py benchmarks/whisper-tiny-asr/report.json"""

import json
import sys

report = json.loads(open(sys.argv[1]).read())
ev = report["evaluation"]
print(
    f"# stages: {sum(s['seconds'] for s in report['stages']) / 60:.1f} min in all: "
    + ", ".join(f"{s['stage']} {s['seconds'] / 60:.1f}" for s in report["stages"])
)
for s in report["stages"]:
    if s["kind"] == "distill":
        print(f"# distill: {s['summary']}")
for r in ev["rows"]:
    cells = [
        f"{r['name']}:",
        f"WER asterisk test {100 * r['wer']:.1f} %",
        f"pocketsphinx {100 * r['wer@pocketsphinx-utterances:test']:.1f} %",
        f"asterisk validation {100 * r['wer@validation']:.1f} %",
        f"params {r['params'] / 1e6:.1f}M",
        f"weights {r['size_bytes'] / 1e6:.0f} MB",
        f"e2e {r['e2e_ms']:.0f} ms ({r['e2e_speedup']:.2f}x)" if r.get("e2e_ms") else "",
        f"forward b1 {r['speedup_b1']:.2f}x",
        f"gen {r['gen_speedup']:.2f}x" if r.get("gen_speedup") else "",
    ]
    print("#   " + ", ".join(c for c in cells if c))
