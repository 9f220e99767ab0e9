"""The CLI: prune / inspect work; bad input gives one line naming the field, exit code 2, and writes nothing."""

import json

import pytest

import compress
from tiny import make, word_tokenizer
from tiny import run_cli as run


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny BERT and a tiny Llama with word-level tokenizers, saved as checkpoints."""
    root = tmp_path_factory.mktemp("models")
    fast = word_tokenizer()
    out = {}
    for family in ("bert", "llama"):
        model, _ = make(family)
        compress.save(model, root / family, tokenizer=fast)
        out[family] = root / family
    (root / "calib.txt").write_text("\n".join(" ".join(f"w{(i * 7 + j) % 60}" for j in range(12)) for i in range(20)))
    out["calib"] = root / "calib.txt"
    return out


def test_prune_then_inspect(saved, tmp_path):
    r = run(
        "prune",
        saved["bert"],
        "--heads",
        0.5,
        "--mlp",
        0.5,
        "--layout",
        "global",
        "--criterion",
        "fisher",
        "--calibration",
        saved["calib"],
        "--output",
        tmp_path / "p",
    )
    assert r.returncode == 0, r.stderr
    r_prune = r
    assert "params" in r.stdout and (tmp_path / "p" / "model.safetensors").exists()
    assert not list(tmp_path.glob(".p.tmp-*"))
    r = run("inspect", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    assert "pruned: yes" in r.stdout
    pruned = compress.load(tmp_path / "p")
    s = pruned.config.compress["history"][-1]
    # global layout: 6 of the 12 heads and 60 of the 120 neurons go, each head with its q/k/v rows (+ biases) and its
    # o columns (4 * 32 * 8 + 3 * 8 weights), each neuron with its up row (+ bias) and down column (2 * 32 + 1)
    assert s["params_before"] - s["params_after"] == 6 * (4 * 32 * 8 + 3 * 8) + 60 * (2 * 32 + 1)
    assert s["params_after"] == sum(p.numel() for p in pruned.parameters())
    layers = pruned.bert.encoder.layer
    assert sum(layer.attention.self.query.out_features // 8 for layer in layers) == 6  # kept heads of 8 dims
    assert sum(layer.intermediate.dense.out_features for layer in layers) == 60  # kept neurons
    assert f"params {s['params_before']:,} -> {s['params_after']:,}" in " ".join(r_prune.stdout.split())
    assert (tmp_path / "p" / "tokenizer.json").exists() and "no tokenizer" not in r_prune.stderr


def test_prune_without_a_tokenizer_warns_that_none_is_saved(tmp_path):
    model, _ = make("bert")
    compress.save(model, tmp_path / "m")  # no tokenizer files
    r = run("prune", tmp_path / "m", "--heads", 0.5, "--output", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    assert "no tokenizer loaded from" in r.stderr and "the output is saved without one" in r.stderr
    assert (tmp_path / "p" / "model.safetensors").exists() and not (tmp_path / "p" / "tokenizer.json").exists()


def test_prune_adaptive_with_refit_then_inspect(saved, tmp_path):
    common = ["--heads", 0.5, "--mlp", 0.5, "--calibration", saved["calib"]]
    r = run("prune", saved["bert"], *common, "--layout", "adaptive", "--output", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    assert "refit" in r.stdout
    r = run("inspect", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    assert "layout adaptive" in r.stdout and "refit" in r.stdout
    r = run("prune", saved["bert"], *common, "--no-reconstruct", "--output", tmp_path / "q")
    assert r.returncode == 0, r.stderr
    assert compress.load(tmp_path / "q").config.compress["history"][-1]["reconstruct"] is None
    r = run("prune", saved["bert"], *common, "--tune-epochs", 2, "--output", tmp_path / "t")
    assert r.returncode == 0, r.stderr
    refit = compress.load(tmp_path / "t").config.compress["history"][-1]["reconstruct"]
    # every layer of the tiny BERT lost units, so each was tuned (or kept as it was where held-out tokens got worse)
    assert refit["tune_epochs"] == 2 and set(refit["per_layer_tune"]) == {"encoder.0", "encoder.1", "encoder.2"}
    assert "tuned" in r.stdout


@pytest.mark.parametrize(
    "args,field",
    [
        (["--heads", "1.2"], "`heads`"),
        (["--mlp", "-0.5"], "`mlp`"),
        (["--criterion", "fisher", "--heads", "0.5"], "`calibration`"),
        (["--criterion", "nonsense", "--heads", "0.5"], "`criterion`"),
        (["--calibration", "/no/such/file.txt", "--heads", "0.5"], "`calibration`"),
        (["--layout", "diagonal", "--heads", "0.5"], "`layout`"),
        (["--layout", "adaptive", "--heads", "0.5"], "`layout`"),
        (["--reconstruct", "--heads", "0.5"], "`reconstruct`"),
        (["--tune-epochs", "2", "--heads", "0.5"], "`tune-epochs`"),
        (["--tune-lr", "0", "--heads", "0.5"], "`tune-lr`"),
    ],
)
def test_bad_input_exit_2_nothing_written(saved, tmp_path, args, field):
    r = run("prune", saved["bert"], *args, "--output", tmp_path / "p")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert field in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_gqa_budget_error(saved, tmp_path):
    r = run("prune", saved["llama"], "--heads", 0.5, "--output", tmp_path / "p")
    assert r.returncode == 2 and "achievable `heads` ratios" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_family_and_missing_model(tmp_path):
    import transformers as T

    T.T5Model(T.T5Config(vocab_size=64, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8)).save_pretrained(
        tmp_path / "t5"
    )
    r = run("prune", tmp_path / "t5", "--heads", 0.5, "--output", tmp_path / "p")
    assert r.returncode == 2 and "unsupported model family 't5'" in r.stderr and "llama" in r.stderr
    r = run("prune", tmp_path / "nothing", "--heads", 0.5, "--output", tmp_path / "p")
    assert r.returncode == 2 and "`model`" in r.stderr
    assert not (tmp_path / "p").exists()


def test_existing_output_needs_overwrite(saved, tmp_path):
    out = tmp_path / "p"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = run("prune", saved["bert"], "--mlp", 0.5, "--output", out)
    assert r.returncode == 2 and "--overwrite" in r.stderr and (out / "keep.txt").read_text() == "mine"
    r = run("prune", saved["bert"], "--mlp", 0.5, "--output", out, "--overwrite")
    assert r.returncode == 0, r.stderr
    assert not (out / "keep.txt").exists() and (out / "config.json").exists()


def test_uniform_llama_cli_output_is_a_standard_checkpoint(saved, tmp_path):
    import transformers as T

    r = run(
        "prune",
        saved["llama"],
        "--heads",
        0.34,
        "--mlp",
        0.5,
        "--layers",
        1,
        "--round-to",
        8,
        "--output",
        tmp_path / "p",
    )
    assert r.returncode == 0, r.stderr
    plain, info = T.AutoModelForCausalLM.from_pretrained(tmp_path / "p", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    cfg = plain.config
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size) == (
        2,
        4,
        2,
        16,
    )
    assert sorted(p.name for p in (tmp_path / "p").iterdir() if p.suffix in (".bin", ".pt", ".pth")) == []


def test_distill_command(saved, tmp_path):
    r = run("prune", saved["bert"], "--heads", 0.5, "--mlp", 0.5, "--output", tmp_path / "student")
    assert r.returncode == 0, r.stderr
    args = [
        "distill",
        "--teacher",
        saved["bert"],
        "--student",
        tmp_path / "student",
        "--data",
        saved["calib"],
        "--steps",
        3,
        "--batch-size",
        4,
        "--lr",
        1e-3,
        "--output",
        tmp_path / "kd",
    ]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "kd" / "model" / "model.safetensors").exists() and (tmp_path / "kd" / "loss_curve.json").exists()
    assert compress.load(tmp_path / "kd" / "model").config.compress["heads"]
    r = run(*args)
    assert r.returncode == 2 and "--resume" in r.stderr
    r = run(*args[:-2], "--loss", "telepathy", "--output", tmp_path / "kd2")
    assert r.returncode == 2 and "`loss`" in r.stderr and not (tmp_path / "kd2").exists()
    r = run(*args[:-2], "--eval-every", 2, "--output", tmp_path / "kd3")
    assert r.returncode == 2 and "`eval-every`" in r.stderr and "--eval-data" in r.stderr
    assert not (tmp_path / "kd3").exists()
    r = run(*args[:-2], "--eval-every", 2, "--eval-data", saved["calib"], "--output", tmp_path / "kd4")
    assert r.returncode == 0, r.stderr
    curve = json.loads((tmp_path / "kd4" / "loss_curve.json").read_text())
    assert [h["step"] for h in curve["held_out"]] == [0, 2, 3] and curve["kept_step"] in (2, 3)
    assert "kept step" in r.stdout


def test_run_finds_shipped_recipes_by_name_and_names_them_when_missing(tmp_path):
    from compress.recipe.load import DEFAULT, find_recipe, shipped

    assert find_recipe(DEFAULT).name == "minilm-sentiment.yaml" and DEFAULT in shipped()
    r = run("run", "no-such-recipe", "--output", tmp_path / "o")
    assert r.returncode == 2 and "minilm-sentiment" in r.stderr and not (tmp_path / "o").exists()
