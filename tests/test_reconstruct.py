"""The layer-wise refit after pruning (compress.reconstruct): never worse on calibration data, exact reloads, plain
transformers loads, a no-op when nothing was removed, and one-line errors."""

import copy
import warnings

import pytest
import torch
import transformers as T

import compress
from compress.errors import CompressError
from compress.models import get_adapter
from compress.pruning.reconstruct import MIN_TOKENS_PER_COLUMN, Gram, fit_error, ridge_refit
from compress.pruning.record import iter_layers
from tiny import first_output, inputs, make, with_labels

FAMILIES = ["bert", "mpnet", "distilbert", "vit", "wav2vec2", "whisper", "gpt2", "llama"]  # one per adapter
GQA = {"llama"}


def _calibration(model, kind, n=4):
    batches = [with_labels(model, kind, inputs(kind, batch=4, seed=s)) for s in range(n)]
    return [{k: v for k, v in b.items() if k != "labels"} if kind == "causal" else b for b in batches]


def _budget(family, layers=0):
    return dict(heads=1 / 3 if family in GQA else 0.5, mlp=0.5, layers=layers)


def _projections(model) -> dict:
    """ "stack.position.sublayer" (as the plan and the report name it) -> (original layer, output projection)."""
    a = get_adapter(model)
    out = {}
    for stack, pos, orig, layer in iter_layers(model, a):
        for role, site in a.attentions(layer).items():
            out[f"{stack}.{pos}.{role}"] = (f"{stack}.{orig}.{role}", site.o)
        out[f"{stack}.{pos}.mlp"] = (f"{stack}.{orig}.mlp", a.mlp(layer).output)
    return out


def _outputs(model, batches, module) -> list[torch.Tensor]:
    seen = []
    handle = module.register_forward_hook(lambda m, a, y: seen.append(y.detach().reshape(-1, y.shape[-1]).double()))
    with torch.no_grad():
        for b in batches:
            model(**b)
    handle.remove()
    return seen


def _masked_error(got, want, batches) -> float:
    """Sum of squared differences over real tokens (padding is not fitted)."""
    total = 0.0
    for g, w, b in zip(got, want, batches):
        m = b.get("attention_mask")
        keep = m.reshape(-1).bool() if m is not None and m.numel() == g.shape[0] else slice(None)
        total += float((g - w)[keep].pow(2).sum())
    return total


def _site_error(model, dense, batches, key) -> float:
    """Sum over calibration tokens of ||sublayer output - dense sublayer output||² (padding excluded)."""
    orig, module = _projections(model)[key]
    got = _outputs(model, batches, module)
    want = _outputs(dense, batches, _projections(dense)[orig][1])  # dense: position == original index
    return _masked_error(got, want, batches)


@pytest.mark.parametrize("layers", [0, 1], ids=["width", "depth+width"])
@pytest.mark.parametrize("family", FAMILIES)
def test_refit_never_increases_calibration_error(family, layers):
    model, kind = make(family)
    calib = _calibration(model, kind)
    dense = copy.deepcopy(model)
    compress.prune(model, **_budget(family, layers), calibration=calib, reconstruct=False)
    unrefit = copy.deepcopy(model)
    report = compress.reconstruct(model, dense, calib, target="output")
    assert report["refit"] > 0 and model.config.compress["history"][-1] == {"reconstruct": report}
    assert set(report["per_sublayer"]) <= set(_projections(model))
    for key in report["per_sublayer"]:
        # the same model with this one projection put back: its inputs are the same, only its own fit differs
        hybrid = copy.deepcopy(model)
        _projections(hybrid)[key][1].load_state_dict(_projections(unrefit)[key][1].state_dict())
        after, before = _site_error(model, dense, calib, key), _site_error(hybrid, dense, calib, key)
        assert after <= before * (1 + 1e-6) + 1e-9, (key, after, before)
    for p in model.parameters():
        assert torch.isfinite(p).all()


