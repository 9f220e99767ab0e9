"""The console and the log of a recipe run.

While a recipe runs, the console shows one line per stage, the progress bars of long steps (rich, transient) and, at
the end, the report table. Everything else the libraries say (transformers' LOAD REPORT tables, its "Loading weights" /
"Writing model shards" bars, datasets' bars, warnings) goes to `DIR/run.log` (`run-rank<N>.log` for the other
processes under `accelerate launch`), together with the stage lines and, if the run fails, the full traceback.

A failure leaves the exception as it was (the Python API raises what it raised) and notes on it where it happened
(`compress_stage`) and where the traceback is (`compress_log`); `failure_line` turns that into the CLI's one line.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

from ..errors import CompressError

LIBRARIES = ("transformers", "datasets", "huggingface_hub", "accelerate", "evaluate", "torch", "bitsandbytes")
log = logging.getLogger("compress.run")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _ANSI.sub("", super().format(record))


class EchoConsole:
    """A rich Console whose `print` also writes the line (as plain text) to the run log."""

    def __init__(self, console):
        self._console = console

    def print(self, *objects, **kwargs) -> None:
        kwargs.setdefault("soft_wrap", True)  # a line stays one line, however narrow the terminal
        self._console.print(*objects, **kwargs)
        log.info(" ".join(str(o) for o in objects))

    def __getattr__(self, name):
        return getattr(self._console, name)


class RunLog:
    """`with RunLog(folder, console) as rl: rl.run = RecipeRun(...); rl.run.run()` — see the module docstring."""

    def __init__(self, folder: Path, console, rank: int | None = None):
        rank = int(os.environ.get("RANK", "0")) if rank is None else rank
        self.path = Path(folder) / ("run.log" if rank == 0 else f"run-rank{rank}.log")
        self.console = EchoConsole(console)
        self.run = None  # the RecipeRun, once built: its results say which stage was running

    def __enter__(self) -> RunLog:
        import transformers

        self.handler = logging.FileHandler(self.path, encoding="utf-8")
        self.handler.setFormatter(_PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        self.handler.setLevel(logging.INFO)
        self.saved = {}
        for name in (*LIBRARIES, "compress"):
            lg = logging.getLogger(name)
            self.saved[name] = (lg.handlers[:], lg.propagate, lg.level)
            lg.handlers, lg.propagate = [self.handler], False
        logging.getLogger("compress").setLevel(logging.INFO)
        root = logging.getLogger()
        root.addHandler(self.handler)
        logging.captureWarnings(True)  # warnings.warn -> logger py.warnings -> the file, not the console
        self.bars = transformers.utils.logging.is_progress_bar_enabled()
        _bars(False)
        log.info("run log of %s, started %s", self.path.parent, time.strftime("%Y-%m-%d %H:%M:%S"))
        return self

    def __exit__(self, kind, error, tb) -> bool:
        try:
            if isinstance(error, (Exception, KeyboardInterrupt)):  # not SystemExit: an exit asked for on purpose
                stage = self.stage()
                log.error("stage %s failed", stage, exc_info=(kind, error, tb))
                try:
                    error.compress_stage, error.compress_log = stage, str(self.path)
                except AttributeError:  # an exception type that takes no attributes: the log still has it
                    pass
        finally:
            _bars(self.bars)
            logging.captureWarnings(False)
            logging.getLogger().removeHandler(self.handler)
            for name, (handlers, propagate, level) in self.saved.items():
                lg = logging.getLogger(name)
                lg.handlers, lg.propagate, lg.level = handlers, propagate, level
            self.handler.close()
        return False

    def stage(self) -> str:
        """The stage that was running: `setup` (loading model and data), `01-prune`..., or `report`."""
        if self.run is None:
            return "setup"
        stages, done = self.run.recipe.stages, len(self.run.results)
        return f"{done + 1:02d}-{stages[done].type}" if done < len(stages) else "report"


def _bars(on: bool) -> None:
    """transformers' (and through it huggingface_hub's) and datasets' tqdm bars on or off."""
    import datasets
    import transformers

    if on:
        transformers.utils.logging.enable_progress_bar()
        datasets.enable_progress_bars()
    else:
        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()


def failure_line(error: BaseException) -> tuple[str, int]:
    """(one line for the console, exit code): 2 for bad input (CompressError), 130 for an interruption, else 1."""
    stage, where = getattr(error, "compress_stage", "?"), getattr(error, "compress_log", None)
    tail = f" (full traceback: {where})" if where else ""
    if isinstance(error, KeyboardInterrupt):
        return f"interrupted during stage {stage}; `--resume` continues from the last finished stage{tail}", 130
    if isinstance(error, CompressError):
        return f"stage {stage}: {error}{tail}", 2
    cause = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    return f"stage {stage} failed: {type(error).__name__}{': ' + cause if cause else ''}{tail}", 1
