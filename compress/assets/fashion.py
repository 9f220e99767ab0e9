"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 70,000 grayscale 28x28 images of 10 clothing classes, from the Debian
package `dataset-fashion-mnist` (its idx-ubyte.gz files), cached as uint8 .npy arrays.

Splits: train = the first 55,000 official training images, validation = the last 5,000, test = the official 10,000.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from ..errors import CompressError
from ._cache import fetched, run_tool

DESCRIPTION = "Fashion-MNIST, 70,000 28x28 grayscale images, 10 classes, train 55k / validation 5k / test 10k, MIT"
PACKAGE = "dataset-fashion-mnist"
INSTALL = f"install it as root: apt-get update && apt-get install -y {PACKAGE}"
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
VALIDATION = 5000  # the last 5,000 official training images (the official order is already shuffled)
_IDX = {"images": (2051, 3), "labels": (2049, 1)}  # magic number and number of dimensions of each idx file kind


def _installed() -> bool:
    if shutil.which("dpkg-query") is None:
        raise CompressError(
            "asset", f"fashion-mnist comes from the Debian package {PACKAGE}, but dpkg is missing", INSTALL
        )
    done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PACKAGE], capture_output=True, text=True)
    return done.returncode == 0 and done.stdout.strip().endswith("installed")


def _install() -> None:
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise CompressError("asset", f"the Debian package {PACKAGE} is not installed", INSTALL)
    try:
        run_tool(["apt-get", "install", "-y", PACKAGE], INSTALL)
    except CompressError:  # a fresh machine may not know the package yet
        run_tool(["apt-get", "update"], INSTALL)
        run_tool(["apt-get", "install", "-y", PACKAGE], INSTALL)


def read_idx(path: Path, kind: str) -> np.ndarray:
    """An idx-ubyte(.gz) file -> uint8 array (N, 28, 28) for images or (N,) for labels."""
    magic, ndim = _IDX[kind]
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    header = np.frombuffer(data, ">u4", count=1 + ndim)
    if int(header[0]) != magic:
        raise CompressError("asset", f"{path} is not an idx {kind} file (magic {int(header[0])})", INSTALL)
    shape = tuple(int(n) for n in header[1:])
    return np.frombuffer(data, np.uint8, offset=4 * (1 + ndim)).reshape(shape)


def _convert(tmp: Path) -> None:
    if not _installed():
        _install()
    listing = run_tool(["dpkg", "-L", PACKAGE], INSTALL).splitlines()
    files = {Path(p).name: Path(p) for p in listing if p.endswith("-ubyte.gz")}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        for kind, idx in (("images", "idx3"), ("labels", "idx1")):
            name = f"{prefix}-{kind}-{idx}-ubyte.gz"
            if name not in files:
                raise CompressError(
                    "asset", f"{PACKAGE} has no {name}", f"reinstall it: apt-get install --reinstall {PACKAGE}"
                )
            np.save(tmp / f"{split}_{kind}.npy", read_idx(files[name], kind))
    copyright_file = Path("/usr/share/doc") / PACKAGE / "copyright"
    if copyright_file.exists():
        shutil.copy(copyright_file, tmp / "LICENSE")


def fetch() -> Path:
    """Folder with train_images.npy (60000, 28, 28) uint8, train_labels.npy, test_images.npy, test_labels.npy."""
    return fetched("fashion-mnist", _convert)


def load() -> dict[str, list[dict]]:
    """{"train"|"validation"|"test": [{"image": uint8 array (28, 28), "label": int 0..9}]} (see CLASSES)."""
    root = fetch()
    arrays = {
        name: np.load(root / f"{name}.npy") for name in ("train_images", "train_labels", "test_images", "test_labels")
    }
    n = len(arrays["train_labels"]) - VALIDATION
    parts = {
        "train": (arrays["train_images"][:n], arrays["train_labels"][:n]),
        "validation": (arrays["train_images"][n:], arrays["train_labels"][n:]),
        "test": (arrays["test_images"], arrays["test_labels"]),
    }
    return {split: [{"image": x, "label": int(y)} for x, y in zip(xs, ys)] for split, (xs, ys) in parts.items()}
