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
