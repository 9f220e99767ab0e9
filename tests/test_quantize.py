"""Quantization: every method x family runs close to fp32, saves real low-bit tensors, reloads bit-identically through
`compress.load`; composes with pruning; skip rules; clean errors (Python and CLI: exit 2, nothing written)."""

import copy
import json
import sys
import warnings

import pytest
import torch
from torch import nn
import transformers as T
from safetensors import safe_open

import compress
import tiny
from compress.quantize import METHODS, Method, int8_dynamic, list_methods, register_method
from tiny import first_output, inputs, make, run_cli

# relative error vs fp32 allowed per method on the unit-scale tiny models (4-bit is coarse by nature: 16 levels)
INT8_8BIT = 0.06  # int8-dynamic with 8-bit activations
# without VNNI the fused int8 kernel (per-tensor; per-token too where torch has it) gets 7-bit activations: 2x step
INT8 = INT8_8BIT * (2 if int8_dynamic._fused_reduce_range() and int8_dynamic.per_tensor_usable() else 1)
TOLERANCE = {"bf16": 0.03, "fp16": 0.005, "int8-dynamic": INT8, "bnb-int8": 0.06, "bnb-nf4": 0.45, "bnb-fp4": 0.45}
# bytes of the quantized layers' tensors / their fp32 bytes
BYTES_RATIO = {"int8-dynamic": 0.35, "bnb-int8": 0.35, "bnb-nf4": 0.2, "bnb-fp4": 0.2}


def wide(family: str):
    """Tiny models whose widths fit bitsandbytes' CPU 4-bit kernel (out % 32, in % 64)."""
    torch.manual_seed(0)
    if family == "llama":
        cfg = {**tiny.GQA, "hidden_size": 64, "intermediate_size": 128, "head_dim": 16, "num_attention_heads": 4}
        model, kind = T.LlamaForCausalLM(T.LlamaConfig(**cfg)), "causal"
    else:
        cfg = T.BertConfig(vocab_size=tiny.V, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                           intermediate_size=128)  # fmt: skip
        model, kind = T.BertForSequenceClassification(cfg), "text"
    tiny._rescale(model)
    return model.eval(), kind


def run_model(model, kind):
    x = inputs(kind)
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    x = {k: v.to(dtype) if v.is_floating_point() else v for k, v in x.items()}
    with torch.no_grad():
        return first_output(model(**x)).float()


def rel_err(a, b):
    return float((a - b).norm() / b.norm())


def linear_bytes(folder, modules) -> int:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        tensors = [f.get_tensor(k) for k in f.keys() if any(k.startswith(m + ".") for m in modules)]
    return sum(t.numel() * t.element_size() for t in tensors)


def dtypes(folder, keys=None) -> set:
    """dtypes of the given tensors in a checkpoint (default: all floating-point ones)."""
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        tensors = [f.get_tensor(k) for k in (keys if keys is not None else f.keys())]
    return {t.dtype for t in tensors if keys is not None or t.is_floating_point()}


def roundtrip(model, kind, method, tmp_path, **options):
    """fp32 reference, quantize, save, reload: returns (ref, quantized, its output, reloaded output). A layer skipped
    for its width fails the caller's test (warned, never hidden): these models fit every method's grid."""
    ref = run_model(model, kind)
    compress.save(model, tmp_path / "fp32")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        q = compress.quantize(model, method, **options)
    skipped = [str(w.message) for w in caught if "have widths that are not" in str(w.message)]
    assert not skipped, skipped
    out = run_model(q, kind)
    compress.save(q, tmp_path / "q")
    reloaded = compress.load(tmp_path / "q")  # raises on missing / unexpected keys
    return ref, q, out, run_model(reloaded, kind)


CASES = [(f, m) for f in ("bert", "llama", "gpt2") for m in ("bf16", "fp16", "int8-dynamic", "bnb-int8")]
CASES += [(f, m) for f in ("bert", "llama") for m in ("bnb-nf4", "bnb-fp4")]


