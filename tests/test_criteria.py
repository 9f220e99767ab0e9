"""Each criterion gives a valid plan; budgets (ratios, layouts, GQA, rounding, protection, targets) are met exactly."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch

import compress
from compress.errors import CompressError
from compress.models import get_adapter
from compress.pruning.importance import CRITERIA
from compress.pruning.record import iter_layers
from compress.stats import count_params, estimate_macs
from tiny import inputs, make, with_labels


def _calibration(family, n=3):
    model, kind = make(family)
    return [with_labels(model, kind, inputs(kind, seed=s)) for s in range(n)]


def _widths(model):
    a = get_adapter(model)
    heads, neurons = [], []
    for _, _, _, layer in iter_layers(model, a):
        heads += [s.num_heads for s in a.attentions(layer).values()]
        neurons.append(a.mlp(layer).num_neurons)
    return heads, neurons


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
@pytest.mark.parametrize("family", ["bert", "llama", "whisper", "gpt2"])
def test_each_criterion_gives_valid_plan(family, criterion):
    model, kind = make(family)
    calib = _calibration(family)
    heads = 1 / 3 if family == "llama" else 0.5
    plan = compress.prune(model, heads=heads, mlp=0.5, criterion=criterion, calibration=calib)
    for kept in plan.heads.values():
        assert kept == sorted(set(kept)) and len(kept) > 0
    h, n = _widths(model)
    assert set(h) == {4 if family == "llama" else 2} and set(n) == {20}
    with torch.no_grad():
        model(**inputs(kind))


def _check_plan_follows_scores(family, criterion):
    """Scores are not constant within a site, and the plan keeps exactly the units that score highest."""
    from compress.pruning.api import score
    from compress.pruning.budget import Budget, build_plan

    model, _ = make(family)
    scores = score(model, criterion, _calibration(family))
    plan = build_plan(model, scores, Budget(heads=0.5, mlp=0.5))
    for kind, kept in (("heads", plan.heads), ("neurons", plan.neurons)):
        for key, s in getattr(scores, kind).items():
            assert s.unique().numel() > 1, f"{criterion}: constant {kind} scores at {key}"
            assert kept[key] == sorted(s.argsort(descending=True)[: len(s) // 2].tolist()), (criterion, key)


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
@pytest.mark.parametrize("family", ["bert", "whisper", "gpt2"])
def test_plan_keeps_the_units_the_criterion_ranks_highest(family, criterion):
    _check_plan_follows_scores(family, criterion)


def test_a_constant_criterion_fails_the_ranking_check(monkeypatch):
    """The check above is not vacuous: an all-zero criterion (valid shapes, no information) fails it."""
    from compress.pruning.importance import Scores

    def zeros(model, calibration):
        m = CRITERIA["magnitude"](model, None)
        z = lambda d: {k: torch.zeros_like(v) for k, v in d.items()}  # noqa: E731
        return Scores(heads=z(m.heads), kv_heads=z(m.kv_heads), neurons=z(m.neurons), layers=m.layers)

    monkeypatch.setitem(CRITERIA, "zeros", zeros)
    with pytest.raises(AssertionError, match="constant heads scores"):
        _check_plan_follows_scores("bert", "zeros")


def test_activation_scores_are_activation_norm_times_output_column_norm():
    """Independent reference for one MLP: ||GELU(up(x))|| over real tokens x ||down column||."""
    model, kind = make("bert")
    calib = [inputs(kind, seed=s) for s in range(2)]
    acts = []
    layer = model.bert.encoder.layer[0]
    h = layer.intermediate.register_forward_hook(lambda m, a, out: acts.append(out.detach()))
    with torch.no_grad():
        for b in calib:
            model(**b)
    h.remove()
    sq = sum((a.pow(2) * b["attention_mask"][..., None]).sum((0, 1)) for a, b in zip(acts, calib))
    want = sq.sqrt() * layer.output.dense.weight.detach().norm(dim=0)
    got = compress.pruning.api.score(model, "activation", calib).neurons["encoder.0.mlp"]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("criterion", ["taylor", "fisher", "activation"])
def test_data_criteria_without_labels_on_headless_encoder(criterion):
    import transformers as T

    model = T.BertModel(
        T.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40)
    )
    calib = [inputs("text", seed=s) for s in range(2)]
    scores = compress.pruning.api.score(model, criterion, calib)
    assert all(v.abs().sum() > 0 for v in scores.heads.values())
    assert all(v.abs().sum() > 0 for v in scores.neurons.values())


def test_global_budget_exact_and_one_head_per_layer():
    model, _ = make("bert")
    scores = compress.pruning.api.score(model, "random")
    scores.heads["encoder.0.attention"] = torch.zeros(4)  # layer 0 looks useless: global must still keep one head
    from compress.pruning.budget import Budget, build_plan

    plan = build_plan(model, scores, Budget(heads=0.5, mlp=0.3, layout="global"))
    assert sum(len(v) for v in plan.heads.values()) == 12 - 6
    assert sum(len(v) for v in plan.neurons.values()) == 120 - 36
    assert all(len(v) >= 1 for v in plan.heads.values())
    assert len(plan.heads["encoder.0.attention"]) == 1


def test_gqa_kv_groups_and_equal_heads_per_group():
    model, _ = make("llama")  # 6 query heads, 2 KV groups per layer
    compress.prune(model, heads=2 / 3, kv_heads=0.5, criterion="magnitude")
    for layer in model.model.layers:
        a = layer.self_attn
        assert a.k_proj.out_features == 8 and a.q_proj.out_features == 16 and a.num_key_value_groups == 2
    assert model.config.num_key_value_heads == 1 and model.config.num_attention_heads == 2


def test_gqa_budget_that_cannot_be_met():
    model, _ = make("llama")
    with pytest.raises(CompressError, match="achievable `heads` ratios"):
        compress.prune(model, heads=0.5, criterion="magnitude")  # 3 of 6 heads cannot split over 2 groups


def test_round_to_multiple():
    model, _ = make("bert")
    compress.prune(model, mlp=0.3, round_to=8, criterion="magnitude")
    assert all(n % 8 == 0 for n in _widths(model)[1])


def test_protected_layers_untouched():
    model, _ = make("bert")
    compress.prune(model, heads=0.5, mlp=0.5, protect=[1], criterion="magnitude")
    h, n = _widths(model)
    assert h == [2, 4, 2] and n == [20, 40, 20]


@pytest.mark.parametrize("target", ["params", "macs"])
def test_size_targets(target):
    model, _ = make("bert")
    total = count_params(model) if target == "params" else estimate_macs(model)
    goal = int(total * 0.85)
    compress.prune(model, **{f"target_{target}": goal}, criterion="magnitude")
    after = count_params(model) if target == "params" else estimate_macs(model)
    assert after <= goal and after > total * 0.7
    assert model.config.compress["history"][-1][f"{target}_after"] == after


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(heads=1.0), "heads"),
        (dict(mlp=-0.1), "mlp"),
        (dict(layout="diagonal", heads=0.5), "layout"),
        (dict(criterion="psychic", heads=0.5), "criterion"),
        (dict(criterion="fisher", heads=0.5), "calibration"),
        (dict(layers=3), "layers"),
        (dict(round_to=0, mlp=0.5), "round_to"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    model, _ = make("bert")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CompressError, match=f"`{field}`"):
        compress.prune(model, **kwargs)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_unknown_family():
    import transformers as T

    model = T.T5Model(T.T5Config(vocab_size=64, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8))
    with pytest.raises(CompressError, match="supported: bert"):
        compress.prune(model, heads=0.5)


@settings(max_examples=40, deadline=None)
@given(heads=st.floats(0, 0.95), mlp=st.floats(0, 0.95), layout=st.sampled_from(["uniform", "global"]))
def test_budgets_are_met_exactly(heads, mlp, layout):
    from compress.pruning.budget import Budget, build_plan

    model, _ = make("bert")  # 3 layers x 4 heads, 3 x 40 neurons
    scores = compress.pruning.api.score(model, "random")
    budget = Budget(heads=heads, mlp=mlp, layout=layout)
    if layout == "global" and (round(heads * 12) > 9 or round(mlp * 120) > 117):
        with pytest.raises(CompressError):
            build_plan(model, scores, budget)
        return
    plan = build_plan(model, scores, budget)
    kept_heads = [len(v) for v in plan.heads.values()] or [4, 4, 4]
    kept_neurons = [len(v) for v in plan.neurons.values()] or [40, 40, 40]
    if layout == "uniform":
        assert kept_heads == [max(1, 4 - round(heads * 4))] * 3
        assert kept_neurons == [max(1, 40 - round(mlp * 40))] * 3
    else:
        assert sum(kept_heads) == 12 - round(heads * 12) and min(kept_heads) >= 1
        assert sum(kept_neurons) == 120 - round(mlp * 120) and min(kept_neurons) >= 1


@pytest.mark.parametrize("criterion", ["taylor", "fisher"])
def test_units_whose_mask_gets_no_gradient_fall_back_to_magnitude_with_a_warning(criterion, monkeypatch):
    """A site whose mask never reaches the loss used to score 0 and be pruned first, silently."""
    from compress.pruning.masks import output_projections

    model, kind = make("bert")
    calib = _calibration("bert", 2)
    first = next(iter(output_projections(model)))  # the site whose gradient the loss "loses"
    real = torch.autograd.grad

    def lose_first(loss, tensors, **kw):
        return (None, *real(loss, tensors, **kw)[1:])

    monkeypatch.setattr(torch.autograd, "grad", lose_first)
    warned = rf"{criterion}: 1 site\(s\) got no gradient .*\({first}\); .* weight magnitude"
    with pytest.warns(UserWarning, match=warned):
        scores = compress.pruning.api.score(model, criterion, calib)
    monkeypatch.undo()
    got = scores.heads.get(first, scores.neurons.get(first))
    mag = CRITERIA["magnitude"](model, None)
    want = mag.heads.get(first, mag.neurons.get(first))
    others = torch.cat([v for k, v in {**scores.heads, **scores.neurons}.items() if k != first and len(v) == len(got)])
    assert torch.equal(got.argsort(), want.argsort()) and got.min() > 0
    assert got.mean() == pytest.approx(float(others.mean()), rel=1e-5)


@pytest.mark.parametrize("criterion", ["activation", "obs"])
def test_forward_only_scoring_skips_the_lm_head_and_scores_the_same(criterion, monkeypatch):
    """The LM head's logits are the largest activation of a calibration pass and no layer statistic needs them: the
    forward-only criteria stop before the head, with the same scores as a full forward pass."""
    import compress.pruning.importance as importance

    model, kind = make("llama")
    calib = _calibration("llama")
    calls = []
    handle = model.get_output_embeddings().register_forward_hook(lambda *a: calls.append(1))
    stopped = compress.pruning.api.score(model, criterion, calib)
    assert calls == []
    monkeypatch.setattr(importance, "forward_without_head", lambda m, b: m(**b))
    full = compress.pruning.api.score(model, criterion, calib)
    handle.remove()
    assert len(calls) == len(calib)
    for kind_ in ("heads", "neurons", "layers"):
        for key, v in getattr(full, kind_).items():
            torch.testing.assert_close(getattr(stopped, kind_)[key], v)
