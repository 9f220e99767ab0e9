"""Recipes: schema round-trip and rejections, overrides, a tiny end-to-end run, reports, resume after interruption."""

import json
import subprocess

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

import compress
from compress.errors import CompressError
from compress.recipe.load import load_recipe
from compress.recipe.runner import run_recipe
from compress.recipe.schema import Recipe
from tiny import accelerate_launch, make, run_cli, sentences, word_tokenizer

GOOD = {
    "name": "tiny",
    "model": "MODEL",
    "task": "text-classification",
    "license": "apache-2.0",
    "data": {
        "source": "csv",
        "files": {"train": "TRAIN", "test": "TEST"},
        "calibration_size": 16,
        "eval_size": 24,
        "max_length": 16,
    },
    "stages": [
        {"prune": {"heads": 0.5, "mlp": 0.5, "criterion": "activation"}},
        {"distill": {"steps": 4, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1, "save_every": 2}},
        {"quantize": {"method": "int8-dynamic"}},
        {"evaluate": {"repeats": 3, "latency_batch_sizes": [1, 4], "peak_memory": False}},
    ],
}


@pytest.fixture(scope="module")
def assets_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    model, _ = make("bert")
    compress.save(model, root / "model", tokenizer=word_tokenizer())
    for name, seed in (("train", 0), ("test", 1)):
        rows = ["text,label"] + [f"{s},{i % 2}" for i, s in enumerate(sentences(40, seed))]
        (root / f"{name}.csv").write_text("\n".join(rows) + "\n")
    return root


def _recipe(assets_dir, tmp_path, **changes) -> str:
    text = json.dumps({**GOOD, **changes}).replace("MODEL", str(assets_dir / "model"))
    text = text.replace("TRAIN", str(assets_dir / "train.csv")).replace("TEST", str(assets_dir / "test.csv"))
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(json.loads(text), sort_keys=False))
    return path


def test_end_to_end_reports_card_and_resume(assets_dir, tmp_path, monkeypatch):
    stages = GOOD["stages"][:-1] + [{"evaluate": {"repeats": 3, "latency_batch_sizes": [1, 4]}}]
    recipe = _recipe(assets_dir, tmp_path, stages=stages)
    out = tmp_path / "run"
    results = run_recipe(recipe, out)
    assert [r["stage"] for r in results] == ["01-prune", "02-distill", "03-quantize", "04-evaluate"]
    report = json.loads((out / "report.json").read_text())
    rows = report["evaluation"]["rows"]
    assert [r["name"] for r in rows] == ["dense", "01-prune", "02-distill", "03-quantize"]
    assert all(r["speedup_b1"] > 0 and r["peak_memory_mb"] > 0 for r in rows)
    # each row's accuracy is its own model's, on the first eval_size test rows: recomputed here independently
    for row, folder in zip(
        rows, [assets_dir / "model", *(out / s / "model" for s in ("01-prune", "02-distill", "03-quantize"))]
    ):
        assert row["accuracy"] == pytest.approx(_accuracy(folder, assets_dir / "model", sentences(40, 1)[:24])), row
    assert rows[1]["params"] < rows[0]["params"] and rows[3]["size_bytes"] < rows[2]["size_bytes"]
    assert (out / "pareto.png").stat().st_size > 10_000 and "| dense |" in (out / "report.md").read_text()
    card = (out / "final" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["license"] == "apache-2.0" and meta["pipeline_tag"] == "text-classification"
    assert "compress.load" in card  # head-pruned BERT needs the plan-aware loader
    final = compress.load(out / "final")
    assert final.config.compress["heads"]
    # resume: everything finished is skipped (stage.json untouched)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("0*/stage.json")}
    run_recipe(recipe, out, resume=True)
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("0*/stage.json")}


def _accuracy(folder, tokenizer_folder, texts) -> float:
    """Accuracy of the saved model on `texts` labelled i % 2 (the test CSV's labels)."""
    import torch
    import transformers as T

    x = T.AutoTokenizer.from_pretrained(tokenizer_folder)(
        texts, padding=True, truncation=True, max_length=16, return_tensors="pt"
    )
    with torch.no_grad():
        pred = compress.load(folder).eval()(**x).logits.argmax(-1)
    return float((pred == torch.arange(len(texts)) % 2).float().mean())


