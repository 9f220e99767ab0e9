"""Bias compensation keeps the mean output of a pruned projection over calibration tokens."""

import copy

import torch

import compress
from tiny import inputs, make


def _mean_output(model, batches):
    seen = []
    handle = model.bert.encoder.layer[0].output.dense.register_forward_hook(lambda m, a, out: seen.append(out))
    with torch.no_grad():
        for b in batches:
            model(**b)
    handle.remove()
    w = torch.cat([b["attention_mask"].reshape(-1) for b in batches]).float()
    out = torch.cat([o.reshape(-1, o.shape[-1]) for o in seen])
    return (out * w[:, None]).sum(0) / w.sum()


def test_mlp_mean_output_is_preserved():
    model, kind = make("bert")
    calib = [inputs(kind, seed=s) for s in range(3)]
    dense = copy.deepcopy(model)
    compress.prune(model, mlp=0.5, protect=[1, 2], criterion="activation", calibration=calib, reconstruct=False)
    torch.testing.assert_close(_mean_output(model, calib), _mean_output(dense, calib), atol=1e-5, rtol=1e-5)
    plain = copy.deepcopy(dense)
    compress.prune(
        plain, mlp=0.5, protect=[1, 2], criterion="activation", calibration=calib, compensate=False, reconstruct=False
    )
    assert (_mean_output(plain, calib) - _mean_output(dense, calib)).abs().max() > 1e-3
    assert model.config.compress["history"][-1]["bias_compensated"] == 1
