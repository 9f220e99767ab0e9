"""Depth pruning: dropping layers equals skipping them; layer_idx, config and caches stay consistent."""

import copy

import pytest
import torch

import compress
from compress.models import get_adapter
from compress.pruning.budget import Budget, build_plan
from compress.pruning.importance import Scores
from compress.pruning.plan import PruningPlan, apply_plan
from tiny import first_output, inputs, make


def _skip(layer):
    """Forward hook turning a layer into the identity (its output structure kept)."""

    def hook(module, args, kwargs, output):
        x = args[0] if args else kwargs["hidden_states"]
        return (x, *output[1:]) if isinstance(output, tuple) else x

    return layer.register_forward_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("family", ["bert", "vit", "wav2vec2", "gpt2", "llama", "gemma3", "whisper"])
def test_dropped_layers_equal_skipped(family, tmp_path):
    model, kind = make(family)
    x = inputs(kind)
    dense = copy.deepcopy(model)
    stacks = get_adapter(model).stacks(model)
    plan = PruningPlan(layers={s: [0, 2] for s in stacks})
    handles = [_skip(layers[1]) for layers in get_adapter(dense).stacks(dense).values()]
    with torch.no_grad():
        skipped = first_output(dense(**x))
        for h in handles:
            h.remove()
        assert (skipped - first_output(dense(**x))).abs().max() > 1e-2
        apply_plan(model, plan)
        torch.testing.assert_close(first_output(model(**x)), skipped, atol=1e-5, rtol=1e-5)
    compress.save(model, tmp_path / "m")
    again = compress.load(tmp_path / "m")
    assert again.config.compress["layers"] == {s: [0, 2] for s in stacks}
    with torch.no_grad():
        assert torch.equal(first_output(again(**x)), first_output(model(**x)))


def test_layers_then_heads_keep_original_numbering(tmp_path):
    model, kind = make("gemma3")  # per-layer sliding/full attention types must follow their layers
    types = list(model.config.layer_types)
    compress.prune(model, layers=1, criterion="magnitude")
    kept = model.config.compress["layers"]["decoder"]
    compress.prune(model, heads=1 / 3, mlp=0.5, criterion="magnitude")
    assert set(k.split(".")[1] for k in model.config.compress["neurons"]) == {str(i) for i in kept}
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1]
    assert model.config.num_hidden_layers == 2 and model.config.layer_types == [types[i] for i in kept]
    compress.save(model, tmp_path / "m")
    x = inputs(kind)
    with torch.no_grad():
        assert torch.equal(first_output(model(**x)), first_output(compress.load(tmp_path / "m")(**x)))


def test_layer_budget_respects_protection():
    model, _ = make("bert")
    scores = Scores(layers={"encoder": torch.tensor([0.0, 1.0, 2.0])})
    plan = build_plan(model, scores, Budget(layers=1, protect=[0]))
    assert plan.layers == {"encoder": [0, 2]}
