"""The fidelity guard: numbers that compare a model with its input, int8 per-tensor caught on a model with an outlier
activation channel (the guard and `granularity: auto` pick per-token), fallback to float layers, and quantized
weights counted as what they are (parameters, MACs, `compress inspect`)."""

import copy
import warnings

import pytest
import torch
import transformers as T

import compress
import tiny
from compress.evaluate import fidelity
from compress.quantize import auto
from compress.quantize.guard import layer_errors, quantize_with_guard
from compress.stats import count_params, estimate_macs
from tiny import make

OUTLIER = 7  # the token whose layer-0 MLP input carries a massive activation (like a first token / BOS in real LLMs)


def outlier_llama():
    """A tiny Llama whose MLPs each have one neuron firing ~1000x harder than the rest, only at token OUTLIER: the
    residual channel 0 is that token's alone (no other embedding, attention or MLP output writes it), and neuron 0
    of every MLP reads only channel 0 through both its gate and its up projection."""
    model, _ = make("llama")
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb[:, 0] = 0
        emb[OUTLIER] = 0
        emb[OUTLIER, 0] = 50.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0] = 0
            layer.mlp.down_proj.weight[0] = 0
            for proj in (layer.mlp.gate_proj, layer.mlp.up_proj):
                proj.weight[0] = 0
                proj.weight[0, 0] = 6.0
            layer.mlp.down_proj.weight[:, 0] *= 1e-3
    return model


