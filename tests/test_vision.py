"""Image classification: the Fashion-MNIST asset, the scratch ViT model asset, and a tiny end-to-end recipe run
(train -> prune -> distill -> int8 -> evaluate) on synthetic images given as an image folder."""

import gzip
import json

import numpy as np
import pytest
import torch
import transformers
import yaml
from PIL import Image

import compress
from compress import assets
from compress.errors import CompressError
from compress.recipe.runner import run_recipe
from tiny import make

CLASSES = ("circle", "stripes", "noise")


def _image(kind: int, g: np.random.Generator) -> np.ndarray:
    """16x16 RGB images a tiny ViT can tell apart: a bright centre, horizontal stripes, or noise."""
    x = g.integers(0, 40, (16, 16, 3))
    if kind == 0:
        x[4:12, 4:12] += 200
    elif kind == 1:
        x[::4] += 200
    else:
        x = g.integers(0, 255, (16, 16, 3))
    return np.clip(x, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("vision")
    g = np.random.default_rng(0)
    for split, n in (("train", 16), ("test", 8)):
        for kind, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(_image(kind, g)).save(root / split / name / f"{i}.png")
    model, _ = make("vit")  # 16x16 RGB, patch 4, 3 layers of 4 heads, 3 labels; no image processor saved
    compress.save(model, root / "model")
    return root


def _recipe(image_dir, tmp_path, stages) -> str:
    recipe = {
        "name": "tiny-vit",
        "model": str(image_dir / "model"),
        "task": "image-classification",
        "license": "mit",
        "data": {
            "source": "imagefolder",
            "files": {"train": str(image_dir / "train" / "**"), "test": str(image_dir / "test" / "**")},
            "calibration_size": 16,
            "eval_size": 24,
        },
        "stages": stages,
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def test_image_recipe_end_to_end_reload_and_resume(image_dir, tmp_path):
    stages = [
        {"train": {"steps": 8, "batch_size": 8, "lr": 3e-3, "head_only": False}},
        {"prune": {"heads": 0.5, "mlp": 0.5, "criterion": "activation"}},
        {"distill": {"steps": 4, "batch_size": 8, "lr": 1e-3, "warmup_steps": 1, "cache_teacher": "topk"}},
        {"quantize": {"method": "int8-dynamic"}},
        {"evaluate": {"repeats": 3, "latency_batch_sizes": [1, 4]}},
    ]
    recipe, out = _recipe(image_dir, tmp_path, stages), tmp_path / "run"
    run_recipe(recipe, out)
    ev = json.loads((out / "report.json").read_text())["evaluation"]
    assert ev["task"] == "image-classification" and ev["primary_metric"] == "accuracy"
    rows = ev["rows"]
    assert [r["name"] for r in rows] == ["dense", "02-prune", "03-distill", "04-quantize"]
    assert all(0 <= r["f1_macro"] <= 1 and r["speedup_b4"] > 0 for r in rows)
    # each row's accuracy is its own model's on the 24 test images (eval_size: all of them), recomputed here from the
    # image files with the saved processor; image folders number classes in sorted name order
    processor = transformers.ViTImageProcessor.from_pretrained(out / "final")
    files = sorted((image_dir / "test").glob("*/*.png"))
    x = processor(images=[Image.open(f) for f in files], return_tensors="pt")["pixel_values"]
    y = torch.tensor([sorted(CLASSES).index(f.parent.name) for f in files])
    for row, stage in zip(rows, ["01-train", "02-prune", "03-distill", "04-quantize"]):
        with torch.no_grad():
            pred = compress.load(out / stage / "model")(pixel_values=x).logits.argmax(-1)
        assert row["accuracy"] == pytest.approx(float((pred == y).float().mean())), row
    assert rows[1]["params"] < rows[0]["params"] and rows[3]["size_bytes"] < rows[2]["size_bytes"]
    assert rows[0]["macs"] > rows[1]["macs"] > 0  # at 17 tokens: 16 patches + CLS
    assert (out / "pareto.png").exists() and "| dense |" in (out / "report.md").read_text()
    assert (out / "03-distill.run" / "teacher_cache" / "topk.safetensors").exists()
    meta = yaml.safe_load((out / "final" / "README.md").read_text().split("---")[1])
    assert meta["pipeline_tag"] == "image-classification" and meta["license"] == "mit"
    # the saved model and its image processor reload and classify a real image file
    model = compress.load(out / "final")
    processor = transformers.ViTImageProcessor.from_pretrained(out / "final")
    x = processor(images=Image.open(image_dir / "test" / "circle" / "0.png"), return_tensors="pt")["pixel_values"]
    assert x.shape == (1, 3, 16, 16) and model(pixel_values=x).logits.shape == (1, 3)
    assert model.config.id2label == dict(enumerate(sorted(CLASSES)))  # the image folder's class names
    teacher = compress.load(out / "01-train" / "model")
    assert [layer.attention.q_proj.out_features for layer in teacher.vit.layers] == [32] * 3
    assert [layer.attention.q_proj.out_features for layer in model.vit.layers] == [16] * 3
    # resume: the trained teacher and every later stage are reused, nothing is written again
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("0*/stage.json")}
    run_recipe(recipe, out, resume=True)
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("0*/stage.json")}


