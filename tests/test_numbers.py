"""Every figure in README.md, the recipe headers and benchmarks/*.md comes from a committed results file.

The rules are in docs/numbers.md (figures, blocks and their scope of results files, matching with unit conversions and
derived ratios, `cited:` blocks, generated Markdown checked by regeneration, the PENDING list that only shrinks).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = r"(?:%|MB\b|GB\b|kB\b|ms\b|s\b|min\b|minutes\b|M\b|G\b|k\b|tokens_per_s\b|pts\b)"
FIGURE = re.compile(rf"(?<![\w./])(?<!\w-)(\d{{1,3}}(?:,\d{{3}})+|\d+)(\.\d+)?(?:\s?({UNITS})|(x\b|×))?")
SCALES = (1, 100, 1e-3, 1e-6, 1e-9, 2**-20, 1e3, 1 / 60)

# tests/numbers_pending.json, document -> [{"block": text that identifies it, "reason": why, "figures": [as written]}]:
# figures with no committed results file yet. A block may hold no other unbacked figure, and a listed one that is now
# backed (or gone) must be removed from the file: the list only shrinks.
PENDING = json.loads((ROOT / "tests" / "numbers_pending.json").read_text())


def _generated_results_md() -> str:
    spec = importlib.util.spec_from_file_location("peers_report", ROOT / "scripts" / "peers_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    res = json.loads((ROOT / "benchmarks" / "peers" / "results.json").read_text())
    res["goals"] = report.evaluate_goals(res)
    quant = ROOT / "benchmarks" / "quantize" / "results.json"
    return report.render_markdown(res, quantize=json.loads(quant.read_text()) if quant.exists() else None)


# generated Markdown -> (how to regenerate it, the results files it is made from)
GENERATED = {
    "benchmarks/RESULTS.md": (
        _generated_results_md,
        ["benchmarks/peers/results.json", "benchmarks/quantize/results.json"],
    ),
}


# -- documents and blocks ----------------------------------------------------------------------------------------------
def documents() -> list[str]:
    docs = ["README.md"]
    docs += sorted(str(p.relative_to(ROOT)) for p in (ROOT / "recipes").rglob("*.yaml"))
    docs += sorted(str(p.relative_to(ROOT)) for p in (ROOT / "benchmarks").glob("*.md"))
    return docs


def blocks(doc: str) -> list[str]:
    text = (ROOT / doc).read_text()
    if doc.endswith(".yaml"):
        header = []
        for line in text.splitlines():
            if not line.startswith("#"):
                break
            header.append(line.lstrip("#"))
        return ["\n".join(header)] if header else []
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks: commands, not figures
    out, current = [], []
    for line in text.splitlines() + [""]:
        starts_item = re.match(r"\s*(?:[-*]|\d+\.)\s", line) and not line.lstrip().startswith("|")
        if not line.strip() or (starts_item and current and not current[-1].lstrip().startswith("|")):
            if current:
                out.append("\n".join(current))
            current = [line] if line.strip() else []
        else:
            current.append(line)
    return out


def _prose(block: str) -> str:
    """The block without what is not a figure: code spans, links' targets, paths, dates, versions, bounds."""
    t = re.sub(r"<!--.*?-->", " ", block, flags=re.S)
    t = re.sub(r"`[^`]*`", " ", t)
    t = t.replace("tokens/s", "tokens_per_s")
    t = re.sub(r"\]\([^)]*\)", "]", t)
    t = re.sub(r"\S*/\S*", lambda m: " " if re.search(r"[A-Za-z_]/|/[A-Za-z_.]", m.group()) else m.group(), t)
    t = re.sub(r"\d{4}-\d{2}(?:-\d{2})?", " ", t)  # dates
    t = re.sub(r"\d+(?:\.\d+){2,}\w*", " ", t)  # versions
    t = re.sub(r"(?:(?<![-=<])[<>](?![-=>])|[≤≥~]|at most|at least|under|over)\s*\d[\d.,]*\s?\S*", " ", t)  # bounds
    return t


def figures(block: str) -> list[tuple[str, float, int]]:
    """(as written, value, decimals) of each figure in the block."""
    out = []
    for m in FIGURE.finditer(_prose(block)):
        whole, frac, unit = m.group(1), m.group(2), m.group(3) or m.group(4)
        if frac is None and unit is None:
            continue
        value = float(whole.replace(",", "") + (frac or ""))
        out.append((m.group(0).strip(), value, len(frac) - 1 if frac else 0))
    return out


# -- scope: which results files a block may draw on --------------------------------------------------------------------
def _results_in(path: str) -> set[Path]:
    found = set()
    for p in ROOT.glob(path.rstrip("/")):
        if p.is_dir():
            found |= set(p.glob("*.json"))
        elif p.suffix == ".json":
            found.add(p)
    return found


def scope(block: str, doc: str, seen: frozenset = frozenset()) -> set[Path]:
    files: set[Path] = set()
    for line in re.findall(r"results:\s*([^\n>]+)", block):
        for path in re.split(r"[,\s]+", line.replace("-->", "")):
            if path and path != "none":
                files |= _results_in(path.strip("`()."))
    for path in re.findall(r"(?<![\w/])(benchmarks/[\w*./-]+)", block):
        path = path.rstrip(".,")
        if path.endswith(".md"):
            for md in (str(p.relative_to(ROOT)) for p in ROOT.glob(path)):
                if md not in seen:
                    files |= _doc_scope(md, seen | {md})
        else:
            files |= _results_in(path)
    for name in re.findall(r"recipes/([\w.-]+?)\.yaml", block):
        path = f"recipes/{name}.yaml"
        if path not in seen and (ROOT / path).exists():
            files |= _doc_scope(path, seen | {path})
    rel = (ROOT / doc).parent  # paths written relative to the document (RESULTS.md: `peers/results.json`)
    for path in re.findall(r"`([\w*./-]+\.json)`", block):
        files |= {p for p in rel.glob(path) if p.exists()}
    return files


