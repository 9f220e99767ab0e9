"""The user cache that assets are fetched into, and the registry tools (pip / apt-get / npm) that fetch them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

from ..errors import CompressError


def cache_dir() -> Path:
    """$COMPRESS_CACHE or ~/.cache/compress."""
    return Path(os.environ.get("COMPRESS_CACHE", Path.home() / ".cache" / "compress"))


def run_tool(cmd: list[str], install_hint: str, what: str = "asset") -> str:
    """Run a registry tool; a missing tool or a failure becomes a one-line CompressError naming the fix."""
    if shutil.which(cmd[0]) is None and cmd[0] != sys.executable:
        raise CompressError(what, f"`{cmd[0]}` is not installed", install_hint)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"])[-1]
        raise CompressError(what, f"`{' '.join(cmd)}` failed: {last}", install_hint)
    return done.stdout


def pip(*args: str) -> None:
    run_tool([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], "check that PyPI is reachable")


def fetched(name: str, fetch) -> Path:
    """Run `fetch(tmp)` once into cache/name atomically (temp folder, then rename); return the folder. A file lock makes
    processes that ask at the same time (`accelerate launch` on a fresh machine) wait for one fetch, not each do it."""
    target = cache_dir() / name
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.with_name(f".{name}.lock")):
        if (target / ".complete").exists():  # fetched by another process while this one waited
            return target
        tmp = target.with_name(f".{name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        try:
            fetch(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # nothing half-done is left in the cache
            raise
        (tmp / ".complete").write_text("ok\n")
        if target.exists():  # an unfinished folder from an older version (no .complete)
            shutil.rmtree(target)
        tmp.rename(target)
    return target


def apt_lock() -> FileLock:
    """apt-get and dpkg take one job at a time: concurrent fetches queue on this lock instead of failing on theirs."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    return FileLock(cache_dir() / ".apt.lock")


def apt_install(package: str, marker: Path) -> None:
    """`apt-get install -y package` unless `marker` (a file the package ships) already exists; needs root."""
    if marker.exists():
        return
    hint = f"run `apt-get update && apt-get install -y {package}` as root"
    if shutil.which("apt-get") is None:
        raise CompressError("asset", f"{package} is not installed and this system has no apt-get", hint)
    if os.geteuid() != 0:
        raise CompressError("asset", f"{package} is not installed (installing it needs root)", hint)
    with apt_lock():
        if marker.exists():
            return
        try:
            run_tool(["apt-get", "install", "-y", "-q", package], hint)
        except CompressError:  # stale or missing package lists: refresh once
            run_tool(["apt-get", "update", "-q"], hint)
            run_tool(["apt-get", "install", "-y", "-q", package], hint)