def _layer_io(model, batches, stack, pos, where) -> list[torch.Tensor]:
    """Input ("in") or output ("out") hidden states of one layer, per batch, flattened to (tokens, hidden)."""
    layer = get_adapter(model).stacks(model)[stack][pos]
    seen = []

    def grab(t):
        seen.append(t.detach().reshape(-1, t.shape[-1]).double())

    if where == "in":
        h = layer.register_forward_pre_hook(lambda m, a, kw: grab(a[0] if a else kw["hidden_states"]), with_kwargs=True)
    else:
        h = layer.register_forward_hook(lambda m, a, y: grab(y[0] if isinstance(y, tuple) else y))
    with torch.no_grad():
        for b in batches:
            model(**b)
    h.remove()
    return seen


@pytest.mark.parametrize("layers", [0, 1], ids=["width", "depth+width"])
@pytest.mark.parametrize("family", ["llama", "gpt2", "whisper", "vit"])  # pre-norm blocks: residual targets
def test_residual_refit_never_increases_the_stream_error(family, layers):
    """The last sublayer of each layer is fitted to the dense residual stream at the next kept layer (standing in for
    dropped ones): that stream error never grows when its refit replaces the unrefit projection."""
    model, kind = make(family)
    calib = _calibration(model, kind)
    dense = copy.deepcopy(model)
    compress.prune(model, **_budget(family, layers), calibration=calib, reconstruct=False)
    unrefit = copy.deepcopy(model)
    report = compress.reconstruct(model, dense, calib)
    assert {r["target"] for r in report["per_sublayer"].values()} == {"residual"}
    a = get_adapter(model)
    origins = {}
    for stack, _pos, orig, _ in iter_layers(model, a):
        origins.setdefault(stack, []).append(orig)
    n_dense = {s: len(v) for s, v in get_adapter(dense).stacks(dense).items()}
    for stack, orig_list in origins.items():
        for pos in range(len(orig_list)):
            key = f"{stack}.{pos}.mlp"
            if key not in report["per_sublayer"]:
                continue
            if pos + 1 < len(orig_list):
                want = _layer_io(dense, calib, stack, orig_list[pos + 1], "in")
            else:
                want = _layer_io(dense, calib, stack, n_dense[stack] - 1, "out")
            hybrid = copy.deepcopy(model)
            _projections(hybrid)[key][1].load_state_dict(_projections(unrefit)[key][1].state_dict())
            errs = []
            for m in (model, hybrid):
                got = _layer_io(m, calib, stack, pos, "out")
                errs.append(_masked_error(got, want, calib))
            assert errs[0] <= errs[1] * (1 + 1e-6) + 1e-9, (key, errs)


def _norm_inputs(model, batches, stack, pos, role) -> list[torch.Tensor]:
    layer = get_adapter(model).stacks(model)[stack][pos]
    norm = get_adapter(model).post_norms(layer)[role]
    seen = []
    h = norm.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().reshape(-1, a[0].shape[-1]).double()))
    with torch.no_grad():
        for b in batches:
            model(**b)
    h.remove()
    return seen


@pytest.mark.parametrize("family", ["bert", "distilbert", "mpnet", "wav2vec2"])  # post-norm blocks
def test_post_norm_refit_never_increases_the_norm_input_error(family):
    """Post-norm blocks fit the dense norm's input (sublayer output + residual): that error never grows when the refit
    replaces the unrefit projection."""
    model, kind = make(family)
    calib = _calibration(model, kind)
    dense = copy.deepcopy(model)
    compress.prune(model, **_budget(family), calibration=calib, reconstruct=False)
    unrefit = copy.deepcopy(model)
    report = compress.reconstruct(model, dense, calib)
    assert {r["target"] for r in report["per_sublayer"].values()} == {"norm input"}
    for key in report["per_sublayer"]:
        stack, pos, role = key.split(".")
        want = _norm_inputs(dense, calib, stack, int(pos), role)  # no layer dropped: positions are original
        hybrid = copy.deepcopy(model)
        _projections(hybrid)[key][1].load_state_dict(_projections(unrefit)[key][1].state_dict())
        errs = []
        for m in (model, hybrid):
            got = _norm_inputs(m, calib, stack, int(pos), role)
            errs.append(_masked_error(got, want, calib))
        assert errs[0] <= errs[1] * (1 + 1e-6) + 1e-9, (key, errs)