def batches(n=4, batch=4, seq=12, seed=0):
    """Token batches whose every sequence starts with the outlier token, as every text starts with BOS."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(OUTLIER + 1, tiny.V, (batch, seq), generator=g)
        ids[:, 0] = OUTLIER
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    return out


def int8(model, granularity):
    return compress.quantize(copy.deepcopy(model), "int8-dynamic", granularity=granularity)


def test_outlier_channel_is_real():
    model, b = outlier_llama(), batches()
    seen = {}
    h = model.model.layers[0].mlp.down_proj.register_forward_hook(lambda m, a, o: seen.update(x=a[0]))
    model(**b[0])
    h.remove()
    x = seen["x"].abs()
    assert x[:, 0, 0].min() > 300 * x[:, 1:].max()  # one value per sequence dwarfs every other token's


def test_compare_identical_models_and_each_kind():
    lm, b = outlier_llama(), batches(n=2)
    same = fidelity.compare(lm, copy.deepcopy(lm), b)
    assert same["kind"] == "causal-lm" and same["examples"] == 8
    assert same["ppl_ratio"] == pytest.approx(1.0) and same["kl"] == pytest.approx(0.0, abs=1e-6)
    assert same["agreement"] == 1.0 and not fidelity.problems(same, fidelity.limits_for("quantize"))
    classifier, _ = make("bert")
    x = tiny.inputs("text", batch=4)
    n = fidelity.compare(classifier, copy.deepcopy(classifier), [x])
    assert n["kind"] == "logits" and n["agreement"] == 1.0 and n["cosine"] == pytest.approx(1.0, abs=1e-6)
    encoder = T.BertModel(classifier.config).eval()
    n = fidelity.compare(encoder, copy.deepcopy(encoder), [x])
    assert n["kind"] == "hidden" and n["cosine"] == pytest.approx(1.0, abs=1e-6)
    other = T.BertModel(classifier.config).eval()  # a different random init: far from the first
    n = fidelity.compare(encoder, other, [x])
    assert fidelity.problems(n, fidelity.limits_for("quantize")) and fidelity.problems(n, fidelity.limits_for("prune"))


def test_per_tensor_int8_is_caught_and_per_token_is_not():
    model, b = outlier_llama(), batches()
    numbers = fidelity.compare_many(model, {g: int8(model, g) for g in ("per-tensor", "per-token")}, b)
    limits = fidelity.limits_for("quantize")
    assert fidelity.problems(numbers["per-tensor"], limits)
    assert not fidelity.problems(numbers["per-token"], limits)
    assert numbers["per-tensor"]["kl"] > 10 * numbers["per-token"]["kl"]
    result = fidelity.guard("quantize", model, int8(model, "per-tensor"), b)
    assert not result["passed"] and result["warning"].startswith("quantize: ") and "\n" not in result["warning"]
    # the layers the outlier neuron feeds (every MLP's down_proj) are the ones the per-tensor kernel damages most, each
    # by far; which of them is worst depends on float order, so only the group is asserted
    q = int8(model, "per-tensor")
    names = q.config.compress["quantization"]["modules"]
    errors = layer_errors(model, q, names, b)
    down = {n: e for n, e in errors.items() if n.endswith("mlp.down_proj")}
    rest = [e for n, e in errors.items() if n not in down]
    assert len(down) == len(model.model.layers) and min(down.values()) > 10 * max(rest)


def test_guard_falls_back_from_per_tensor_to_per_token():
    model, b = outlier_llama(), batches()
    before = copy.deepcopy(model)
    q, summary = quantize_with_guard(model, "int8-dynamic", {"granularity": "per-tensor"}, b)
    assert q.config.compress["quantization"]["options"]["granularity"] == "per-token"
    assert summary["fidelity"]["passed"] and summary["fallback"].startswith("int8-dynamic per-tensor -> int8-dynamic")
    assert [a["config"] for a in summary["attempts"]] == ["int8-dynamic per-tensor", "int8-dynamic per-token"]
    assert summary["fidelity"]["kl"] < summary["attempts"][0]["kl"]
    _, kept = quantize_with_guard(copy.deepcopy(before), "int8-dynamic", {"granularity": "per-tensor"}, b,
                                  fallback=False)  # fmt: skip
    assert kept["fallback"] is None and not kept["fidelity"]["passed"] and "(limit" in kept["fidelity"]["warning"]


def test_guard_keeps_worst_layers_in_float_or_names_the_damage():
    model, b = outlier_llama(), batches()
    strict = fidelity.Limits(max_kl=1e-12)  # nothing quantized can meet it
    q, summary = quantize_with_guard(model, "int8-dynamic", {"granularity": "per-token"}, b, limits=strict)
    configs = [a["config"] for a in summary["attempts"]]
    assert configs[0] == "int8-dynamic per-token" and "1 layer(s) kept in float" in configs[1]
    assert not summary["fidelity"]["passed"] and summary["fallback"].startswith("no configuration within the limits")
    assert summary["fidelity"]["kl"] <= min(a["kl"] for a in summary["attempts"])
    assert "model.layers.0.mlp.down_proj" in q.config.compress["quantization"]["options"]["skip"]


def test_granularity_auto_uses_fidelity_not_speed_alone(monkeypatch):
    faster_per_tensor = lambda models, *a, **k: {"per-tensor": 0.001, "per-token": 0.002, "float": 0.003}  # noqa: E731
    monkeypatch.setattr("compress.stats.latency_side_by_side", faster_per_tensor)
    model, b = outlier_llama(), batches()
    q = compress.quantize(copy.deepcopy(model), "int8-dynamic", calibration=b)  # auto is the default
    entry = q.config.compress["quantization"]
    assert entry["options"]["granularity"] == "per-token"  # per-tensor is faster here, and wrecks this model
    seen = entry["granularity_auto"]
    assert seen["chosen"] == "per-token" and "beyond the limits" in seen["reason"]
    assert entry["granularity_auto"]["batch1_ms"] == {"per-tensor": 1.0, "per-token": 2.0}
    assert entry["granularity_auto"]["float_batch1_ms"] == 3.0
    plain, _ = make("llama")
    loose = fidelity.Limits(max_ppl_ratio=10, max_kl=10)
    q = compress.quantize(copy.deepcopy(plain), "int8-dynamic", calibration=b, limits=loose)
    assert q.config.compress["quantization"]["options"]["granularity"] == "per-tensor"  # allowed and faster
    monkeypatch.setattr(
        "compress.stats.latency_side_by_side", lambda *a, **k: {"per-tensor": 2.0, "per-token": 1.0, "float": 3.0}
    )
    q = compress.quantize(copy.deepcopy(plain), "int8-dynamic", calibration=b, limits=loose)
    assert q.config.compress["quantization"]["options"]["granularity"] == "per-token"
    q = compress.quantize(copy.deepcopy(plain), "int8-dynamic")  # no data to check per-tensor with
    assert q.config.compress["quantization"]["granularity_auto"]["chosen"] == "per-token"


def test_auto_warns_when_the_kernel_it_keeps_is_slower_than_float(monkeypatch):
    """On a CPU without VNNI, per-token on `torch._int_mm` (no x86 engine) is many times slower than float: the accurate
    kernel the guard keeps can be slower than not quantizing at all, and the user must hear it."""
    slow = lambda models, *a, **k: {"per-tensor": 0.001, "per-token": 0.021, "float": 0.002}  # noqa: E731
    monkeypatch.setattr("compress.stats.latency_side_by_side", slow)
    with pytest.warns(UserWarning, match=r"per-token is 10\.5x slower than the float model"):
        compress.quantize(outlier_llama(), "int8-dynamic", calibration=batches())  # per-tensor wrecks it
    plain, _ = make("llama")
    loose = fidelity.Limits(max_ppl_ratio=10, max_kl=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # per-tensor is allowed and faster than float: nothing to say
        compress.quantize(plain, "int8-dynamic", calibration=batches(), limits=loose)


def test_auto_choice_is_recorded_and_reloads_exactly(tmp_path):
    model, b = outlier_llama(), batches()
    q = compress.quantize(model, "int8-dynamic", calibration=b)
    compress.save(q, tmp_path / "q")
    again = compress.load(tmp_path / "q")
    assert again.config.compress["quantization"]["granularity_auto"]["chosen"] in auto.KERNELS
    with torch.no_grad():
        assert torch.equal(q(**b[0]).logits, again(**b[0]).logits)


@pytest.mark.parametrize("method", ["int8-dynamic", "bnb-int8", "bnb-nf4"])
def test_quantized_weights_count_as_weights(method, tmp_path):
    from compress.quantize import METHODS

    if METHODS[method].unusable():
        pytest.skip(METHODS[method].unusable())
    torch.manual_seed(0)
    cfg = {**tiny.GQA, "hidden_size": 64, "intermediate_size": 128, "head_dim": 16, "num_attention_heads": 4}
    model = T.LlamaForCausalLM(T.LlamaConfig(**cfg)).eval()  # widths on bitsandbytes' 4-bit CPU grid
    params, macs = count_params(model), estimate_macs(model, 16)
    q = compress.quantize(copy.deepcopy(model), method, embeddings=True) if method == "int8-dynamic" else (
        compress.quantize(copy.deepcopy(model), method))  # fmt: skip
    assert count_params(q) == params and estimate_macs(q, 16) == macs
    if method != "int8-dynamic":
        return
    compress.save(q, tmp_path / "q", tokenizer=tiny.word_tokenizer())
    r = tiny.run_cli("inspect", tmp_path / "q", "--seq-len", "16")
    assert r.returncode == 0, r.stderr
    assert f"parameters: {params:,}" in r.stdout and f"{macs / 1e9:.3f}G" in r.stdout


def test_cli_quantize_auto_with_calibration_texts(tmp_path):
    compress.save(outlier_llama(), tmp_path / "m", tokenizer=tiny.word_tokenizer())
    word = f"w{OUTLIER - 4}"  # the word-level tokenizer's ids 4.. are w0, w1, ...
    (tmp_path / "c.txt").write_text("\n".join(f"{word} {s}" for s in tiny.sentences(16)) + "\n")
    r = tiny.run_cli("quantize", tmp_path / "m", "--calibration", tmp_path / "c.txt", "--output", tmp_path / "q")
    assert r.returncode == 0, r.stderr
    assert "(per-token: per-tensor beyond the limits" in r.stdout
    assert compress.load(tmp_path / "q").config.compress["quantization"]["options"]["granularity"] == "per-token"
