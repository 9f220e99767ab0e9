"""The `compress` command line: a thin layer over the Python API. Bad input exits with code 2 and one line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .errors import CompressError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console()

Ratio = Annotated[float, typer.Option(help="fraction to remove, in [0, 1)")]


def load_model(name: str):
    """A folder, a built-in asset name (minilm-l6) or a hub id -> (model, tokenizer or None)."""
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
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError):
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
    criterion: Annotated[str | None, typer.Option(help="magnitude|taylor|fisher|activation|random")] = None,
    layout: Annotated[str, typer.Option(help="uniform (same width per layer) or global")] = "uniform",
    round_to: Annotated[int, typer.Option(help="kept widths are multiples of this (32/64/128 for kernels)")] = 1,
    protect: Annotated[list[str] | None, typer.Option(help="layer index (or stack.index) to leave untouched")] = None,
    calibration: Annotated[Path | None, typer.Option(help="text file (.txt/.csv/.json/.jsonl/.parquet)")] = None,
    samples: Annotated[int, typer.Option(help="calibration texts to use")] = 256,
    seq_len: Annotated[int, typer.Option(help="max tokens per calibration text; MACs are estimated at it")] = 128,
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
    )
    io.save(net, output, tokenizer=tokenizer, overwrite=overwrite)
    s = plan.summary
    console.print(
        f"pruned with {s['criterion']} ({s['layout']}) in {s['seconds']:.1f}s: params {s['params_before']:,} "
        f"-> {s['params_after']:,}, MACs {s['macs_before'] / 1e9:.2f}G -> {s['macs_after'] / 1e9:.2f}G "
        f"(seq {seq_len}); saved to {output}"
        + ("" if net.config.compress.get("plain_loadable") else " (load with compress.load)")
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

    net, _ = load_model(model)
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
    record = getattr(net.config, "compress", None)
    console.print(
        f"parameters: {count_params(net):,}   MACs (seq {seq_len}): {estimate_macs(net, seq_len) / 1e9:.3f}G   "
        f"pruned: {'yes' if record else 'no'}"
    )


@app.command()
def demo(
    output: Annotated[Path | None, typer.Option(help="where to write the pruned model [out/demo-<time>]")] = None,
    heads: Ratio = 0.5,
    mlp: Ratio = 0.5,
    criterion: Annotated[str, typer.Option(help="importance criterion")] = "activation",
    overwrite: Annotated[bool, typer.Option(help="replace an existing output folder")] = False,
):
    """Main job: prune the real all-MiniLM-L6-v2 (50% heads, 50% neurons) and compare it with the dense model."""
    import time

    from .demo import run_demo

    output = output or Path("out") / time.strftime("demo-%Y%m%d-%H%M%S")  # a new folder per run: nothing overwritten
    if output.exists() and not overwrite:
        raise CompressError("output", f"{output} already exists", "choose another folder or pass --overwrite")

    run_demo(output=output, heads=heads, mlp=mlp, criterion=criterion, overwrite=overwrite, console=console)


def main() -> None:
    try:
        app(standalone_mode=False)
    except CompressError as e:
        Console(stderr=True).print(f"[red]error[/red]: {e}", highlight=False, soft_wrap=True)
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