def test_refit_lowers_the_error_of_a_pruned_mlp():
    model, kind = make("bert")
    calib = _calibration(model, kind)
    dense = copy.deepcopy(model)
    compress.prune(model, mlp=0.5, calibration=calib, reconstruct=False)
    unrefit = copy.deepcopy(model)
    compress.reconstruct(model, dense, calib, holdout=0, target="output")
    key = "encoder.0.mlp"  # first layer: same inputs in both, so the whole gain is the refit's
    assert _site_error(model, dense, calib, key) < 0.9 * _site_error(unrefit, dense, calib, key)


def test_too_few_calibration_tokens_per_column_warn():
    model, kind = make("bert")
    dense = copy.deepcopy(model)
    compress.prune(model, **_budget("bert"), reconstruct=False)
    with pytest.warns(UserWarning, match="calibration tokens per input column"):
        few = compress.reconstruct(copy.deepcopy(model), dense, _calibration(model, kind, n=2))
    assert few["min_tokens_per_column"] < MIN_TOKENS_PER_COLUMN
    calib = _calibration(model, kind, n=40)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*calibration tokens per input column")
        many = compress.reconstruct(model, dense, calib)
    assert many["min_tokens_per_column"] >= MIN_TOKENS_PER_COLUMN
    # each sublayer's own count: fitted tokens (real ones, less every 8th flattened position, held out) over its kept
    # inputs + the bias; an exact count, no float arithmetic involved
    fitted = 0
    for b in calib:
        real = b["attention_mask"].reshape(-1).bool()
        fitted += int((real & (torch.arange(real.numel()) % 8 != 7)).sum())
    assert many["per_sublayer"]["encoder.0.mlp"]["tokens_per_column"] == round(fitted / (20 + 1), 6)  # as reported
    # the recipe reference states the same bound (the schema does not import torch-heavy pruning code)
    from compress.recipe.schema import DataSpec

    doc = DataSpec.model_fields["calibration_size"].description
    assert f"at least {MIN_TOKENS_PER_COLUMN} calibration tokens" in doc


def test_a_given_dense_reference_is_used_and_left_unchanged():
    model, kind = make("llama")
    calib = _calibration(model, kind)
    own, given = copy.deepcopy(model), copy.deepcopy(model)
    before = {k: v.clone() for k, v in given.state_dict().items()}
    compress.prune(own, **_budget("llama"), calibration=calib)
    compress.prune(model, **_budget("llama"), calibration=calib, dense=given)
    assert all(torch.equal(v, before[k]) for k, v in given.state_dict().items())
    a, b = own.state_dict(), model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    wrong, _ = make("bert")
    with pytest.raises(CompressError, match="dense"):
        compress.prune(copy.deepcopy(own), mlp=0.5, calibration=calib, dense=wrong)


@pytest.mark.parametrize("family", FAMILIES)
def test_exact_reload_after_refit(family, tmp_path):
    model, kind = make(family)
    calib = _calibration(model, kind)
    plan = compress.prune(model, **_budget(family), calibration=calib)
    assert plan.summary["reconstruct"]["refit"] > 0
    compress.save(model, tmp_path / "m")
    again = compress.load(tmp_path / "m")  # raises on missing / unexpected keys
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    x = inputs(kind, seed=7)
    with torch.no_grad():
        assert torch.equal(first_output(model(**x)), first_output(again(**x)))