def test_text_data_for_an_image_task_is_a_one_line_error(image_dir, tmp_path):
    path = _recipe(image_dir, tmp_path, [{"evaluate": {}}])
    raw = yaml.safe_load(path.read_text())
    raw["data"]["image_column"] = "picture"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(CompressError, match="data.image_column.*no column 'picture'"):
        run_recipe(path, tmp_path / "out")


def test_scratch_vit_asset_is_untrained_seeded_and_processable(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    path = assets.resolve_model("vit-fashion-mnist-scratch")
    model = compress.load(path)
    c = model.config
    assert (c.num_channels, c.image_size, c.patch_size, c.num_attention_heads, c.num_labels) == (1, 28, 7, 6, 10)
    assert 2.6e6 < model.num_parameters() < 2.8e6 and c.id2label[9] == "Ankle boot"
    processor = transformers.AutoImageProcessor.from_pretrained(path)
    x = processor(images=np.zeros((28, 28, 1), np.uint8), return_tensors="pt", input_data_format="channels_last")
    assert x["pixel_values"].shape == (1, 1, 28, 28) and model(**x).logits.shape == (1, 10)
    first = model.vit.layers[0].attention.q_proj.weight.clone()
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path / "again"))  # a fresh fetch gives the same weights
    assert torch.equal(
        compress.load(assets.fetch("vit-fashion-mnist-scratch")).vit.layers[0].attention.q_proj.weight, first
    )


def test_idx_reader_and_install_hint(tmp_path, monkeypatch):
    from compress.assets import fashion

    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    header = np.array([2051, 2, 28, 28], ">u4").tobytes()
    (tmp_path / "x-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
    assert np.array_equal(fashion.read_idx(tmp_path / "x-idx3-ubyte.gz", "images"), images)
    with pytest.raises(CompressError, match="not an idx labels file"):
        fashion.read_idx(tmp_path / "x-idx3-ubyte.gz", "labels")
    monkeypatch.setattr(fashion.os, "geteuid", lambda: 1000)  # not root: no apt-get, a one-line fix instead
    with pytest.raises(CompressError, match="apt-get install -y dataset-fashion-mnist") as e:
        fashion._install()
    assert "\n" not in str(e.value)


@pytest.mark.asset
def test_fashion_mnist_splits_shapes_and_balance():
    data = assets.module("fashion-mnist").load()
    assert {k: len(v) for k, v in data.items()} == {"train": 55000, "validation": 5000, "test": 10000}
    first = data["train"][0]
    assert first["image"].shape == (28, 28) and first["image"].dtype == np.uint8 and isinstance(first["label"], int)
    for split, rows in data.items():
        counts = np.bincount([r["label"] for r in rows], minlength=10)
        assert len(counts) == 10 and counts.min() > 0.8 * len(rows) / 10, (split, counts)
    assert np.bincount([r["label"] for r in data["test"]]).tolist() == [1000] * 10
    # the split is fixed: validation is the last 5,000 official training images, in order
    again = assets.module("fashion-mnist").load()
    assert [r["label"] for r in data["validation"][:20]] == [r["label"] for r in again["validation"][:20]]
    assert np.array_equal(data["validation"][-1]["image"], again["validation"][-1]["image"])
    assert [r["label"] for r in data["train"][:10]] == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]  # the official order
    assert sum(r["label"] for r in data["validation"]) == 22394
