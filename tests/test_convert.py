"""Standard-config outputs convert with the usual tools: a uniformly pruned Llama (MLP neurons and a layer removed,
written as a plain Llama config) goes through CTranslate2's transformers converter and gives the same logits."""

import json

import numpy as np
import pytest
import torch

import compress
from tiny import make, word_tokenizer

ctranslate2 = pytest.importorskip("ctranslate2", reason="CTranslate2 (a dev dependency) is not installed")


def test_uniform_llama_plan_converts_with_ctranslate2(tmp_path):
    from ctranslate2.converters import TransformersConverter

    model, _ = make("llama")
    compress.prune(model, mlp=0.5, layers=1, layout="uniform", criterion="magnitude")
    tok = word_tokenizer()
    tok.bos_token, tok.eos_token = "[CLS]", "[SEP]"  # CTranslate2 records both in its config
    compress.save(model, tmp_path / "pruned", tokenizer=tok)
    config = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert config["compress"]["plain_loadable"] and config["num_hidden_layers"] == 2
    TransformersConverter(str(tmp_path / "pruned")).convert(str(tmp_path / "ct2"))
    generator = ctranslate2.Generator(str(tmp_path / "ct2"), device="cpu", compute_type="float32")
    ids = [[3, 5, 7, 9, 11], [4, 6, 8, 10, 12]]
    logits = np.array(generator.forward_batch([tok.convert_ids_to_tokens(i) for i in ids]))
    with torch.inference_mode():
        ref = model(input_ids=torch.tensor(ids)).logits.numpy()
    assert logits.shape == ref.shape and np.abs(logits - ref).max() < 1e-4


def test_uniform_whisper_mlp_plan_converts_with_ctranslate2(tmp_path):
    from ctranslate2.converters import TransformersConverter

    from tiny import inputs, whisper_asr

    model, processor = whisper_asr()
    compress.prune(model, mlp=0.5, layout="uniform", criterion="magnitude")  # Whisper's standard-config widths
    compress.save(model, tmp_path / "pruned", tokenizer=processor)
    config = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert config["compress"]["plain_loadable"] and config["encoder_ffn_dim"] == config["decoder_ffn_dim"] == 20
    TransformersConverter(str(tmp_path / "pruned"), copy_files=["tokenizer.json"]).convert(str(tmp_path / "ct2"))
    whisper = ctranslate2.models.Whisper(str(tmp_path / "ct2"), device="cpu", compute_type="float32")
    features = inputs("speech2text", batch=2)["input_features"]
    storage = ctranslate2.StorageView.from_array(features.numpy())
    with torch.inference_mode():
        ref = model.model.encoder(features).last_hidden_state.numpy()
        greedy = model.generate(features, decoder_input_ids=torch.tensor([[1, 2]] * 2), max_new_tokens=6)
    assert np.abs(np.array(whisper.encode(storage, to_cpu=True)) - ref).max() < 1e-4
    results = whisper.generate(storage, [[1, 2]] * 2, max_length=8, beam_size=1)
    for result, row in zip(results, greedy.tolist()):  # transformers returns the new tokens only
        tokens = result.sequences_ids[0]
        assert tokens and tokens == row[: len(tokens)]  # CTranslate2 stops at the end token, transformers pads