def test_resume_after_interruption(assets_dir, tmp_path, monkeypatch):
    from compress.recipe import evaluation

    recipe = _recipe(assets_dir, tmp_path)
    out = tmp_path / "run"

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluation, "evaluate_models", boom)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, out)
    assert (out / "03-quantize" / "stage.json").exists() and not (out / "04-evaluate").exists()
    assert not list(out.glob(".04-evaluate.tmp-*"))
    stamp = (out / "01-prune" / "stage.json").stat().st_mtime_ns
    monkeypatch.undo()
    run_recipe(recipe, out, resume=True)
    assert (out / "01-prune" / "stage.json").stat().st_mtime_ns == stamp
    assert (out / "04-evaluate" / "stage.json").exists() and (out / "report.json").exists()


def test_resume_with_changed_distill_settings_starts_distillation_afresh(assets_dir, tmp_path):
    recipe, out = _recipe(assets_dir, tmp_path), tmp_path / "run"
    run_recipe(recipe, out)  # leaves a checkpoint at step 2 of 4 in 02-distill.run
    stamp = (out / "01-prune" / "stage.json").stat().st_mtime_ns
    console = Console(record=True, width=200)
    run_recipe(recipe, out, resume=True, overrides=["stages.1.lr=0.01"], console=console)
    assert (
        "distill: its settings changed since the interrupted run, so its checkpoints are discarded and "
        "distillation restarts from step 0" in console.export_text()
    )
    curve = json.loads((out / "02-distill.run" / "loss_curve.json").read_text())["curve"]
    assert curve[0]["lr"] == pytest.approx(0.01)  # not the old run's first steps, continued from its checkpoint
    assert (out / "01-prune" / "stage.json").stat().st_mtime_ns == stamp


def test_set_override(assets_dir, tmp_path):
    r = load_recipe(_recipe(assets_dir, tmp_path), ["stages.1.steps=7", "data.eval_size=5"])
    assert r.stages[1].steps == 7 and r.data.eval_size == 5


BROKEN = [
    ({"stages": [{"prune": {"heads": 1.5}}]}, "stages.0.prune.heads"),
    ({"stages": [{"prune": {"hedas": 0.5}}]}, "stages.0.prune.hedas"),
    ({"stages": [{"distill": {"steps": 0}}]}, "stages.0.distill"),
    ({"stages": [{"prune": {"criterion": "vibes"}}]}, "stages.0.prune.criterion"),
    ({"stages": [{"distil": {}}]}, "stages.0"),
    ({"stages": [{"sparsify": {"pattern": "2:5:1"}}]}, "stages.0.sparsify"),
    ({"stages": [{"sparsify": {"sparsity": 1.0}}]}, "stages.0.sparsify.sparsity"),
    ({"stages": [{"quantize": {"method": "int8-dynamic"}}, {"sparsify": {}}]}, "stages"),
    ({"stages": []}, "stages"),
    ({"task": "dancing"}, "task"),
    ({"modle": "x"}, "modle"),
    ({"data": {"source": "csv", "eval_size": 0}}, "data.eval_size"),
    ({"stages": [{"quantize": {"method": "int8-dynamic"}}, {"prune": {"heads": 0.5}}]}, "stages"),
    ({"stages": [{"push": {"repo": "a/b"}}, {"evaluate": {}}]}, "stages"),
    ({"stages": [{"prune": {"mlp": 0.5}}, {"train": {}}]}, "stages"),
]


@pytest.mark.parametrize("change,where", BROKEN)
def test_broken_recipes_name_file_and_field(assets_dir, tmp_path, change, where):
    with pytest.raises(CompressError) as e:
        load_recipe(_recipe(assets_dir, tmp_path, **change))
    assert str(e.value).startswith(f"`recipe.yaml: {where}")


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=8), st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=4
    )
)
def test_random_junk_is_rejected_cleanly(junk):
    raw = {**GOOD, "stages": [{"prune": {**junk}}]}
    try:
        Recipe.model_validate(raw)
    except Exception as e:  # pydantic ValidationError (a ValueError) — never an unrelated crash
        assert isinstance(e, ValueError)
    raw2 = {**GOOD, **{k: v for k, v in junk.items() if k not in GOOD}}
    if set(raw2) != set(GOOD):
        with pytest.raises(ValueError):
            Recipe.model_validate(raw2)


