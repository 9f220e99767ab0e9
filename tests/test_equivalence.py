"""Every family: pruned == dense with the same heads/neurons masked; save -> load is exact; backward works."""

import copy

import pytest
import torch

import compress
from compress.pruning.api import score
from compress.pruning.budget import Budget, build_plan
from compress.pruning.masks import apply_masks, keep_masks
from compress.pruning.plan import apply_plan
from tiny import FAMILIES, first_output, inputs, make, with_labels

GQA_FAMILIES = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3"}


def _budget(family, what, layout):
    heads = 1 / 3 if family in GQA_FAMILIES else 0.5  # 6 query heads over 2 KV groups: remove one per group
    return Budget(heads=heads if what != "mlp" else 0, mlp=0.5 if what != "heads" else 0, layout=layout)


@pytest.mark.parametrize("layout", ["uniform", "global"])
@pytest.mark.parametrize("what", ["heads", "mlp", "both"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_pruned_equals_masked_dense(family, what, layout):
    model, kind = make(family)
    x = inputs(kind)
    dense = copy.deepcopy(model)
    plan = build_plan(model, score(model, "random"), _budget(family, what, layout))
    with torch.no_grad():
        unmasked = first_output(dense(**x))
        with apply_masks(dense, keep_masks(dense, plan)):
            masked = first_output(dense(**x))
        apply_plan(model, plan)
        pruned = first_output(model(**x))
    assert (masked - unmasked).abs().max() > 1e-2, "the mask should change the output, else the check is vacuous"
    torch.testing.assert_close(pruned, masked, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_save_load_exact_and_backward(family, tmp_path):
    model, kind = make(family)
    x = inputs(kind)
    compress.prune(
        model, heads=1 / 3 if family in GQA_FAMILIES else 0.5, mlp=0.4, layout="global", criterion="magnitude"
    )
    compress.save(model, tmp_path / "m")
    again = compress.load(tmp_path / "m")  # raises on missing / unexpected keys
    with torch.no_grad():
        assert torch.equal(first_output(model(**x)), first_output(again(**x)))
    assert again.config.compress["heads"] == model.config.compress["heads"]
    # every parameter that gets a gradient in the dense model (saved and loaded the same way: from_pretrained makes
    # Whisper's fixed encoder positions trainable) gets one after prune -> save -> load, and no other
    compress.save(make(family)[0], tmp_path / "dense")
    reached = {}
    for name, m in (("dense", compress.load(tmp_path / "dense")), ("pruned", again)):
        m.train()
        torch.manual_seed(0)  # the same LayerDrop draws (wav2vec2 / hubert) for both
        m(**with_labels(m, kind, x)).loss.backward()
        reached[name] = {n for n, p in m.named_parameters() if p.grad is not None}
        assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    assert reached["pruned"] == reached["dense"] and reached["dense"]


def test_repeated_pruning_composes_original_indices(tmp_path):
    model, kind = make("bert")
    first = compress.prune(model, heads=0.25, mlp=0.25, criterion="random")
    second = compress.prune(model, heads=1 / 3, mlp=0.25, criterion="random")
    rec = model.config.compress["heads"]["encoder.0.attention"]["q"]
    assert rec == [first.heads["encoder.0.attention"][i] for i in second.heads["encoder.0.attention"]]
    assert len(model.config.compress["history"]) == 2
    compress.save(model, tmp_path / "m")
    x = inputs(kind)
    with torch.no_grad():
        assert torch.equal(first_output(model(**x)), first_output(compress.load(tmp_path / "m")(**x)))
