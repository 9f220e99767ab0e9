"""Collect the one-shot WER rows that werquick*.py printed (werquick*.jsonl, committed as printed) into results.json,
the file the recipe header quotes. Lines that are not JSON (werquick.jsonl's first line: `dense (asterisk,
pocketsphinx)`) are kept as a name + two WERs.

    python benchmarks/whisper-tiny-asr/oneshot/collect.py
"""

import ast
import json
from pathlib import Path

here = Path(__file__).parent
rows = []
for f in sorted(here.glob("werquick*.jsonl")):
    for line in f.read_text().splitlines():
        if not line.strip():
            continue
        if line.startswith("{"):
            rows.append({"source": f.name, **json.loads(line)})
        else:
            name, _, rest = line.partition(" ")
            wers = list(ast.literal_eval(rest))
            rows.append({"source": f.name, "name": name, "wer (asterisk val10, pocketsphinx5)": wers})
(here / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
print(f"{len(rows)} rows -> {here / 'results.json'}")
