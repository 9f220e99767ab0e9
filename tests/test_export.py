"""ONNX export: every encoder family, pruned to different widths per layer, runs in ONNX Runtime with the outputs of
PyTorch (1e-4) at batch sizes and lengths other than the traced ones; int8 export; bad input is refused cleanly."""

import json
import sys

import numpy as np
import pytest
import torch

import compress
from compress.errors import CompressError
from tiny import first_output, inputs, make, run_cli, word_tokenizer, write_recipe

pytest.importorskip("onnxruntime", reason="needs the compress[onnx] extra")
import onnxruntime as ort  # noqa: E402

from compress.export.runtime import feed, load_exported  # noqa: E402

ENCODERS = ["bert", "distilbert", "mpnet", "vit", "wav2vec2"]  # one model per adapter that exports


def _global_pruned(family):
    model, kind = make(family)
    batches = [inputs(kind, batch=4, seed=s) for s in range(2)]
    compress.prune(model, heads=0.5, mlp=0.5, layout="global", criterion="activation", calibration=batches)
    record = model.config.compress
    widths = {len(v["q"]) for v in record["heads"].values()} | {len(v) for v in record["neurons"].values()}
    return model, kind, batches, widths


@pytest.mark.slow
@pytest.mark.parametrize("family", ENCODERS)
def test_pruned_encoder_matches_pytorch_in_onnx_runtime(family, tmp_path):
    model, kind, batches, widths = _global_pruned(family)
    assert len(widths) > 2  # per-layer widths: the case plain configs cannot express
    info = compress.export(model, tmp_path / "onnx", calibration=batches, source="somewhere")
    assert info["verification"]["max_abs_diff"] <= 1e-4 and info["verification"]["batches"] == 4
    assert info["source"] == "somewhere" and info["params"] == sum(p.numel() for p in model.parameters())
    ort_model = load_exported(tmp_path / "onnx")
    for batch, seq in ((1, 5), (5, 13)):  # other shapes than the traced (2, 16) one
        x = inputs(kind, batch=batch, seq=seq, seed=9)
        with torch.inference_mode():
            ref = first_output(model(**x))
        got = ort_model(**x)[0]
        assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-4, rtol=0)
    # a bare InferenceSession takes the tokenizer's / processor's arrays under the documented names and axes
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    names = {i.name: i.shape for i in session.get_inputs()}
    assert names == info["inputs"] and [o.name for o in session.get_outputs()] == [info["output"]]
    assert info["output"] == "logits" and (tmp_path / "onnx" / "config.json").exists()


@pytest.mark.slow
def test_int8_export_quantizes_weights_and_embeddings(tmp_path):
    import onnx

    model, kind = make("bert")
    info = compress.export(model, tmp_path / "q", int8=True, tokenizer=word_tokenizer())
    v = info["verification"]
    assert v["max_abs_diff"] <= 1e-4  # the float graph was checked before quantizing
    assert 0 < v["int8"]["max_abs_diff"] < 1 and 0 <= v["int8"]["argmax_agreement"] <= 1
    assert info["int8"] and info["size_bytes"]["onnx"] < info["size_bytes"]["onnx_fp32"]
    graph = onnx.load(str(tmp_path / "q" / "model.onnx")).graph
    assert "MatMulInteger" in {n.op_type for n in graph.node}
    one_byte = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    int8 = {tuple(t.dims) for t in graph.initializer if t.data_type in one_byte}
    assert (64, 32) in int8 and (32, 40) in int8  # the token embedding table (uint8) and the MLP weights (int8)
    assert (tmp_path / "q" / "tokenizer.json").exists() and json.loads((tmp_path / "q" / "export.json").read_text())
    x = inputs(kind, batch=3, seq=7)
    with torch.inference_mode():
        ref = model(**x).logits
    got = load_exported(tmp_path / "q")(**x).logits
    assert got.shape == ref.shape and float((got - ref).abs().max()) < 1