@pytest.mark.parametrize("family,method", CASES)
def test_quantize_save_load_exact(family, method, tmp_path):
    model, kind = wide(family) if method in ("bnb-nf4", "bnb-fp4") else make(family)
    ref, q, out, again = roundtrip(model, kind, method, tmp_path)
    assert rel_err(out, ref) < TOLERANCE[method]
    assert torch.equal(out, again)
    entry = q.config.compress["quantization"]
    assert entry["method"] == method
    fp32_size = (tmp_path / "fp32" / "model.safetensors").stat().st_size
    q_size = (tmp_path / "q" / "model.safetensors").stat().st_size
    if method in ("bf16", "fp16"):
        assert q_size < 0.55 * fp32_size
        assert dtypes(tmp_path / "q") == {{"bf16": torch.bfloat16, "fp16": torch.float16}[method]}
    else:
        modules = entry["modules"]
        assert modules and q_size < fp32_size
        ratio = linear_bytes(tmp_path / "q", modules) / linear_bytes(tmp_path / "fp32", modules)
        assert ratio < BYTES_RATIO[method], ratio
        low = {torch.int8} if method in ("int8-dynamic", "bnb-int8") else {torch.uint8}
        assert dtypes(tmp_path / "q", [m + ".weight" for m in modules]) == low


@pytest.mark.parametrize("family", ["distilbert", "mpnet", "vit", "wav2vec2", "whisper", "qwen3", "gemma2"])
def test_int8_dynamic_other_families(family, tmp_path):
    """One of each remaining structure: encoders, vision, audio, encoder-decoder, more decoder LMs."""
    model, kind = make(family)
    ref, q, out, again = roundtrip(model, kind, "int8-dynamic", tmp_path)
    assert rel_err(out, ref) < TOLERANCE["int8-dynamic"] and torch.equal(out, again)


# bert: a plain table; vit: patches, no token table; whisper and gpt2: the table is tied to the output layer
@pytest.mark.parametrize("family,quantized", [("bert", True), ("vit", False), ("whisper", False), ("gpt2", False)])
def test_int8_embeddings_reload_exactly_and_shrink_the_table(family, quantized, tmp_path):
    model, kind = make(family)
    ref, q, out, again = roundtrip(model, kind, "int8-dynamic", tmp_path, embeddings=True)
    assert rel_err(out, ref) < TOLERANCE["int8-dynamic"] and torch.equal(out, again)
    names = q.config.compress["quantization"]["embeddings"]
    assert bool(names) == quantized
    if quantized:
        assert dtypes(tmp_path / "q", [names[0] + ".weight"]) == {torch.int8}


