"""Generation after pruning (and after reload) with dynamic and static caches."""

import pytest
import torch

import compress
from tiny import inputs, make

CAUSAL = ["gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3"]


@pytest.mark.parametrize("cache", ["dynamic", "static"])
@pytest.mark.parametrize("family", CAUSAL)
def test_causal_generate(family, cache, tmp_path):
    model, kind = make(family)
    gqa = family != "gpt2"
    compress.prune(
        model,
        heads=2 / 3 if gqa else 0.5,
        kv_heads=0.5 if gqa else 0.0,
        mlp=0.5,
        layout="global",
        criterion="magnitude",
    )
    compress.save(model, tmp_path / "m")
    again = compress.load(tmp_path / "m")
    ids = inputs("causal", batch=1)["input_ids"]
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0, cache_implementation=cache)
    if cache == "dynamic":
        kw.pop("cache_implementation")
    a, b = model.generate(ids, **kw), again.generate(ids, **kw)
    assert a.shape == (1, ids.shape[1] + 6)
    assert torch.equal(a, b)
    # greedy generation with a cache must match recomputing the full sequence each step
    with torch.no_grad():
        full = model(a[:, :-1]).logits[0, ids.shape[1] - 1 :].argmax(-1)
    assert torch.equal(full, a[0, ids.shape[1] :])


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_whisper_generate(cache, tmp_path):
    model, kind = make("whisper")
    compress.prune(model, heads=0.5, mlp=0.5, layout="global", criterion="magnitude")
    compress.save(model, tmp_path / "m")
    again = compress.load(tmp_path / "m")
    feats = inputs(kind, batch=1)["input_features"]
    kw = dict(max_new_tokens=5, do_sample=False)
    if cache == "static":
        kw["cache_implementation"] = "static"
    a, b = model.generate(feats, **kw), again.generate(feats, **kw)
    assert a.shape[1] >= 2 and torch.equal(a, b)
