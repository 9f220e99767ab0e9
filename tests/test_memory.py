"""Peak memory of a checkpoint measured in a fresh process: grows with the model and its activations."""

import pytest
import torch

import compress
from compress.memory import peak_rss
from tiny import make


def test_peak_rss_grows_with_model_and_batch(tmp_path):
    import transformers as T

    small, _ = make("bert")
    big = T.BertModel(T.BertConfig(vocab_size=5000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4))
    compress.save(small, tmp_path / "small")
    compress.save(big, tmp_path / "big")  # ~13 MB of weights more than the tiny one
    s = peak_rss(tmp_path / "small", {"input_ids": torch.ones(2, 16, dtype=torch.long)})
    b = peak_rss(tmp_path / "big", {"input_ids": torch.ones(32, 512, dtype=torch.long)})  # + tens of MB activations
    assert 0 < s and b - s > 32 * 2**20


def test_failed_measurement_warns_with_the_child_error(tmp_path):
    """A measuring process that fails gives None (never a made-up number) and a warning carrying its last error line."""
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.warns(UserWarning, match=r"peak memory of .*broken not measured: .*exited with code 1 \(.+\)"):
        assert peak_rss(tmp_path / "broken", {"input_ids": torch.ones(1, 4, dtype=torch.long)}) is None
