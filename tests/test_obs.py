"""The structured-OBS criterion: its greedy costs are the exact least-squares error of removing a unit, and the
criterion builds the Gram matrix of [x 1] that the output projection really sees."""

import torch

import compress
from compress.pruning.obs import obs_scores
from compress.pruning.reconstruct import augmented_weight
from tiny import inputs, make


def _problem(seed=0, tokens=300, units=5, width=2, outputs=4):
    g = torch.Generator().manual_seed(seed)
    F = units * width
    X = torch.randn(tokens, F, generator=g, dtype=torch.float64) @ torch.randn(F, F, generator=g, dtype=torch.float64)
    X = torch.cat([X, torch.ones(tokens, 1, dtype=torch.float64)], 1)  # the bias column, last
    W = torch.randn(F + 1, outputs, generator=g, dtype=torch.float64)
    return X, W


def _refit_error(X, Y, cols):
    sol = torch.linalg.lstsq(X[:, cols], Y).solution
    return float((X[:, cols] @ sol - Y).pow(2).sum())


def test_first_removal_is_the_cheapest_exact_least_squares_removal():
    """With one unit removed per step and no ridge, the lowest score is the unit whose removal (the others refit by
    least squares, bias kept) adds the least error, and the score is that error."""
    units, width = 5, 2
    X, W = _problem(units=units, width=width)
    Y = X @ W
    scores = obs_scores(W, X.t() @ X, units, width, ridge=1e-12, step=1e-9)
    brute = []
    for u in range(units):
        cols = [c for c in range(X.shape[1]) if not (u * width <= c < (u + 1) * width)]
        brute.append(_refit_error(X, Y, cols))
    assert int(scores.argmin()) == min(range(units), key=brute.__getitem__)
    assert abs(float(scores.min()) - min(brute)) <= 1e-6 * max(brute)


def test_greedy_order_matches_the_best_subset_on_a_small_problem():
    """Exhaustive check on 4 units: the top-k by score are the k-subset with the least refit error, for every k
    (greedy need not be optimal in general; on this problem it is, which catches a wrong update formula)."""
    import itertools

    units, width = 4, 2
    X, W = _problem(seed=1, tokens=400, units=units, width=width)
    Y = X @ W
    scores = obs_scores(W, X.t() @ X, units, width, ridge=1e-12, step=1e-9)

    def err(keep):
        return _refit_error(X, Y, [c for u in keep for c in range(u * width, (u + 1) * width)] + [units * width])

    for k in range(1, units):
        best = min(itertools.combinations(range(units), k), key=err)
        mine = tuple(sorted(scores.topk(k).indices.tolist()))
        assert err(mine) <= err(best) * (1 + 1e-9), (k, best, mine)


def test_a_duplicated_unit_is_removed_first():
    """A unit whose inputs copy another unit's can be removed at no cost: the twin takes over its weights."""
    X, W = _problem(seed=2, units=4, width=1)
    X[:, 2] = X[:, 0]
    scores = obs_scores(W, X.t() @ X, 4, 1, ridge=1e-9)
    assert int(scores.argmin()) in (0, 2)
    assert float(scores.min()) < 1e-3 * float(scores.max())


def test_criterion_uses_the_gram_of_the_projection_input_with_its_bias_column():
    """An independent reference: hook bert's FFN output projection, build [x 1]ᵀ[x 1] over real tokens, rank."""
    model, kind = make("bert")
    calib = [inputs(kind, seed=s) for s in range(2)]
    layer = model.bert.encoder.layer[1]
    xs = []
    h = layer.output.dense.register_forward_pre_hook(lambda m, a: xs.append(a[0].detach()))
    with torch.no_grad():
        for b in calib:
            model(**b)
    h.remove()
    X = torch.cat([x[b["attention_mask"].bool()] for x, b in zip(xs, calib)]).double()
    X = torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype)], 1)
    want = obs_scores(augmented_weight(layer.output.dense), X.t() @ X, X.shape[1] - 1, 1)
    got = compress.pruning.api.score(model, "obs", calib).neurons["encoder.1.mlp"]
    assert torch.equal(got.argsort(), want.argsort())
    torch.testing.assert_close(got, want, rtol=1e-4, atol=0)