def test_uniform_llama_plan_still_loads_with_plain_transformers(tmp_path):
    model, kind = make("llama")
    calib = _calibration(model, kind)
    compress.prune(model, heads=1 / 3, mlp=0.5, layers=1, calibration=calib)
    assert model.config.compress["history"][-1]["reconstruct"]["refit"] > 0
    compress.save(model, tmp_path / "m")
    assert model.config.compress["plain_loadable"] is True
    plain, info = T.AutoModelForCausalLM.from_pretrained(tmp_path / "m", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    x = inputs(kind)
    with torch.no_grad():
        assert torch.equal(first_output(plain.eval()(**x)), first_output(model(**x)))


@pytest.mark.parametrize("family", ["bert", "whisper", "gpt2", "llama"])
def test_zero_units_removed_changes_nothing(family):
    model, kind = make(family)
    calib = _calibration(model, kind)
    dense = copy.deepcopy(model)
    plan = compress.prune(model, calibration=calib)  # nothing removed: no sublayer is refit
    assert plan.summary["reconstruct"]["sublayers"] == 0
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), dense.parameters()))
    # refitting every sublayer of an unpruned model against itself reproduces its weights up to float rounding
    report = compress.reconstruct(model, dense, calib, sites="all", holdout=0)
    assert report["refit"] == report["sublayers"] > 0
    for (name, p), q in zip(model.named_parameters(), dense.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-5 * float(q.detach().abs().max()), msg=name)
    x = inputs(kind, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(first_output(model(**x)), first_output(dense(**x)), rtol=1e-4, atol=1e-5)


def test_bad_input_errors():
    model, kind = make("bert")
    calib = _calibration(model, kind)
    dense = copy.deepcopy(model)
    with pytest.raises(CompressError, match="`reconstruct`"):
        compress.prune(copy.deepcopy(model), mlp=0.5, reconstruct=True)
    compress.prune(model, mlp=0.5, calibration=calib, reconstruct=False)
    with pytest.raises(CompressError, match="`calibration`"):
        compress.reconstruct(model, dense, [])
    other, _ = make("distilbert")
    with pytest.raises(CompressError, match="`dense`.*distilbert"):
        compress.reconstruct(model, other, calib)
    wider, _ = make("bert")
    compress.prune(wider, mlp=0.75, calibration=calib, reconstruct=False)  # narrower than the pruned model
    with pytest.raises(CompressError, match="`dense`"):
        compress.reconstruct(model, wider, calib)
    with pytest.raises(CompressError, match="`ridge`"):
        compress.reconstruct(model, dense, calib, ridge=0)
    with pytest.raises(CompressError, match="`sites`"):
        compress.reconstruct(model, dense, calib, sites="some")


def test_singular_systems_fall_back_and_never_give_nan():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 1, generator=g, dtype=torch.float64).repeat(1, 6)  # rank 1: six copies of one feature
    y = torch.randn(50, 3, generator=g, dtype=torch.float64)
    W0 = torch.randn(6, 3, generator=g, dtype=torch.float64)
    W, info = ridge_refit(x.T @ x, x.T @ y, W0, ridge=1e-12)
    assert torch.isfinite(W).all() and info["method"] in ("cholesky", "cholesky+", "lstsq")
    assert fit_error(x.T @ x, x.T @ y, float((y * y).sum()), W) <= fit_error(x.T @ x, x.T @ y, float((y * y).sum()), W0)
    for bad in (torch.zeros(6, 6, dtype=torch.float64), torch.full((6, 6), float("nan"), dtype=torch.float64)):
        W, info = ridge_refit(bad, x.T @ y, W0, ridge=1e-2)
        assert info["method"] == "unchanged" and torch.equal(W, W0)


