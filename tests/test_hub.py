"""Hub upload against a real HTTP server on 127.0.0.1 (HF_ENDPOINT points there): files arrive byte for byte,
failures give one line and leave the local folder intact, and the token never appears in output."""

import hashlib
import socket

import pytest
import yaml

import compress
from hub_server import FakeHub
from tiny import make, run_cli, sentences, word_tokenizer


def _push(folder, repo, env_extra, *args):
    return run_cli("push", folder, "--repo", repo, *args, env={"HF_HUB_OFFLINE": "0", **env_extra}, timeout=120)


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


@pytest.fixture
def model_dir(tmp_path):
    model, _ = make("bert")
    compress.prune(model, heads=0.5, criterion="magnitude")
    compress.save(model, tmp_path / "m", tokenizer=word_tokenizer())
    return tmp_path / "m"


def test_push_uploads_every_file(model_dir):
    before = _digest(model_dir)
    with FakeHub() as hub:
        r = _push(model_dir, "tester/tiny", {"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token})
        assert r.returncode == 0, r.stderr
        got = hub.repos["tester/tiny"]
    assert {k: hashlib.sha256(v).hexdigest() for k, v in got.items()} == before
    assert hub.token not in r.stdout + r.stderr
    assert _digest(model_dir) == before


def test_push_failures_are_one_line_and_keep_local(model_dir, tmp_path):
    before = _digest(model_dir)
    with FakeHub() as hub:
        r = _push(model_dir, "tester/tiny", {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf")})
        assert r.returncode == 2 and "no Hugging Face token" in r.stderr
        r = _push(model_dir, "tester/tiny", {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_wrong"})
        assert r.returncode == 2 and "HTTP 401" in r.stderr and "hf_wrong" not in r.stderr
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    r = _push(model_dir, "tester/tiny", {"HF_ENDPOINT": f"http://127.0.0.1:{closed}", "HF_TOKEN": "hf_x"})
    assert r.returncode == 2 and "cannot reach the Hub" in r.stderr
    assert _digest(model_dir) == before


def test_recipe_push_stage(tmp_path):
    model, _ = make("bert")
    compress.save(model, tmp_path / "model", tokenizer=word_tokenizer())
    (tmp_path / "train.csv").write_text("text,label\n" + "\n".join(f"{s},{i % 2}" for i, s in enumerate(sentences(24))))
    recipe = {
        "name": "tiny",
        "model": str(tmp_path / "model"),
        "task": "text-classification",
        "data": {
            "source": "csv",
            "files": {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "train.csv")},
            "calibration_size": 8,
            "eval_size": 8,
            "max_length": 16,
        },
        "stages": [{"prune": {"mlp": 0.5}}, {"push": {"repo": "tester/recipe-out"}}],
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    with FakeHub() as hub:
        env = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token}
        r = run_cli("run", tmp_path / "r.yaml", "--output", tmp_path / "out", env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        files = hub.repos["tester/recipe-out"]
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json"} <= set(files)
    assert files["model.safetensors"] == (tmp_path / "out" / "final" / "model.safetensors").read_bytes()
    assert hub.token not in r.stdout + r.stderr