def test_refused_inputs_write_nothing(tmp_path):
    llama, _ = make("llama")
    with pytest.raises(CompressError, match="supported: .*bert.*wav2vec2"):
        compress.export(llama, tmp_path / "a")
    bert, _ = make("bert")
    with pytest.raises(CompressError, match="unknown export format"):
        compress.export(bert, tmp_path / "a", format="tflite")
    quantized = compress.quantize(make("bert")[0], "int8-dynamic")
    with pytest.raises(CompressError, match="quantized by compress .*export the model it was quantized from"):
        compress.export(quantized, tmp_path / "a", int8=True)
    (tmp_path / "b").mkdir()
    with pytest.raises(CompressError, match="already exists"):
        compress.export(bert, tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"] and not list((tmp_path / "b").iterdir())


@pytest.mark.slow
def test_a_graph_off_by_more_than_the_tolerance_is_refused(tmp_path):
    model, _ = make("distilbert")
    with pytest.raises(CompressError, match="differs from PyTorch by"):
        compress.export(model, tmp_path / "x", tolerance=1e-12)
    assert not list(tmp_path.iterdir())


def _cli(*args, block=None):
    return run_cli(*args, prelude=f"sys.modules[{block!r}] = None" if block else "")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-models")
    for family in ("bert", "llama"):
        compress.save(make(family)[0], root / family, tokenizer=word_tokenizer())
    compress.save(compress.quantize(make("bert")[0], "int8-dynamic"), root / "bert-int8")
    return root


@pytest.mark.slow
def test_cli_exports_int8_with_tokenizer(saved, tmp_path):
    r = _cli("export", saved / "bert", "--format", "onnx", "--int8", "--output", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    assert "exported to" in r.stdout and "int8" in r.stdout
    info = json.loads((tmp_path / "o" / "export.json").read_text())
    assert info["int8"] and info["source"] == str(saved / "bert") and "source_safetensors" in info["size_bytes"]
    assert (tmp_path / "o" / "tokenizer.json").exists() and not list(tmp_path.glob(".o.tmp-*"))
    tok = word_tokenizer()
    x = dict(tok(["w1 w2 w3", "w4"], padding=True, return_tensors="np"))
    (logits,) = ort.InferenceSession(str(tmp_path / "o" / "model.onnx")).run(None, x)
    assert logits.shape == (2, 2) and np.isfinite(logits).all()


@pytest.mark.parametrize(
    "model,extra,block,message",
    [
        ("llama", [], None, "`model`: ONNX export does not support the 'llama' family — supported: bert,"),
        ("bert-int8", ["--int8"], None, "quantized by compress (int8-dynamic)"),
        ("bert", [], "onnxruntime", "needs the `compress[onnx]` extra (missing: onnxruntime)"),
        ("bert", ["--format", "tflite"], None, "unknown export format 'tflite'"),
    ],
)
def test_cli_errors_one_line_exit_2_nothing_written(saved, tmp_path, model, extra, block, message):
    r = _cli("export", saved / model, "--output", tmp_path / "o", *extra, block=block)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_cli_refuses_an_existing_output(saved, tmp_path):
    (tmp_path / "o").mkdir()
    r = _cli("export", saved / "bert", "--output", tmp_path / "o")
    assert r.returncode == 2 and "already exists" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not list((tmp_path / "o").iterdir())


@pytest.fixture(scope="module")
def recipe_assets(tmp_path_factory):
    from tiny import sentences

    root = tmp_path_factory.mktemp("export-recipe")
    compress.save(make("bert")[0], root / "model", tokenizer=word_tokenizer())
    for name, seed in (("train", 0), ("test", 1)):
        rows = ["text,label"] + [f"{s},{i % 2}" for i, s in enumerate(sentences(40, seed))]
        (root / f"{name}.csv").write_text("\n".join(rows) + "\n")
    return root


def _recipe_file(root, tmp_path, stages):
    files = {"train": root / "train.csv", "test": root / "test.csv"}
    return write_recipe(tmp_path / "r.yaml", "tiny-export", root / "model", "text-classification", files, stages)


@pytest.mark.slow
def test_recipe_export_stage_is_evaluated_in_onnx_runtime(recipe_assets, tmp_path):
    from compress.recipe.runner import run_recipe

    stages = [
        {"prune": {"heads": 0.5, "mlp": 0.5}},
        {"quantize": {"method": "int8-dynamic"}},
        {"export": {"format": "onnx"}},  # after quantize: exports the float model that quantize started from
        {"evaluate": {"repeats": 3, "latency_batch_sizes": [1, 4], "peak_memory": False}},
    ]
    out = tmp_path / "run"
    run_recipe(_recipe_file(recipe_assets, tmp_path, stages), out)
    stage = json.loads((out / "03-export" / "stage.json").read_text())
    assert stage["summary"]["model"]["from"] == "01-prune" and stage["summary"]["dense"]["from"] == "dense"
    assert stage["summary"]["model"]["max_abs_diff"] <= 1e-4
    folder = out / "03-export"
    assert (folder / "model" / "export.json").exists() and (folder / "dense" / "model.onnx").exists()
    assert not list(out.glob(".03-export*"))
    rows = {r["name"]: r for r in json.loads((out / "report.json").read_text())["evaluation"]["rows"]}
    assert list(rows) == ["dense", "01-prune", "02-quantize", "dense (ORT fp32)", "03-export (ORT fp32)"]
    # the graphs were run: the same predictions as the PyTorch models they came from, timed beside dense PyTorch
    assert rows["dense (ORT fp32)"]["accuracy"] == rows["dense"]["accuracy"]
    assert rows["03-export (ORT fp32)"]["accuracy"] == rows["01-prune"]["accuracy"]
    for name in ("dense (ORT fp32)", "03-export (ORT fp32)"):
        assert rows[name]["speedup_b1"] > 0 and rows[name]["latency_b4_ms"] > 0 and rows[name]["size_bytes"] > 0
    assert rows["03-export (ORT fp32)"]["params"] == rows["01-prune"]["params"]
    assert rows["03-export (ORT fp32)"]["macs"] == rows["01-prune"]["macs"]
    assert "| 03-export (ORT fp32) |" in (out / "report.md").read_text() and (out / "pareto.png").exists()


def test_export_may_follow_quantize_in_a_recipe():
    from compress.recipe.schema import Recipe

    base = {"name": "x", "model": "m", "task": "text-classification", "data": {"source": "csv"}}
    ok = Recipe(**base, stages=[{"quantize": {"method": "int8-dynamic"}}, {"export": {"int8": True}}, {"evaluate": {}}])
    assert ok.stages[1].type == "export" and ok.stages[1].int8
    with pytest.raises(ValueError, match="unknown export format"):
        Recipe(**base, stages=[{"export": {"format": "tflite"}}])
    with pytest.raises(ValueError, match="comes after quantize"):
        Recipe(**base, stages=[{"quantize": {"method": "int8-dynamic"}}, {"export": {}}, {"prune": {"heads": 0.5}}])


def test_recipe_with_an_export_stage_needs_the_extra(monkeypatch):
    from compress.recipe.schema import Recipe

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    base = {"name": "x", "model": "m", "task": "text-classification", "data": {"source": "csv"}}
    with pytest.raises(ValueError, match=r"needs the `compress\[onnx\]` extra \(missing: onnxscript\)"):
        Recipe(**base, stages=[{"export": {"int8": True}}])


@pytest.mark.slow
def test_attention_is_one_node_stays_float_in_int8_and_slow_fusions_are_left_out(tmp_path):
    import onnx

    from compress.export.runtime import SLOW_FUSIONS, session

    model, kind = make("bert")
    info = compress.export(model, tmp_path / "q", int8=True)
    assert info["opset"] == 23
    ops = [n.op_type for n in onnx.load(str(tmp_path / "q" / "model.onnx")).graph.node]
    assert ops.count("Attention") == model.config.num_hidden_layers and "QAttention" not in ops
    assert "Softmax" not in ops and "Transpose" not in ops  # no attention spelled out, fed 3-D (graph.attention_3d)
    assert info["attention_3d"] == model.config.num_hidden_layers
    # compress's sessions leave SkipLayerNormalization unfused (ONNX Runtime's defaults fuse it): the same function.
    # Compared on the float graph: there the fusion only reorders float sums (the export's 1e-4 bound holds); in
    # int8 such a change can move an activation across a quantization step, by an amount no bound can fix
    compress.export(model, tmp_path / "f")
    fused = {}
    for disabled in (SLOW_FUSIONS, []):
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(tmp_path / f"optimized{len(disabled)}.onnx")
        ort.InferenceSession(str(tmp_path / "f" / "model.onnx"), so, disabled_optimizers=disabled)
        fused[len(disabled)] = {n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node}
    assert "SkipLayerNormalization" in fused[0] and "SkipLayerNormalization" not in fused[1]
    x = inputs(kind, batch=2, seq=9, seed=3)
    ours, everything = session(tmp_path / "f" / "model.onnx"), session(tmp_path / "f" / "model.onnx", disabled=[])
    a, b = (s.run(None, feed(s, x))[0] for s in (ours, everything))
    assert np.allclose(a, b, atol=1e-4 * max(1.0, float(np.abs(a).max())), rtol=0)


def test_settle_calls_run_untimed_before_each_timed_call():
    from compress.stats import latency_side_by_side

    calls = {"a": 0, "b": 0}
    models = {name: torch.nn.Identity() for name in calls}
    order = []

    def call(m):
        name = next(n for n, v in models.items() if v is m)
        calls[name] += 1
        order.append(name)

    seconds = latency_side_by_side(models, repeats=3, warmup=1, call=call, settle=2)
    assert calls == {"a": 12, "b": 12} and set(seconds) == {"a", "b"}
    assert order[:6] == ["a"] * 3 + ["b"] * 3  # each model's settle calls come right before its timed call