def _doc_scope(doc: str, seen: frozenset) -> set[Path]:
    if doc in GENERATED:
        return {ROOT / p for p in GENERATED[doc][1] if (ROOT / p).exists()}
    files: set[Path] = set()
    for b in blocks(doc):
        files |= scope(b, doc, seen)
    return files


@cache
def _numbers(path: Path) -> tuple[float, ...]:
    out: list[float] = []

    def walk(x, key=""):
        if key == "curve":
            return
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, k)
        elif isinstance(x, list):
            for v in x:
                walk(v, key)
        elif isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
            out.append(abs(float(x)))

    walk(json.loads(path.read_text()))
    return tuple(sorted(set(out)))


def _close(got: float, value: float, decimals: int, slack: float = 0.0) -> bool:
    return abs(got - value) <= 0.5 * 10**-decimals + 1e-9 * max(1.0, value) + slack


def found(value: float, decimals: int, files: set[Path]) -> bool:
    return any(_close(x * s, value, decimals) for f in files for x in _numbers(f) for s in SCALES)


def derived(value: float, decimals: int, unit: str, backed: list[tuple[float, int]]) -> bool:
    """A ratio or percentage computed from two found figures of the block (their own rounding allowed for)."""
    for a, da in backed:
        for b, db in backed:
            if a <= 0 or b <= 0 or (a, da) == (b, db):
                continue
            err = 0.5 * 10**-da / a + 0.5 * 10**-db / b  # relative error of a / b from the rounding of a and b
            r = a / b
            if unit in ("x", "×") and _close(r, value, decimals, r * err):
                return True
            if unit == "%" and any(_close(c, value, decimals, 100 * r * err) for c in (100 * r, 100 * abs(1 - r))):
                return True
    return False


def unbacked(block: str, doc: str) -> list[str]:
    if "cited:" in block:
        return []
    files = scope(block, doc)
    figs = figures(block)
    backed = [(v, d) for _, v, d in figs if found(v, d, files)]
    missing = []
    for text, v, d in figs:
        unit = re.sub(r"[\d.,\s]", "", text)
        if not (found(v, d, files) or derived(v, d, unit, backed)):
            missing.append(text)
    return missing


# -- the tests ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("doc", [d for d in documents() if d not in GENERATED])  # generated ones: checked below
def test_every_figure_comes_from_a_committed_results_file(doc):
    pending = PENDING.get(doc, [])
    problems, stale = [], []
    for block in blocks(doc):
        missing = unbacked(block, doc)
        waived = [f for p in pending if p["block"] in " ".join(block.split()) for f in p["figures"]]
        new = [f for f in missing if f not in waived]
        gone = sorted(set(waived) - set(missing))
        if new:
            problems.append(f"{' '.join(block.split())[:90]!r}...: {new}")
        if gone:
            stale.append(f"{' '.join(block.split())[:90]!r}...: {gone} now backed or gone: remove from PENDING")
    assert not problems, f"{doc}: figures without a committed results file in scope:\n" + "\n".join(problems)
    assert not stale, "tests/numbers_pending.json:\n" + "\n".join(stale)


@pytest.mark.parametrize("doc", sorted(GENERATED))
def test_generated_markdown_is_what_its_script_writes(doc):
    render, _ = GENERATED[doc]
    assert (ROOT / doc).read_text() == render(), f"{doc} differs from its generator's output: regenerate it"


# -- the rules themselves, on made-up text ---------------------------------------------------------------------------
def test_rules_on_examples(tmp_path, monkeypatch):
    res = tmp_path / "benchmarks" / "demo"
    res.mkdir(parents=True)
    (res / "results.json").write_text(json.dumps({"acc": 0.7964, "bytes": [90_864_160, 18_700_000], "s": 660.0,
                                                  "curve": [{"loss": 0.3}]}))  # fmt: skip
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    _numbers.cache_clear()
    doc = "README.md"
    ok = "Accuracy 79.6 %, 90.9 MB -> 18.7 MB (4.9x smaller) in 11 minutes (`benchmarks/demo/`), ≥ 4x goal, 2026-11-27."
    assert figures(ok) and unbacked(ok, doc) == []
    assert unbacked("Accuracy 79.7 % (`benchmarks/demo/`).", doc) == ["79.7 %"]  # not what was measured
    assert unbacked("Accuracy 79.6 %.", doc) == ["79.6 %"]  # no results file in scope
    assert unbacked("Loss 0.3 (`benchmarks/demo/`).", doc) == ["0.3"]  # curves are not results
    assert unbacked("Loss 0.3 in the paper. <!-- cited: Someone et al. 2020 -->", doc) == []
    assert unbacked("<!-- results: benchmarks/demo/results.json --> 79.6 % and 5.0x smaller", doc) == ["5.0x"]
    assert figures("batch 32, seq 128, `compress prune --heads 0.5`, transformers 5.24.0, 6 of 12 heads") == []
    _numbers.cache_clear()


def test_reproduce_sh_names_every_results_folder():
    """scripts/reproduce.sh has a command for each benchmarks/<name>/ holding raw results."""
    script = (ROOT / "scripts" / "reproduce.sh").read_text()
    folders = sorted({p.parent.name for p in (ROOT / "benchmarks").glob("*/*.json")})
    assert folders and not [f for f in folders if f not in script], folders
