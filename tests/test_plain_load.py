"""Uniform plans a config can express load with plain transformers; others need compress.load, never silently."""

import pytest
import torch
import transformers as T

import compress
from tiny import first_output, inputs, make


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "gemma3"])
def test_uniform_gqa_plan_is_a_standard_checkpoint(family, tmp_path):
    model, kind = make(family)
    compress.prune(model, heads=2 / 3, kv_heads=0.5, mlp=0.5, layers=1, criterion="magnitude")
    compress.save(model, tmp_path / "m")
    assert model.config.compress["plain_loadable"] is True
    plain, info = T.AutoModelForCausalLM.from_pretrained(tmp_path / "m", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    assert plain.config.num_attention_heads == 2 and plain.config.num_key_value_heads == 1
    x = inputs(kind)
    with torch.no_grad():
        assert torch.equal(first_output(plain.eval()(**x)), first_output(model(**x)))


@pytest.mark.parametrize("family", ["bert", "vit", "whisper", "gpt2", "distilbert", "wav2vec2"])
def test_uniform_mlp_only_plan_is_a_standard_checkpoint(family, tmp_path):
    model, kind = make(family)
    compress.prune(model, mlp=0.5, layers=1, criterion="magnitude")
    compress.save(model, tmp_path / "m")
    assert model.config.compress["plain_loadable"] is True
    plain, info = getattr(T, type(model).__name__).from_pretrained(tmp_path / "m", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    x = inputs(kind)
    with torch.no_grad():
        assert torch.equal(first_output(plain.eval()(**x)), first_output(model(**x)))


def test_head_pruned_bert_needs_compress_load_and_fails_loudly_without(tmp_path):
    model, kind = make("bert")
    compress.prune(model, heads=0.5, mlp=0.5, layout="global", criterion="magnitude")
    compress.save(model, tmp_path / "m")
    assert model.config.compress["plain_loadable"] is False
    with pytest.raises(Exception, match="size mismatch|mismatch"):
        T.BertForSequenceClassification.from_pretrained(tmp_path / "m")
