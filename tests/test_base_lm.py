"""Base causal LMs (tokenizers without a chat template): a tiny Llama and a tiny GPT-2 run prune -> distill -> quantize
-> evaluate from a recipe with local text files, with plain-text prompts for timing and samples; the chat-only fields
are refused up front with one line naming the field."""

import json

import pytest
import yaml

import compress
from compress.data import token_windows
from compress.distill import sequence
from compress.errors import CompressError
from compress.recipe.runner import run_recipe
from tiny import make, sentences, word_tokenizer, write_recipe


def base_tokenizer():
    tok = word_tokenizer()
    tok.chat_template = None  # a base model's tokenizer
    return tok


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    root = tmp_path_factory.mktemp("base-lm")
    for name, seed in (("train", 0), ("test", 1)):
        (root / f"{name}.txt").write_text("\n".join(sentences(40, seed)) + "\n")
    return root


def recipe(tmp_path, texts, family, stages) -> str:
    tmp_path.mkdir(exist_ok=True)
    model, _ = make(family)
    compress.save(model, tmp_path / "m", tokenizer=base_tokenizer())
    files = {"train": texts / "train.txt", "test": texts / "test.txt"}
    return write_recipe(tmp_path / "r.yaml", f"base-{family}", tmp_path / "m", "causal-lm", files, stages, eval_size=16)


EVALUATE = {
    "evaluate": {
        "peak_memory": False,
        "repeats": 3,
        "latency_batch_sizes": [1],
        "generation_prompt": "w1 w2",
        "max_new_tokens": 4,
    }
}


@pytest.mark.parametrize("family,heads", [("llama", 1 / 3), ("gpt2", 0.5)])
def test_base_lm_recipe_end_to_end(tmp_path, texts, family, heads):
    stages = [
        {"prune": {"heads": heads, "mlp": 0.25}},
        {"distill": {"steps": 3, "batch_size": 4, "warmup_steps": 1}},
        {"quantize": {"method": "int8-dynamic", "options": {"granularity": "per-tensor"}}},
        EVALUATE,
    ]
    out = tmp_path / "out"
    run_recipe(recipe(tmp_path, texts, family, stages), out)
    report = json.loads((out / "report.json").read_text())
    rows = report["evaluation"]["rows"]
    assert [r["name"] for r in rows] == ["dense", "01-prune", "02-distill", "03-quantize"]
    assert all(r["perplexity"] > 1 and isinstance(r["generation"], str) for r in rows)
    assert rows[0]["gen_speedup"] == 1.0 and all(r["gen_tokens_per_s"] > 0 for r in rows)
    assert rows[3]["params"] == rows[2]["params"] < rows[0]["params"]  # int8 weights counted as weights
    stages = {s["kind"]: s["summary"] for s in report["stages"]}
    assert {"ppl_ratio", "kl", "passed"} <= set(stages["prune"]["fidelity"])
    guard = stages["quantize"]["fidelity"]
    assert guard["kind"] == "causal-lm" and guard["examples"] == 16
    assert stages["quantize"]["attempts"][0]["config"] == "int8-dynamic per-tensor"
    md = (out / "report.md").read_text()
    assert "## Fidelity guard" in md and "| 03-quantize |" in md and "## Generation sample" in md
    final = compress.load(out / "final")
    assert final.config.compress["quantization"]["method"] == "int8-dynamic"


def test_chat_fields_need_a_chat_template(tmp_path, texts):
    evaluate = {"evaluate": {**EVALUATE["evaluate"], "chat_prompts": ["w1 w2"]}}
    with pytest.raises(CompressError, match=r"^`stages\.1\.evaluate\.chat_prompts`: needs a chat template"):
        run_recipe(recipe(tmp_path / "a", texts, "llama", [{"prune": {"mlp": 0.25}}, evaluate]), tmp_path / "a/out")
    distill = {"distill": {"steps": 2, "batch_size": 4, "chat_samples": 3}}
    with pytest.raises(CompressError, match=r"^`stages\.0\.distill\.chat_samples`: .*base model"):
        run_recipe(recipe(tmp_path / "b", texts, "llama", [distill]), tmp_path / "b/out")
    assert not (tmp_path / "b/out/01-distill").exists()


def test_prompts_are_plain_text_without_a_template():
    base, chat = base_tokenizer(), word_tokenizer()
    assert sequence.prompt_ids(base, "w1 w2") == base("w1 w2")["input_ids"]
    assert sequence.prompt_ids(chat, "w1 w2") == chat.apply_chat_template(
        [{"role": "user", "content": "w1 w2"}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    with pytest.raises(CompressError, match="chat_samples"):
        sequence.conversations(base, ["w1"], ["w2"])
    model, _ = make("gpt2")
    answers = sequence.greedy_answers(model, base, ["w1 w2", "w3"], max_new_tokens=3)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


def test_token_windows_read_long_texts_to_the_end():
    tok = base_tokenizer()
    long, short = " ".join(f"w{i % 30}" for i in range(45)), "w1 w2 w3"
    full = tok(long)["input_ids"]
    windows = token_windows(tok, [long, "", short], max_length=16)  # a text with no tokens gives no window
    assert [len(w["input_ids"]) for w in windows] == [16, 16, len(full) - 32, len(tok(short)["input_ids"])]
    assert sum((w["input_ids"] for w in windows[:3]), []) == full
    assert all(w["attention_mask"] == [1] * len(w["input_ids"]) for w in windows)
    # a tail shorter than min_tokens is dropped, a text's first window never is
    assert len(token_windows(tok, [long, short], max_length=16, min_tokens=len(full) - 31)) == 3


def test_distill_keeps_the_weights_best_on_the_select_split(tmp_path, texts):
    (texts / "validation.txt").write_text("\n".join(sentences(12, 2)) + "\n")
    distill = {"distill": {"steps": 4, "batch_size": 4, "warmup_steps": 1, "eval_every": 2}}
    path = recipe(tmp_path, texts, "llama", [{"prune": {"mlp": 0.5}}, distill])
    raw = yaml.safe_load(path.read_text())
    raw["data"]["files"]["validation"] = str(texts / "validation.txt")
    path.write_text(yaml.safe_dump(raw))
    run_recipe(path, tmp_path / "out")
    summary = json.loads((tmp_path / "out/report.json").read_text())["stages"][1]["summary"]
    assert [h["step"] for h in summary["held_out"]] == [0, 2, 4] and summary["held_out"][0]["loss"] > 0
    assert summary["kept_step"] == min(summary["held_out"][1:], key=lambda h: h["loss"])["step"]
    for split_name, message in (("dev", r"no split 'dev'"), ("test", r"'test' is also data\.eval_split")):
        raw["stages"][1]["distill"]["select_split"] = split_name
        path.write_text(yaml.safe_dump(raw))
        with pytest.raises(CompressError, match=rf"^`stages\.1\.distill\.select_split`: {message}"):
            run_recipe(path, tmp_path / split_name)
        assert not (tmp_path / split_name / "01-prune").exists()  # refused before the first stage