def test_dead_units_fall_back_without_nan():
    model, kind = make("bert")
    calib = _calibration(model, kind)
    dense = copy.deepcopy(model)
    compress.prune(model, mlp=0.5, calibration=calib, reconstruct=False)
    with torch.no_grad():  # neurons that never fire: zero rows in the Gram matrix
        model.bert.encoder.layer[1].intermediate.dense.weight.zero_()
        model.bert.encoder.layer[1].intermediate.dense.bias.fill_(-1e4)
    report = compress.reconstruct(model, dense, calib, ridge=1e-12, holdout=0)
    assert report["refit"] > 0 and all(torch.isfinite(p).all() for p in model.parameters())


def test_gram_sums_match_the_activations():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 5, generator=g), torch.randn(40, 3, generator=g)
    held = torch.arange(40) % 4 == 3
    gram = Gram(5, 3, bias=True)
    gram.add(x[:25], y[:25], held[:25])
    gram.add(x[25:], y[25:], held[25:])
    xa = torch.cat([x, torch.ones(40, 1)], 1).double()
    W = torch.randn(6, 3, generator=g, dtype=torch.float64)
    for part, sel in ((0, ~held), (1, held)):
        direct = float((y.double()[sel] - xa[sel] @ W).pow(2).sum())
        assert fit_error(gram.G[part], gram.C[part], gram.yy[part], W) == pytest.approx(direct, rel=1e-9)


# --- layout="adaptive" ----------------------------------------------------------------------------------------------


def test_spread_budget_meets_the_total_and_follows_sensitivity():
    from compress.pruning.adaptive import spread_budget

    sizes = {"a": 24, "b": 24, "c": 24, "d": 12}
    sens = {"a": 10.0, "b": 1.0, "c": 0.1, "d": 1.0}
    for remove in (0, 1, 17, 40, 79):
        out = spread_budget(sizes, remove, sens)
        assert sum(out.values()) == remove and all(0 <= out[k] <= sizes[k] - 1 for k in sizes)
    out = spread_budget(sizes, 40, sens)
    assert out["a"] < out["b"] < out["c"]  # less removed where it hurts more
    assert spread_budget(sizes, 40, dict.fromkeys(sizes, 1.0)) == spread_budget(sizes, 40, dict.fromkeys(sizes, 5.0))


@pytest.mark.parametrize("family", ["bert", "whisper", "llama"])
def test_adaptive_layout_keeps_the_total_and_varies_widths(family, tmp_path):
    model, kind = make(family)
    calib = _calibration(model, kind)
    uniform = copy.deepcopy(model)
    pu = compress.prune(uniform, **_budget(family), calibration=calib)
    pa = compress.prune(model, **_budget(family), calibration=calib, layout="adaptive")
    wu, wa = pu.summary["widths"], pa.summary["widths"]
    assert sum(wa["neurons"].values()) == sum(wu["neurons"].values())  # the same total budget, exactly
    assert sum(wa["heads"].values()) == sum(wu["heads"].values())
    assert len(set(wa["neurons"].values())) > 1  # sensitivities differ on random layers, so do the widths
    if family not in GQA:
        assert len(set(wa["heads"].values())) > 1
    assert set(pa.summary["sensitivity"]) >= set(wa["neurons"])
    compress.save(model, tmp_path / "m")
    again = compress.load(tmp_path / "m")
    x = inputs(kind, seed=3)
    with torch.no_grad():
        assert torch.equal(first_output(model(**x)), first_output(again(**x)))


def test_adaptive_layout_respects_round_to_and_needs_calibration():
    model, kind = make("bert")
    calib = _calibration(model, kind)
    with pytest.raises(CompressError, match="`layout`"):
        compress.prune(copy.deepcopy(model), mlp=0.5, layout="adaptive")
    uniform = compress.prune(copy.deepcopy(model), mlp=0.5, round_to=8, calibration=calib)
    plan = compress.prune(model, mlp=0.5, round_to=8, calibration=calib, layout="adaptive")
    widths = plan.summary["widths"]["neurons"]
    assert all(n % 8 == 0 for n in widths.values()) and len(set(widths.values())) > 1
    assert sum(widths.values()) == sum(uniform.summary["widths"]["neurons"].values())
