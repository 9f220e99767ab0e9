"""What a new user meets first, end to end through the `compress` command line on tiny models:

- a checkpoint saved the way sentence-transformers exports are on the Hub (config `BertForMaskedLM`, weights = bare
  encoder + pooler) gets its classification head, with one line naming what was new and what went unused;
- string class labels (`spam` / `ham`) become ids, and their names land in the final model's config;
- the console shows stage lines, no library noise; the full log is in the run folder;
- a failure inside a stage is one line naming the stage (exit 2 bad input, 1 otherwise), traceback in the log;
- report.md's speed-ups can be checked from the numbers in the same row;
- `compress eval`, `evaluate` package metrics from a local folder, the model card's `base_model`, `save` into an
  existing empty folder.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

import compress
from compress.errors import CompressError
from tiny import hub_style_encoder, make, sentences, write_recipe

NAMES = ("ham", "spam")
METRIC = '''"""Share of predictions equal to their reference (what accuracy is), as an `evaluate` metric."""
import datasets
import evaluate


class ExactShare(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="share of exact matches",
            citation="",
            inputs_description="predictions and references: class ids",
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        return {"share": sum(p == r for p, r in zip(predictions, references)) / len(references)}
'''


def _csv(path: Path, n: int, seed: int) -> None:
    """Sentences labelled `spam` when their first word's number is odd: learnable, two string classes."""
    rows = ["text,label"] + [f"{s},{NAMES[int(s.split()[0][1:]) % 2]}" for s in sentences(n, seed)]
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def hub_run(tmp_path_factory):
    """`compress run` on a Hub-style checkpoint and a csv with string labels: train -> prune -> evaluate (with an
    `evaluate` metric from a local folder). Returns (folder, completed process)."""
    root = tmp_path_factory.mktemp("hub")
    hub_style_encoder(root / "st-model")
    _csv(root / "train.csv", 64, 0)
    _csv(root / "test.csv", 24, 1)
    (root / "exact_share").mkdir()
    (root / "exact_share" / "exact_share.py").write_text(METRIC)
    stages = [
        {"train": {"steps": 6, "batch_size": 8, "lr": 1e-2, "last_layers": 1}},
        {"prune": {"mlp": 0.5}},
        {
            "evaluate": {
                "repeats": 3,
                "latency_batch_sizes": [1, 4],
                "peak_memory": False,
                "metrics": [str(root / "exact_share")],
            }
        },
    ]
    files = {"train": root / "train.csv", "test": root / "test.csv"}
    write_recipe(root / "recipe.yaml", "spam", root / "st-model", "text-classification", files, stages)
    env = {k: v for k, v in os.environ.items() if k not in ("TRANSFORMERS_VERBOSITY",)}  # the library's defaults
    env.update(COMPRESS_PROGRESS="0", HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "compress.cli", "run", str(root / "recipe.yaml"), "--output", str(root / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "out", done


def test_hub_style_checkpoint_gets_its_head_with_one_line(hub_run):
    out, done = hub_run
    lines = [ln for ln in done.stdout.splitlines() if "newly initialised" in ln]
    assert len(lines) == 1, done.stdout
    assert "BertForMaskedLM checkpoint" in lines[0] and "BertForSequenceClassification" in lines[0]
    assert "newly initialised: classifier.{bias,weight}" in lines[0] and "keys not used: none" in lines[0]
    teacher = compress.load(out / "01-train" / "model")  # exact reload of the trained model, pooler included
    assert type(teacher).__name__ == "BertForSequenceClassification"


def test_string_labels_become_ids_and_names_reach_the_final_model(hub_run):
    import transformers

    out, _ = hub_run
    config = json.loads((out / "final" / "config.json").read_text())
    assert config["id2label"] == {"0": "ham", "1": "spam"} and config["label2id"] == {"ham": 0, "spam": 1}
    rows = json.loads((out / "report.json").read_text())["evaluation"]["rows"]
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    pipe = transformers.pipeline(
        "text-classification", model=compress.load(out / "final"), tokenizer=str(out / "final")
    )
    assert {p["label"] for p in pipe(sentences(6, 3))} <= set(NAMES)


def test_console_is_stage_lines_and_the_log_has_the_rest(hub_run):
    out, done = hub_run
    console = done.stdout + done.stderr
    for noise in ("LOAD REPORT", "Loading weights", "Writing model shards", "Traceback"):
        assert noise not in console
    assert [ln for ln in done.stdout.splitlines() if ln.startswith("[")] == [
        "[1/3] train ...",
        "[2/3] prune ...",
        "[3/3] evaluate ...",
    ]
    log = (out / "run.log").read_text()
    assert "[1/3] train" in log and "newly initialised" in log and "\x1b[" not in log


def test_report_speedups_are_checkable_from_the_table(hub_run):
    out, _ = hub_run
    quality = (out / "report.md").read_text().split("## Quality and efficiency")[1]
    table = [ln for ln in quality.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in table[0].strip("|").split("|")]
    rows = [dict(zip(head, (c.strip() for c in ln.strip("|").split("|")))) for ln in table[2:]]
    assert [r["name"] for r in rows] == ["dense", "02-prune"]
    for bs in (1, 4):
        r = rows[1]
        ratio = float(r[f"dense_latency_b{bs}_ms"]) / float(r[f"latency_b{bs}_ms"])
        assert ratio == pytest.approx(float(r[f"speedup_b{bs}"]), rel=2e-3)  # 4 significant digits each


def test_evaluate_package_metric_from_a_local_folder(hub_run):
    out, _ = hub_run
    rows = json.loads((out / "report.json").read_text())["evaluation"]["rows"]
    assert all(r["exact_share.share"] == pytest.approx(r["accuracy"]) for r in rows)


def test_hub_metric_unreachable_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
    from compress.recipe.runner import run_recipe

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    recipe = {
        "name": "x",
        "model": str(tmp_path / "m"),
        "task": "text-classification",
        "data": {"source": "csv", "files": {"train": "a.csv"}},
        "stages": [{"evaluate": {"metrics": ["evaluate:rouge"]}}],
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(CompressError, match=r"stages.0.evaluate.metrics.*cannot load metric 'rouge'.*network"):
        run_recipe(tmp_path / "r.yaml", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    recipe["stages"] = [{"evaluate": {"metrics": ["rouge"]}}]  # neither evaluate:NAME nor a path
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(CompressError, match="evaluate:rouge"):
        run_recipe(tmp_path / "r.yaml", tmp_path / "out")


def test_eval_command_matches_the_evaluate_stage(hub_run, capsys, monkeypatch):
    from compress import cli

    out, _ = hub_run
    test_csv = Path(yaml.safe_load((out / "recipe.yaml").read_text())["data"]["files"]["test"])
    result = out.parent / "eval.json"
    argv = ["compress", "eval", str(out / "02-prune" / "model"), "--task", "text-classification", "--data",
            str(test_csv), "--baseline", str(out / "01-train" / "model"), "--eval-size", "24", "--repeats", "3",
            "--no-peak-memory", "--output", str(result)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    cli.main()
    printed = capsys.readouterr().out
    assert "| dense |" in printed and "| 02-prune |" in printed
    rows = json.loads(result.read_text())["rows"]
    stage = json.loads((out / "report.json").read_text())["evaluation"]["rows"]
    assert [r["accuracy"] for r in rows] == [r["accuracy"] for r in stage]  # same models, data and code
    assert rows[1]["speedup_b1"] > 0 and rows[0]["latency_b1_ms"] > 0


def test_eval_command_bad_task_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    from compress import cli

    model, _ = make("bert")
    compress.save(model, tmp_path / "m")
    monkeypatch.setattr(sys, "argv", ["compress", "eval", str(tmp_path / "m"), "--task", "dancing", "--data", "x"])
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--task" in err and "Traceback" not in err


def test_metrics_table_prints_the_dense_timing_beside_each_ratio():
    from compress.recipe.report import metrics_table

    rows = [
        {"name": "dense", "accuracy": 0.8, "latency_b1_ms": 24.56, "speedup_b1": 1.0},
        {
            "name": "02-prune",
            "accuracy": 0.7,
            "latency_b1_ms": 9.161,
            "dense_latency_b1_ms": 15.62,
            "speedup_b1": 1.705,
        },
    ]
    lines = metrics_table({"rows": rows}).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head == ["name", "accuracy", "latency_b1_ms", "dense_latency_b1_ms", "speedup_b1"]
    assert "| 02-prune | 0.7 | 9.161 | 15.62 | 1.705 |" in lines


def test_run_log_takes_the_library_noise_off_the_console(tmp_path, capfd):
    import transformers
    from rich.console import Console

    from compress.recipe.runlog import RunLog

    before = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_warning()  # the library's default (the test suite quiets it)
    hub_style_encoder(tmp_path / "st")
    capfd.readouterr()
    try:
        with RunLog(tmp_path, Console()) as log:
            log.console.print("[1/1] train ...")
            model = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "st")  # LOAD REPORT
            model.save_pretrained(tmp_path / "again")  # Writing model shards
    finally:
        transformers.utils.logging.set_verbosity(before)
    seen = capfd.readouterr()
    assert seen.out.strip() == "[1/1] train ..." and seen.err == ""
    log = (tmp_path / "run.log").read_text()
    assert "[1/1] train" in log and "LOAD REPORT" in log and "classifier.weight" in log
    assert transformers.utils.logging.is_progress_bar_enabled()  # put back afterwards


@pytest.mark.parametrize(
    "error,code,says",
    [
        (ZeroDivisionError("division by zero"), 1, "stage 01-prune failed: ZeroDivisionError: division by zero"),
        (CompressError("prune.heads", "cannot remove that many"), 2, "stage 01-prune: `prune.heads`: cannot"),
    ],
)
def test_failure_inside_a_stage_is_one_line_and_the_traceback_goes_to_the_log(
    tmp_path, capsys, monkeypatch, error, code, says
):
    from compress import cli
    from compress.recipe.runner import RecipeRun
    from tiny import word_tokenizer

    def broken(self, stage):
        raise error

    monkeypatch.setattr(RecipeRun, "prune", broken)
    compress.save(make("bert")[0], tmp_path / "m", tokenizer=word_tokenizer())
    (tmp_path / "d.csv").write_text("text,label\n" + "".join(f"{s},{i % 2}\n" for i, s in enumerate(sentences(8))))
    recipe = {
        "name": "x",
        "model": str(tmp_path / "m"),
        "task": "text-classification",
        "data": {"source": "csv", "files": {"train": str(tmp_path / "d.csv")}},
        "stages": [{"prune": {"mlp": 0.5}}],
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.setattr(sys, "argv", ["compress", "run", str(tmp_path / "r.yaml"), "--output", str(tmp_path / "o")])
    capsys.readouterr()  # what making the model printed
    with pytest.raises(SystemExit) as e:
        cli.main()
    err = capsys.readouterr().err.strip()
    assert e.value.code == code and len(err.splitlines()) == 1 and says in err, err
    assert "Traceback" not in err and str(tmp_path / "o" / "run.log") in err
    log = (tmp_path / "o" / "run.log").read_text()
    assert "Traceback" in log and type(error).__name__ in log


def test_model_card_names_the_hub_id_of_a_known_origin(tmp_path):
    from types import SimpleNamespace

    from compress.recipe.load import load_recipe
    from compress.recipe.report import write_model_card

    compress.save(make("bert")[0], tmp_path / "final")
    (tmp_path / "r.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "model": "minilm-l6",
                "task": "sentence-embedding",
                "data": {"source": "rotten-tomatoes"},
                "stages": [{"prune": {"mlp": 0.5}}],
            }  # fmt: skip
        )
    )
    recipe = load_recipe(tmp_path / "r.yaml")
    write_model_card(tmp_path / "final", SimpleNamespace(recipe=recipe, results=[]))
    meta = yaml.safe_load((tmp_path / "final" / "README.md").read_text().split("---")[1])
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    local = recipe.model_copy(update={"model": str(tmp_path / "final")})  # a local folder: no Hub id to name
    write_model_card(tmp_path / "final", SimpleNamespace(recipe=local, results=[]))
    assert "base_model" not in yaml.safe_load((tmp_path / "final" / "README.md").read_text().split("---")[1])


def test_save_fills_an_existing_empty_folder_but_not_a_full_one():
    model, _ = make("bert")
    with tempfile.TemporaryDirectory() as d:
        compress.save(model, d)
        again = compress.load(d)
        assert all(a.equal(b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
        with pytest.raises(CompressError, match="not empty"):
            compress.save(model, d)
        compress.save(model, d, overwrite=True)


def test_encoder_loads_strictly_or_not_at_all(tmp_path):
    import transformers
    from safetensors.torch import load_file, save_file

    from compress.recipe.heads import load_with_head

    hub_style_encoder(tmp_path / "st")
    weights = load_file(tmp_path / "st" / "model.safetensors")
    encoder, line = load_with_head(str(tmp_path / "st"), transformers.AutoModel)  # sentence embeddings: no head
    assert type(encoder).__name__ == "BertModel" and "newly initialised: nothing" in line
    assert all(encoder.state_dict()[k].equal(v) for k, v in weights.items())
    classifier, _ = load_with_head(str(tmp_path / "st"), transformers.AutoModelForSequenceClassification, 3)
    assert classifier.config.num_labels == 3
    assert classifier.bert.pooler.dense.weight.equal(weights["pooler.dense.weight"])  # the pooler came along
    weights.pop("encoder.layer.1.attention.self.query.weight")  # an encoder weight missing: refused, not re-initialised
    save_file(weights, tmp_path / "st" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CompressError, match=r"encoder weights.*bert.encoder.layer.1.attention.self.query.weight"):
        load_with_head(str(tmp_path / "st"), transformers.AutoModelForSequenceClassification, 2)