@pytest.mark.parametrize("method", ["bnb-int8", "bnb-nf4", "bf16"])
def test_plain_from_pretrained_loads_transformers_formats(method, tmp_path):
    model, kind = wide("llama")
    _, q, out, _ = roundtrip(model, kind, method, tmp_path)
    plain, info = T.LlamaForCausalLM.from_pretrained(tmp_path / "q", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    assert torch.equal(run_model(plain, kind), out)


def test_4bit_save_after_forward_keeps_file_and_model(tmp_path):
    """bitsandbytes repacks 4-bit weights lossily on the first CPU forward; saving after it must still be exact."""
    model, kind = wide("bert")
    q = compress.quantize(model, "bnb-nf4")
    first = run_model(q, kind)
    compress.save(q, tmp_path / "q")
    assert torch.equal(run_model(q, kind), first)
    again = compress.load(tmp_path / "q")
    assert torch.equal(run_model(again, kind), first)
    run_model(again, kind)  # a loaded 4-bit model is guarded too
    compress.save(again, tmp_path / "q2")
    assert torch.equal(run_model(compress.load(tmp_path / "q2"), kind), first)


# the 4-bit code books: NF4 from the QLoRA paper (Dettmers et al. 2023, appendix E), FP4 as bitsandbytes defines it
NF4 = [-1.0, -0.6961928, -0.5250731, -0.3949175, -0.2844414, -0.1848449, -0.0910500, 0.0,
       0.0795803, 0.1609302, 0.2461123, 0.3379152, 0.4407098, 0.5626170, 0.7229568, 1.0]  # fmt: skip


@pytest.mark.parametrize("method", ["bnb-nf4", "bnb-fp4"])
def test_4bit_weights_use_their_own_code_book(method):
    """Every dequantized weight / its block's absmax is a value of the method's code book: nf4 and fp4 differ."""
    import bitsandbytes.functional as F

    from compress.quantize.bnb import BLOCK, import_bitsandbytes

    bnb = import_bitsandbytes()
    books = {"bnb-nf4": torch.tensor(NF4), "bnb-fp4": F.get_4bit_type("fp4", device="cpu").float()}
    q = compress.quantize(wide("bert")[0], method)
    layers = [m for m in q.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers
    for m in layers:
        w = F.dequantize_4bit(m.weight.data, m.weight.quant_state).float().reshape(-1, BLOCK)
        r = (w / w.abs().amax(1, keepdim=True)).reshape(-1, 1)
        for name, book in books.items():
            off = float((r - book[None]).abs().amin(1).max())  # distance to the nearest code value
            assert (off < 1e-3) == (name == method), (name, off)


@pytest.mark.parametrize("repack", [True, False])
def test_4bit_save_is_exact_whether_or_not_the_cpu_repacks(repack, tmp_path):
    """bitsandbytes repacks 4-bit weights on the first CPU forward only on CPUs with AVX512-BF16: both branches are
    forced here, whatever the CPU (the repack is what such a CPU's forward does, applied directly)."""
    from bitsandbytes.functional import _convert_weight_packed_for_cpu
    from safetensors.torch import load_file

    from compress.quantize.bnb import import_bitsandbytes

    bnb = import_bitsandbytes()
    model, kind = wide("bert")
    q = compress.quantize(model, "bnb-nf4")
    compress.save(q, tmp_path / "before")
    layers = [m for m in q.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for m in layers:
        m.support_avx512bf16_for_cpu = False  # the forward never repacks, on any CPU
    if repack:
        for m in layers:
            m.weight.data, m.weight.quant_state = _convert_weight_packed_for_cpu(m.weight.data, m.weight.quant_state)
    else:
        run_model(q, kind)
    packed = [bool(getattr(m.weight.quant_state, "packing_format_for_cpu", False)) for m in layers]
    assert packed == [repack] * len(layers)
    compress.save(q, tmp_path / "after")
    before, after = (
        load_file(tmp_path / "before" / "model.safetensors"),
        load_file(tmp_path / "after" / "model.safetensors"),
    )
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    again = compress.load(tmp_path / "after")  # a loaded model repacked before its guard is installed: a warning
    for m in [m for m in again.modules() if isinstance(m, bnb.nn.Linear4bit)][:1]:
        m.weight.data, m.weight.quant_state = _convert_weight_packed_for_cpu(m.weight.data, m.weight.quant_state)
    from compress.quantize.bnb import keep_4bit_savable

    with pytest.warns(UserWarning, match="already repacked for this CPU .* will not reproduce its checkpoint"):
        keep_4bit_savable(again)


def test_int8_per_tensor_runs_both_cpu_paths():
    """Without VNNI the per-tensor kernel gets 7-bit activations (reduce_range): both settings are forced here, on
    any CPU; they give different outputs (the flag reaches the kernel), each close to fp32 where the CPU can run it
    without int16 saturation."""
    model, kind = make("bert")
    ref = run_model(model, kind)
    q = compress.quantize(model, "int8-dynamic", granularity="per-tensor")
    outs = {}
    for reduce_range in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(int8_dynamic, "_fused_reduce_range", lambda r=reduce_range: r)
            for m in q.modules():
                if isinstance(m, int8_dynamic.Int8Linear):
                    m._packed = None
            outs[reduce_range] = run_model(q, kind)
        assert torch.isfinite(outs[reduce_range]).all()
        if reduce_range or torch.cpu._is_vnni_supported():  # 7-bit activations: twice the quantization step
            assert rel_err(outs[reduce_range], ref) < INT8_8BIT * (2 if reduce_range else 1)
    assert not torch.equal(outs[True], outs[False])


def test_int8_per_token_fused_and_int_mm_paths_keep_each_token_exact():
    """per-token runs on the fused per-call kernel after scaling every row into [-1, 1] (`torch._int_mm` without an x86
    engine): both paths are forced here. With one token 1000x louder than the rest, per-tensor loses the quiet tokens
    and neither per-token path does; the fused one is not just `_per_tensor` again (that would fail the first check)."""
    from compress.quantize.int8_dynamic import Int8Linear

    torch.manual_seed(0)
    dense = nn.Linear(64, 48)
    x = torch.randn(16, 64)
    x[0] *= 1000
    with torch.no_grad():
        ref = dense(x)[1:]
        layers = {g: Int8Linear.from_float(dense, g) for g in ("per-token", "per-tensor")}
        amax = x.abs().amax(dim=1, keepdim=True)
        got = {
            "fused": layers["per-token"]._per_token_fused(x, amax)[1:],
            "int_mm": layers["per-token"]._per_token_int_mm(x, amax)[1:],
            "per-tensor": layers["per-tensor"]._per_tensor(x)[1:],
        }
    assert rel_err(got["per-tensor"], ref) > 0.3
    assert rel_err(got["fused"], ref) < 0.03 and rel_err(got["int_mm"], ref) < 0.02
    assert not torch.equal(got["fused"], got["int_mm"])


@pytest.mark.parametrize("granularity", ["per-token", "per-tensor"])
@pytest.mark.parametrize("family", ["bert", "llama", "gpt2"])
def test_prune_then_int8_dynamic(family, granularity, tmp_path):
    model, kind = make(family)
    compress.prune(model, heads=0.5 if family != "llama" else 0.0, mlp=0.5, layout="global", criterion="magnitude")
    ref, q, out, again = roundtrip(model, kind, "int8-dynamic", tmp_path, granularity=granularity)
    assert rel_err(out, ref) < TOLERANCE["int8-dynamic"]
    assert torch.equal(out, again)
    record = json.loads((tmp_path / "q" / "config.json").read_text())["compress"]
    assert record["neurons"] and record["quantization"]["options"]["granularity"] == granularity


def test_prune_then_bnb_warns_about_off_grid_widths(tmp_path):
    model, kind = wide("llama")
    compress.prune(model, mlp=0.3, layout="global", criterion="magnitude")  # widths off the 64 grid
    ref = run_model(model, kind)
    with pytest.warns(UserWarning, match=r"bnb-nf4: \d+ layer\(s\) have widths.*mlp\.(up|gate|down)_proj"):
        q = compress.quantize(model, "bnb-nf4")
    entry = q.config.compress["quantization"]
    assert entry["modules"] and any("mlp" in k for k in entry["kept"])
    out = run_model(q, kind)
    assert rel_err(out, ref) < TOLERANCE["bnb-nf4"]
    compress.save(q, tmp_path / "q")
    assert torch.equal(run_model(compress.load(tmp_path / "q"), kind), out)
    q8 = compress.quantize(model, "bnb-int8")  # the input model is untouched by bitsandbytes methods
    compress.save(q8, tmp_path / "q8")
    assert torch.equal(run_model(compress.load(tmp_path / "q8"), kind), run_model(q8, kind))


def test_skip_rules():
    model, _ = make("bert")
    q = compress.quantize(model, "int8-dynamic")
    entry = q.config.compress["quantization"]
    assert "classifier" in entry["kept"] and "bert.pooler.dense" in entry["kept"]
    assert type(q.classifier) is torch.nn.Linear and len(entry["modules"]) == 3 * 6
    model, _ = make("llama")
    entry = compress.quantize(model, "int8-dynamic", skip_edge_layers=True, skip=["*.mlp.down_proj"])
    entry = entry.config.compress["quantization"]
    assert entry["modules"] == ["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj",
                                "model.layers.1.self_attn.v_proj", "model.layers.1.self_attn.o_proj",
                                "model.layers.1.mlp.gate_proj", "model.layers.1.mlp.up_proj"]  # fmt: skip
    assert "lm_head" in entry["kept"] and "model.layers.0.mlp.up_proj" in entry["kept"]
    model, _ = make("gpt2")  # lm_head is tied to the embeddings: kept by default, untied with skip_head=False
    entry = compress.quantize(copy.deepcopy(model), "int8-dynamic").config.compress["quantization"]
    assert "lm_head" in entry["kept"] and len(entry["modules"]) == 12
    entry = compress.quantize(model, "int8-dynamic", skip_head=False).config.compress["quantization"]
    assert entry["modules"][-1] == "lm_head" and len(entry["modules"]) == 13 and entry["untied_output"] == "lm_head"


def test_errors_name_the_field_and_alternatives(monkeypatch):
    model, _ = make("bert")
    with pytest.raises(
        compress.CompressError, match=r"`method`: unknown .*'int3'.*available here: .*bnb-nf4.*int8-dynamic"
    ):
        compress.quantize(model, "int3")
    with pytest.raises(compress.CompressError, match=r"`granularity`.*per-token"):
        compress.quantize(model, "int8-dynamic", granularity="per-row")
    with pytest.raises(compress.CompressError, match=r"`quant_type`: bnb-nf4 has no option"):
        compress.quantize(model, "bnb-nf4", quant_type="fp4")
    with pytest.raises(compress.CompressError, match=r"`skip`.*match no module"):
        compress.quantize(model, "int8-dynamic", skip=["encoder.nothing"])
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    with pytest.raises(compress.CompressError, match=r"bnb-int8 cannot run here.*compress\[quant\].*int8-dynamic"):
        compress.quantize(model, "bnb-int8")
    monkeypatch.undo()
    q = compress.quantize(model, "int8-dynamic")
    with pytest.raises(compress.CompressError, match="already quantized"):
        compress.quantize(q, "bf16")


def test_registry():
    assert set(list_methods()) >= {"bf16", "fp16", "int8-dynamic", "bnb-int8", "bnb-nf4", "bnb-fp4"}
    with pytest.raises(ValueError, match="already registered"):
        register_method(Method("bf16", "dup", METHODS["bf16"].config, METHODS["bf16"].apply))


def test_cli_quantize_and_bad_input(tmp_path):
    model, kind = make("bert")
    compress.prune(model, heads=0.5, mlp=0.5, criterion="magnitude")
    compress.save(model, tmp_path / "pruned")
    r = run_cli("quantize", tmp_path / "pruned", "--method", "int8-dynamic", "--output", tmp_path / "q")
    assert r.returncode == 0, r.stderr
    assert "int8-dynamic" in r.stdout and (tmp_path / "q" / "model.safetensors").exists()
    q = compress.load(tmp_path / "q")
    assert q.config.compress["quantization"]["method"] == "int8-dynamic" and q.config.compress["heads"]
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, field in [
        (["--method", "int3"], "`method`"),
        (["--method", "bf16", "--granularity", "per-token"], "`granularity`"),
    ]:
        r = run_cli("quantize", tmp_path / "pruned", *args, "--output", tmp_path / "bad")
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert field in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr  # caught before loading
        if field == "`method`":
            assert "bnb-nf4" in r.stderr and "int8-dynamic" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
