"""`compress run RECIPE --output DIR`: run a recipe's stages in order, each written atomically to its own folder.

    DIR/recipe.yaml            the validated recipe (after --set overrides)
    DIR/01-prune/model         each model-producing stage's output (+ stage.json: key, seconds, summary)
    DIR/02-distill.run/        distillation checkpoints, so --resume continues an interrupted run
    DIR/05-export/model|dense  exported graphs (ONNX) of the model so far and of the dense model
    DIR/06-evaluate/           metrics of the dense model and of every stage so far (exported ones in ONNX Runtime)
    DIR/final/                 the finished model with a model card (README.md)
    DIR/report.json|md, DIR/pareto.png

`--resume` skips stages whose key (a hash of the recipe up to that stage) matches what is on disk.

Under `accelerate launch --num_processes N` (several GPUs, or `--multi_gpu` processes on a CPU) `train` and `distill`
run on every process (Accelerate splits each global batch); every other stage runs on the main process only, which
alone writes files, and the other processes load its result.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import time
from pathlib import Path

import torch
import yaml
from accelerate import PartialState
from rich.console import Console

from .. import assets, io
from ..errors import CompressError
from . import tasks
from .data import load_rows, split
from .evaluation import check_metrics
from .export_stage import exported_candidates, run_export
from .labels import classes_of
from .load import load_recipe
from .load import yaml_form as _yaml_form
from .report import write_model_card, write_reports
from .runlog import RunLog
from .schema import Recipe

MODEL_STAGES = ("train", "prune", "sparsify", "distill", "quantize")
DISTRIBUTED_STAGES = ("train", "distill")  # run on every process; the others run on the main process only


class RecipeRun:
    def __init__(self, recipe: Recipe, output: Path, resume: bool, console: Console):
        self.recipe, self.output, self.resume = recipe, output, resume
        self.state = PartialState(cpu=not torch.cuda.is_available())  # cpu=True: --multi_gpu on a CPU is gloo
        self.main = self.state.is_main_process
        self.console = console if self.main else Console(quiet=True)
        if recipe.threads:
            torch.set_num_threads(recipe.threads)
        self.task = tasks.get(recipe.task)(self)
        self.model_path = assets.resolve_model(recipe.model)
        self.processor = self.task.processor(self.model_path)  # tokenizer, image processor or feature extractor
        self.rows = load_rows(recipe.data, self.task.input_key)
        self._check_select_splits()
        train = next((s for s in recipe.stages if s.type == "train"), None)
        self.classes = classes_of(self.rows, self.model_path, train and train.num_labels)  # names of label ids
        self.model = self.task.load_model(self.model_path, say=self.console.print)  # + a task head if it has none
        self.results: list[dict] = []
        # how a sparsified model is saved by its stage and the later ones
        self.sparse_storage = next((s.storage for s in recipe.stages if s.type == "sparsify"), "bitmask")

    # -- helpers ---------------------------------------------------------------------------------------------------
    def key(self, upto: int) -> str:
        payload = self.recipe.model_dump(mode="json", exclude={"threads"})  # how fast, not what: same stage
        payload["stages"] = payload["stages"][: upto + 1]
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def stage_dir(self, i: int, kind: str) -> Path:
        return self.output / f"{i + 1:02d}-{kind}"

    def calibration(self) -> list[dict]:
        rows = split(self.rows, self.recipe.data.train_split, self.recipe.data.calibration_size)
        return self.task.batches(rows, 32)

    def dense(self):
        return self.task.load_model(self.model_path)

    def _check_select_splits(self) -> None:
        """Before any stage: a distill stage that picks its weights on held-out data names an existing split that
        is not the evaluation split."""
        for i, stage in enumerate(self.recipe.stages):
            if stage.type != "distill" or not stage.eval_every:
                continue
            field, name = f"stages.{i}.distill.select_split", stage.select_split
            if name not in self.rows:
                raise CompressError(field, f"no split {name!r} (have {sorted(self.rows)})", "name a held-out split")
            if name == self.recipe.data.eval_split:
                raise CompressError(
                    field,
                    f"{name!r} is also data.eval_split: the reported score would be chosen on itself",
                    "use another held-out split (e.g. validation), or eval_every: 0",
                )

    def _select_rows(self, stage) -> list[dict]:
        return split(self.rows, stage.select_split, self.recipe.data.eval_size)

    # -- stages ----------------------------------------------------------------------------------------------------
    def train(self, stage, i: int) -> dict:
        """Give the model its task head (if it has none) and train it: the result is the teacher ("dense")."""
        from ..distill.train import train

        d = self.recipe.data
        rows = split(self.rows, d.train_split, d.train_size)
        labels = self.task.labels(rows)
        width = self.classes.num_labels or self.classes.new_head_labels or len(set(labels))
        self.model = self.task.with_head(self.model, self.model_path, width)
        curve = train(
            self.model,
            self.task.examples(rows),
            labels,
            tokenizer=self.processor,
            steps=stage.steps,
            batch_size=stage.batch_size,
            lr=stage.lr,
            warmup_steps=stage.warmup_steps,
            head_only=stage.head_only,
            last_layers=stage.last_layers,
            max_length=d.max_length,
        )
        return {"first_loss": curve[0]["loss"], "last_loss": sum(c["loss"] for c in curve[-10:]) / len(curve[-10:])}

    def prune(self, stage) -> dict:
        from ..pruning.api import prune
        from . import guard

        kw = stage.model_dump(exclude={"type", "guard"})
        layers = kw.pop("layers")
        before = copy.deepcopy(self.model) if stage.guard.enabled else None
        layers = int(layers) if layers >= 1 else layers
        # the guard's copy doubles as the refit's dense reference (one copy, not two)
        plan = prune(self.model, layers=layers, calibration=self.calibration(), dense=before, **kw)
        return {**plan.summary, "fidelity": guard.check(self, "prune", before, self.model, stage.guard)}

    def sparsify(self, stage) -> dict:
        from ..sparsity import sparsify

        return sparsify(self.model, calibration=self.calibration(), **stage.options())

    def distill(self, stage, i: int) -> dict:
        from ..distill import DistillConfig, distill

        teacher_name = stage.teacher or self.recipe.teacher
        teacher = io.load(assets.resolve_model(teacher_name)) if teacher_name else self.dense()
        d = self.recipe.data
        run_dir = self.output / f"{i + 1:02d}-distill.run"
        stamp = run_dir / "stage_key"  # a run folder left by a distill stage with other settings starts afresh
        fresh = not (stamp.exists() and stamp.read_text() == self.key(i))
        interrupted = (run_dir / "checkpoints" / "latest.json").exists()
        resume = self.resume and not fresh and interrupted
        if self.resume and fresh and interrupted:
            self.console.print(
                f"[{i + 1}/{len(self.recipe.stages)}] distill: its settings changed since the interrupted run, so its "
                "checkpoints are discarded and distillation restarts from step 0"
            )
        self.state.wait_for_everyone()  # every process has looked before the main one changes anything
        if self.main:
            if not resume:
                shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
            if fresh:
                (run_dir / "chat_samples.json").unlink(missing_ok=True)
            run_dir.mkdir(parents=True, exist_ok=True)
            stamp.write_text(self.key(i))
        self.state.wait_for_everyone()
        rows = split(self.rows, d.train_split, d.train_size)
        rows = rows + [r for name in d.extra_train_splits for r in split(self.rows, name)]
        with self.state.main_process_first():  # teacher-made examples are made once, then read from the cache
            examples = self.task.distill_examples(rows, teacher, stage, run_dir)
        held_out = self.task.examples(self._select_rows(stage)) if stage.eval_every else None
        result = distill(
            self.model,
            teacher,
            examples,
            DistillConfig(**stage.config_kwargs()),
            tokenizer=self.processor,
            output_dir=run_dir,
            resume=resume,
            max_length=d.max_length,
            eval_data=held_out,
        )
        self.model = result.student
        return {
            "first_loss": result.curve[0]["loss"],
            "last_loss": result.curve[-1]["loss"],
            "steps": len(result.curve),
            "processes": self.state.num_processes,
            "run_dir": str(run_dir),
            **({"held_out": result.held_out, "kept_step": result.kept_step} if result.held_out else {}),
            **getattr(self.task, "distill_info", {}),
        }

    def quantize(self, stage) -> dict:
        from . import guard

        return guard.quantize(self, stage)  # sets self.model; the guard may pick a safer configuration

    def evaluate(self, stage, i: int) -> dict:
        from .evaluation import evaluate_models

        candidates = {
            r["stage"]: Path(r["dir"]) / "model"
            for r in self.results
            if r["kind"] in MODEL_STAGES and r["kind"] != "train"
        }  # the trained model is the dense row
        candidates.update(exported_candidates(self.results))  # run in ONNX Runtime
        return evaluate_models(self, stage, candidates)

    def export(self, stage, i: int) -> dict:
        return run_export(self, stage, self.work_dir(i))

    def work_dir(self, i: int) -> Path:
        """Files a stage makes besides its model; the driver moves them into the stage folder with stage.json."""
        return self.output / f".{self.stage_dir(i, self.recipe.stages[i].type).name}.work"

    def push(self, stage) -> dict:
        from ..hub import push_folder

        url = push_folder(self.output / "final", stage.repo, private=stage.private)
        return {"repo": stage.repo, "url": url}

    # -- driver ----------------------------------------------------------------------------------------------------
    def run(self) -> list[dict]:
        stages = self.recipe.stages
        for i, stage in enumerate(stages):
            sdir, key = self.stage_dir(i, stage.type), self.key(i)
            done = sdir / "stage.json"
            if self.resume and done.exists() and json.loads(done.read_text())["key"] == key:
                record = json.loads(done.read_text())
                if stage.type in MODEL_STAGES:
                    self.model = io.load(sdir / "model")
                if stage.type == "train":
                    self.model_path = str(sdir / "model")
                self.results.append(record)
                self.console.print(f"[{i + 1}/{len(stages)}] {stage.type}: done earlier, skipped")
                continue
            self.console.print(f"[{i + 1}/{len(stages)}] {stage.type} ...")
            t0 = time.perf_counter()
            if stage.type == "push" and self.main:
                self.write_final()  # push uploads DIR/final
            summary = None
            if self.main or stage.type in DISTRIBUTED_STAGES:
                run_stage = getattr(self, stage.type)
                with_index = ("train", "distill", "export", "evaluate")
                summary = run_stage(stage, i) if stage.type in with_index else run_stage(stage)
            record = {
                "stage": sdir.name,
                "kind": stage.type,
                "key": key,
                "dir": str(sdir),
                "seconds": round(time.perf_counter() - t0, 2),
                "summary": summary,
            }
            if self.main:
                with io.atomic_dir(sdir, overwrite=True) as tmp:
                    if stage.type in MODEL_STAGES:
                        io.save(self.model, tmp / "model", tokenizer=self.processor, sparse_storage=self.sparse_storage)
                    work = self.work_dir(i)
                    for item in sorted(work.iterdir()) if work.exists() else []:
                        item.rename(tmp / item.name)
                    shutil.rmtree(work, ignore_errors=True)
                    (tmp / "stage.json").write_text(json.dumps(record, indent=2, default=str))
            self.state.wait_for_everyone()
            if not self.main:  # the main process's result, as written
                record = json.loads(done.read_text())
                if stage.type in MODEL_STAGES and stage.type not in DISTRIBUTED_STAGES:
                    self.model = io.load(sdir / "model")
            self.results.append(record)
            if stage.type == "train":
                self.model_path = str(sdir / "model")  # the trained model is the teacher / dense baseline from here
        if self.main:
            if not (stages[-1].type == "push" and (self.output / "final").exists()):  # push (always last) wrote it
                self.write_final()
            write_reports(self)
        self.state.wait_for_everyone()
        return self.results

    def write_final(self) -> None:
        """DIR/final: the last model-producing stage's model, with a model card."""
        last = [r for r in self.results if r["kind"] in MODEL_STAGES]
        if last:
            with io.atomic_dir(self.output / "final", overwrite=True) as tmp:
                shutil.copytree(Path(last[-1]["dir"]) / "model", tmp, dirs_exist_ok=True)
                write_model_card(tmp, self, self.task.finish(tmp))


def run_recipe(
    path: str | Path,
    output: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    overrides: list[str] = (),
    console: Console | None = None,
) -> list[dict]:
    console = console or Console()
    recipe = load_recipe(path, overrides)  # fails before anything is written
    tasks.get(recipe.task).check(recipe)
    check_metrics(recipe)
    output = Path(output)
    state = PartialState(cpu=not torch.cuda.is_available())
    existed = output.exists()
    state.wait_for_everyone()  # every process has looked before the main one creates anything
    if existed and not (resume or overwrite):
        raise CompressError("output", f"{output} already exists", "pass --resume to continue it or --overwrite")
    if resume and not existed:
        raise CompressError("resume", f"{output} does not exist", "run without --resume first")
    if state.is_main_process:
        if overwrite and not resume and existed:
            shutil.rmtree(output)
        output.mkdir(parents=True, exist_ok=True)
        (output / "recipe.yaml").write_text(yaml.safe_dump(_yaml_form(recipe), sort_keys=False))
    state.wait_for_everyone()
    with RunLog(output, console, state.process_index) as log:  # library noise and tracebacks -> DIR/run.log
        log.run = RecipeRun(recipe, output, resume, log.console)
        return log.run.run()