def test_round_trip(assets_dir, tmp_path):
    from compress.recipe.runner import _yaml_form

    r = load_recipe(_recipe(assets_dir, tmp_path))
    again = Recipe.model_validate(yaml.safe_load(yaml.safe_dump(_yaml_form(r))))
    assert again == r


def test_cli_bad_recipe_exit_2_nothing_written(assets_dir, tmp_path):
    bad = _recipe(assets_dir, tmp_path, stages=[{"prune": {"heads": 2}}])
    r = run_cli("run", bad, "--output", tmp_path / "out")
    assert r.returncode == 2 and "stages.0.prune.heads" in r.stderr and "recipe.yaml" in r.stderr
    assert not (tmp_path / "out").exists()


def test_reference_docs_are_current():
    from pathlib import Path

    from compress.recipe.docs import render

    docs = Path(__file__).parents[1] / "docs" / "recipe.md"
    assert docs.read_text() == render(), "regenerate with: python -m compress.recipe.docs > docs/recipe.md"


def test_shipped_recipes_and_templates_validate():
    from pathlib import Path

    files = sorted((Path(__file__).parents[1] / "recipes").rglob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        load_recipe(f)


def test_quantize_stage_validated_early(assets_dir, tmp_path):
    with pytest.raises(CompressError, match="stages.1.quantize.*unknown quantization method"):
        load_recipe(_recipe(assets_dir, tmp_path, stages=[{"prune": {"mlp": 0.5}}, {"quantize": {"method": "int3"}}]))


def test_train_stage_gives_a_headless_encoder_its_task_head(tmp_path):
    import transformers as T

    encoder = T.BertModel(make("bert")[0].config)  # no classification head, like all-MiniLM-L6-v2
    compress.save(encoder, tmp_path / "enc", tokenizer=word_tokenizer())
    rows = ["text,label"] + [f"{s},{int(s.split()[0][1:]) % 2}" for s in sentences(48)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    recipe = {
        **GOOD,
        "model": str(tmp_path / "enc"),
        "data": {**GOOD["data"], "files": {"train": str(tmp_path / "d.csv"), "test": str(tmp_path / "d.csv")}},
        "stages": [
            {"train": {"steps": 6, "batch_size": 8, "lr": 1e-2, "last_layers": 1}},
            {"prune": {"mlp": 0.5}},
            {"evaluate": {"repeats": 3, "latency_batch_sizes": [1], "peak_memory": False}},
        ],
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    run_recipe(tmp_path / "r.yaml", tmp_path / "out")
    teacher = compress.load(tmp_path / "out" / "01-train" / "model")
    assert type(teacher).__name__ == "BertForSequenceClassification"
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [r["name"] for r in report["evaluation"]["rows"]] == ["dense", "02-prune"]
    assert report["evaluation"]["rows"][0]["params"] == teacher.num_parameters()


@pytest.mark.parametrize(
    "family,task,distill,metric",
    [
        ("bert-base", "sentence-embedding", {"embedding_weight": 1.0, "logits_weight": 0.0}, "cosine_vs_dense"),
        ("llama", "causal-lm", {"chat_samples": 5, "chat_max_new_tokens": 3}, "perplexity"),
    ],
)
def test_other_text_tasks_run_end_to_end(assets_dir, tmp_path, family, task, distill, metric):
    import transformers as T

    model = T.BertModel(make("bert")[0].config) if family == "bert-base" else make(family)[0]
    compress.save(model, tmp_path / "m", tokenizer=word_tokenizer())
    stages = [
        {"prune": {"heads": 0.5 if task != "causal-lm" else 1 / 3, "mlp": 0.5}},
        {"distill": {"steps": 3, "batch_size": 4, "warmup_steps": 1, **distill}},
        {
            "evaluate": {
                "peak_memory": False,
                "repeats": 3,
                "latency_batch_sizes": [1],
                "generation_prompt": "w1 w2",
                "chat_prompts": ["w1 w2 w3", "w4"],
                "chat_expect": ["w", "nothing-like-this"],
                "max_new_tokens": 4,
            }
        },
    ]
    path = _recipe(assets_dir, tmp_path, model=str(tmp_path / "m"), task=task, stages=stages)
    run_recipe(path, tmp_path / "out")
    ev = json.loads((tmp_path / "out" / "report.json").read_text())["evaluation"]
    assert ev["primary_metric"] == metric and [r["name"] for r in ev["rows"]] == ["dense", "01-prune", "02-distill"]
    dense, pruned = ev["rows"][0], ev["rows"][1]
    if task == "sentence-embedding":
        import transformers as T

        from compress.evaluate.embeddings import cosine_fidelity, embed

        # the pruned row's cosine is its own model's mean-pooled embeddings vs the dense model's on the first
        # eval_size test rows, recomputed here independently
        tok = T.AutoTokenizer.from_pretrained(tmp_path / "m")
        x = [dict(tok(sentences(40, 1)[:24], padding=True, truncation=True, max_length=16, return_tensors="pt"))]
        want = cosine_fidelity(embed(model.eval(), x), embed(compress.load(tmp_path / "out" / "01-prune" / "model"), x))
        assert dense["cosine_vs_dense"] == pytest.approx(1.0) and pruned["cosine_vs_dense"] == pytest.approx(want)
        assert want < 1 - 1e-6 and 0 <= pruned["probe_accuracy"] <= 1
    else:
        assert ev["higher_is_better"] is False and all(r["perplexity"] > 1 for r in ev["rows"])
        assert all(isinstance(r["generation"], str) and len(r["answers"]) == 2 for r in ev["rows"])
        assert dense["answer_agreement"] == 1.0 and all(0 <= r["answer_agreement"] <= 1 for r in ev["rows"])
        assert all(r["answers_correct"] == (0.5 if r["answers"][0] else 0.0) for r in ev["rows"])
        assert dense["gen_speedup"] == 1.0 and all(r["gen_tokens_per_s"] > 0 for r in ev["rows"])
        chats = json.loads((tmp_path / "out" / "02-distill.run" / "chat_samples.json").read_text())
        assert len(chats) == 5 and all(c.startswith("[CLS] ") and c.count("[SEP]") == 2 for c in chats)
        assert "## Chat answers" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.multiprocess
def test_recipe_under_accelerate_launch_two_processes(assets_dir, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` (two gloo processes on a CPU): distillation runs on both, the
    other stages on the main process; one set of outputs, the same stages as a one-process run."""
    recipe = _recipe(assets_dir, tmp_path)
    launch = [
        *accelerate_launch(2),
        "-m",
        "compress.cli",
        "run",
        str(recipe),
        "--output",
        str(tmp_path / "out"),
    ]
    r = subprocess.run(launch, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["01-prune", "02-distill", "03-quantize", "04-evaluate"]
    assert report["stages"][1]["summary"]["processes"] == 2
    assert [r["name"] for r in report["evaluation"]["rows"]] == ["dense", "01-prune", "02-distill", "03-quantize"]
    assert compress.load(tmp_path / "out" / "final").config.compress["quantization"]
    assert r.stdout.count("[2/4] distill") == 1  # progress lines come from the main process only


def test_dense_size_of_a_hub_model_is_measured_from_a_saved_copy(assets_dir, tmp_path):
    """It used to be 4 bytes x parameters in the measured size column."""
    from types import SimpleNamespace

    from compress.recipe.evaluation import dense_folder
    from compress.stats import weights_size

    model = compress.load(assets_dir / "model")
    assert dense_folder(SimpleNamespace(model_path=str(assets_dir / "model")), model, tmp_path) == assets_dir / "model"
    folder = dense_folder(SimpleNamespace(model_path="someone/on-the-hub"), model, tmp_path)
    assert folder.parent == tmp_path and compress.load(folder).config.vocab_size == model.config.vocab_size
    assert weights_size(folder) == weights_size(assets_dir / "model")
