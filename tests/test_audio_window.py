"""Whisper's audio window cut (`prune(audio_window=N)`) and int8 of a tied output layer, on a tiny random Whisper whose
front end is the real one (16 kHz, 10 ms hop: 50 encoder positions per second) with a 3-second window."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import transformers as T

import compress
from compress.errors import CompressError
from compress.evaluate.speech import transcribe_features, wer
from compress.recipe.schema import PruneStage
from tiny import make, whisper_asr


def _whisper():
    torch.manual_seed(0)
    model, proc = whisper_asr()  # its tokenizer and generation settings; a 3-second front end instead of 1 second
    cfg = model.config.to_dict()
    cfg.update(max_source_positions=150)
    model = T.WhisperForConditionalGeneration(T.WhisperConfig(**cfg)).eval()
    model.generation_config = copy.deepcopy(whisper_asr()[0].generation_config)
    fe = T.WhisperFeatureExtractor(feature_size=8, chunk_length=3)  # 300 mel frames
    return model, T.WhisperProcessor(feature_extractor=fe, tokenizer=proc.tokenizer)


def _features(proc, n=4, seconds=1.5):
    rng = np.random.default_rng(0)
    audio = [rng.standard_normal(int(16_000 * seconds)).astype("float32") * 0.1 for _ in range(n)]
    return proc.feature_extractor(audio, sampling_rate=16_000, return_tensors="pt").input_features


def _calibration(features):
    labels = torch.randint(3, 60, (features.shape[0], 6))
    return [{"input_features": features[i : i + 2], "labels": labels[i : i + 2]} for i in range(0, len(features), 2)]


def test_window_cut_is_a_standard_checkpoint_with_its_own_feature_extractor(tmp_path):
    model, proc = _whisper()
    dense = copy.deepcopy(model)
    plan = compress.prune(model, audio_window=2, reconstruct=False)
    assert plan.summary["audio_window"] == 2
    assert model.config.max_source_positions == 100
    assert torch.equal(model.model.encoder.embed_positions.weight, dense.model.encoder.embed_positions.weight[:100])
    compress.save(model, tmp_path / "m", tokenizer=proc)

    plain, info = T.WhisperForConditionalGeneration.from_pretrained(tmp_path / "m", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    fe = T.AutoProcessor.from_pretrained(tmp_path / "m").feature_extractor
    assert (fe.chunk_length, fe.nb_max_frames, fe.n_samples) == (2, 200, 32_000)

    full = _features(proc)  # 300 frames, as a pipeline computes them for every model
    own = fe(list(np.zeros((1, 16_000), dtype="float32")), sampling_rate=16_000, return_tensors="pt").input_features
    assert own.shape[-1] == 200
    ids = torch.tensor([[1, 2, 5, 6]] * len(full))
    with torch.inference_mode():
        want = plain.eval()(input_features=full[..., :200], decoder_input_ids=ids).logits
        got = model(input_features=full, decoder_input_ids=ids).logits  # longer features: the first 200 frames
        loaded = compress.load(tmp_path / "m")(input_features=full, decoder_input_ids=ids).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert torch.equal(loaded, got)


def test_window_cut_generates_from_full_window_features():
    model, proc = _whisper()
    compress.prune(model, audio_window=1, reconstruct=False)
    full = _features(proc, n=2)
    texts = transcribe_features(model, proc, full, batch_size=2, max_new_tokens=5)
    with torch.inference_mode():
        direct = model.generate(input_features=full[..., :100], max_new_tokens=5)
    assert texts == [t.strip() for t in proc.tokenizer.batch_decode(direct, skip_special_tokens=True)]


def test_window_refit_fits_the_full_window_model_on_the_kept_frames():
    model, proc = _whisper()
    calib = _calibration(_features(proc, n=8, seconds=1.0))
    plan = compress.prune(model, audio_window=2, calibration=calib, reconstruct=True)
    refit = plan.summary["reconstruct"]
    assert refit["sites"] == "all" and refit["sublayers"] == 15  # 3 encoder layers x 2 + 3 decoder layers x 3
    assert refit["rel_error_after"] <= refit["rel_error_before"]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_window_bad_input():
    bert, _ = make("bert")
    with pytest.raises(CompressError, match="`audio_window`.*only Whisper"):
        compress.prune(bert, audio_window=10)
    model, _ = _whisper()
    for bad in (0, 4, 1.5):
        with pytest.raises(CompressError, match="`audio_window`"):
            compress.prune(copy.deepcopy(model), audio_window=bad, reconstruct=False)
    assert PruneStage(audio_window=20).audio_window == 20
    with pytest.raises(ValueError, match="audio_window"):
        PruneStage(audio_window=31)


@pytest.mark.parametrize("family", ["whisper", "gpt2"])
def test_int8_of_a_tied_output_layer_unties_it_and_reloads_exactly(family, tmp_path):
    model, _ = make(family)
    emb = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight is emb
    kept = compress.quantize(copy.deepcopy(model), "int8-dynamic", granularity="per-tensor")
    assert type(kept.get_output_embeddings()).__name__ == "Linear"  # skip_head (default): stays float and tied
    compress.quantize(model, "int8-dynamic", granularity="per-tensor", skip_head=False)
    head = model.get_output_embeddings()
    assert type(head).__name__ == "Int8Linear" and head.weight.dtype == torch.int8
    assert model.get_input_embeddings().weight.dtype == torch.float32
    assert model.config.tie_word_embeddings is False
    compress.save(model, tmp_path / "m")
    loaded = compress.load(tmp_path / "m")
    assert torch.equal(loaded.get_input_embeddings().weight, model.get_input_embeddings().weight)
    x = {"input_ids": torch.tensor([[1, 5, 9, 3]])}
    if family == "whisper":
        x = {"input_features": torch.randn(1, 8, 32), "decoder_input_ids": x["input_ids"]}
    with torch.inference_mode():
        assert torch.equal(loaded(**x).logits, model(**x).logits)


def test_window_and_int8_head_recipe_end_to_end(fake_speech_cache, tmp_path):
    """The whisper-tiny-asr recipe's stages on the tiny 3-second Whisper: each stage's model reads its own window."""
    import json

    import yaml

    from compress import assets
    from compress.evaluate.speech import transcribe
    from compress.recipe.runner import run_recipe

    model, proc = _whisper()
    compress.save(model, tmp_path / "model", tokenizer=proc)
    recipe = {
        "name": "tiny-window",
        "model": str(tmp_path / "model"),
        "task": "speech-recognition",
        "data": {"source": "espeak-speech", "subset": "sentences", "calibration_size": 4, "max_length": 8},
        "stages": [
            {"prune": {"audio_window": 2, "reconstruct": False}},
            {"quantize": {"method": "int8-dynamic", "options": {"granularity": "per-tensor", "skip_head": False}}},
            {"evaluate": {"repeats": 3, "latency_batch_sizes": [1], "max_new_tokens": 4}},
        ],
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    run_recipe(tmp_path / "r.yaml", tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "report.json").read_text())["evaluation"]["rows"]
    assert [r["name"] for r in rows] == ["dense", "01-prune", "02-quantize"]
    assert all(r["e2e_speedup"] > 0 for r in rows) and rows[1]["macs"] < rows[0]["macs"]
    final = compress.load(tmp_path / "out" / "final")
    assert final.config.max_source_positions == 100 and final.config.tie_word_embeddings is False
    assert type(final.proj_out).__name__ == "Int8Linear"
    assert T.AutoProcessor.from_pretrained(tmp_path / "out" / "final").feature_extractor.nb_max_frames == 200
    clips = assets.module("espeak-speech").load("sentences")["test"]
    hyps = transcribe(final, proc, [c["audio"] for c in clips], max_new_tokens=8)  # 3-second features, cut
    assert rows[2]["wer"] == pytest.approx(wer([c["text"] for c in clips], hyps))
