"""The `asterisk-prompts` asset (real transcribed phone prompts from Debian): a fixed, disjoint split by clip id,
transcripts aligned with their audio (spot check with the real Whisper tiny.en), one-line errors for a missing or
undecodable clip and for a missing ffmpeg."""

import gzip
import sys

import numpy as np
import pytest

from compress import assets
from compress.assets import asterisk
from compress.errors import CompressError
from compress.recipe.data import load_rows
from compress.recipe.schema import DataSpec


def test_split_rule_depends_on_the_clip_alone():
    assert asterisk.bucket("digits/1") == asterisk.bucket("digits/1")
    assert asterisk.split_of("silence/1", "one two three four", 1.0) == "train"
    assert asterisk.split_of("beep", "Press * to pause now.", 2.0) == "train"  # noisy transcript
    assert asterisk.split_of("vm-x", "Goodbye.", 0.5) == "train"  # under three words
    assert asterisk.split_of("vm-x", "a b c d", 31.0) == "train"  # over 30 seconds
    ids = [f"clip-{i}" for i in range(2000)]
    counts = {s: sum(asterisk.split_of(i, "one two three", 2.0) == s for i in ids) for s in asterisk.SPLIT_BUCKETS}
    assert 0.55 < counts["train"] / 2000 < 0.65 and 0.07 < counts["validation"] / 2000 < 0.13
    assert asterisk.spoken("at [@]") == "at" and asterisk.spoken("[ascending tones]") == ""


def _fake_root(tmp_path, clips: dict[str, bytes | None]):
    lines = "; comment\n" + "".join(f"{i}: Please say {i} now.\n" for i in clips)
    (tmp_path / asterisk.TRANSCRIPTS).parent.mkdir(parents=True)
    (tmp_path / asterisk.TRANSCRIPTS).write_bytes(gzip.compress(lines.encode()))
    (tmp_path / asterisk.SOUNDS).mkdir(parents=True)
    for clip_id, data in clips.items():
        if data is not None:
            (tmp_path / asterisk.SOUNDS / f"{clip_id}.g722").write_bytes(data)
    return tmp_path


def test_decodes_g722_and_names_a_missing_or_empty_clip(tmp_path):
    exe = asterisk.ffmpeg()
    rng = np.random.default_rng(0)
    ok = _fake_root(tmp_path / "ok", {"a": rng.integers(0, 256, 800, dtype=np.uint8).tobytes()})
    rows = asterisk.rows_from(ok, exe)
    (row,) = [r for split in rows.values() for r in split]
    assert row["audio"].dtype == np.float32 and len(row["audio"]) == 1600  # G.722: two 16 kHz samples per byte
    assert row["seconds"] == 0.1 and row["text"] == "Please say a now."

    missing = _fake_root(tmp_path / "missing", {"a": b"\x00" * 100, "b": None})
    with pytest.raises(CompressError, match=r"audio file \S+/b\.g722 is missing") as e:
        asterisk.rows_from(missing, exe)
    assert "\n" not in str(e.value)
    empty = _fake_root(tmp_path / "empty", {"a": b"\x00" * 100, "c": b""})
    with pytest.raises(CompressError, match=r"cannot decode audio file \S+/c\.g722") as e:
        asterisk.rows_from(empty, exe)
    assert "\n" not in str(e.value)


def test_missing_ffmpeg_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails
    monkeypatch.setattr(asterisk.shutil, "which", lambda tool: None)
    with pytest.raises(CompressError, match="needs ffmpeg.*pip install imageio-ffmpeg"):
        assets.fetch("asterisk-prompts")
    assert [p.name for p in tmp_path.iterdir()] == [".asterisk-prompts.lock"]  # nothing half-fetched


@pytest.mark.asset
def test_real_split_is_fixed_disjoint_and_clean():
    data = assets.load("asterisk-prompts")
    assert set(data) == {"train", "validation", "test"}
    ids = {s: [r["id"] for r in rows] for s, rows in data.items()}
    assert ids == {s: [r["id"] for r in rows] for s, rows in assets.load("asterisk-prompts").items()}
    seen = [set(v) for v in ids.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert sum(map(len, seen)) == sum(len(v) for v in ids.values()) == 553  # 568 clips - silence/tones
    clean = {s: [r for r in rows if r["clean"]] for s, rows in data.items()}
    assert 250 <= sum(map(len, clean.values())) <= 275
    assert all(r["clean"] for s in ("validation", "test") for r in data[s])
    assert 70 <= len(data["test"]) <= 90 and 20 <= len(data["validation"]) <= 35
    for s, rows in data.items():
        for r in rows:
            assert asterisk.split_of(r["id"], r["text"], r["seconds"]) == s
            assert r["sampling_rate"] == 16_000 and abs(len(r["audio"]) / 16_000 - r["seconds"]) < 1e-3
            assert r["text"] and not any(c in r["text"] for c in "[]()")
    assert (assets.fetch("asterisk-prompts") / "LICENSE").exists()


@pytest.mark.asset
def test_real_asset_is_a_recipe_source_and_an_eval_split():
    rows = load_rows(DataSpec(source="asterisk-prompts", eval_split="asterisk-prompts:test"))
    assert rows["asterisk-prompts:test"] is rows["test"] and rows["train"][0]["label"] is None
    other = load_rows(DataSpec(source="pocketsphinx-utterances", eval_split="asterisk-prompts:test"))
    assert [r["id"] for r in other["asterisk-prompts:test"]] == [r["id"] for r in rows["test"]]


@pytest.mark.asset
@pytest.mark.slow
def test_real_transcripts_are_aligned_with_their_audio():
    """Whisper tiny.en on four test clips: each transcript matches its own clip, and not its neighbour's."""
    import transformers as T

    import compress
    from compress.evaluate.speech import transcribe, wer

    folder = assets.fetch("whisper-tiny-en")
    model, processor = compress.load(folder), T.AutoProcessor.from_pretrained(folder)
    rows = [r for r in assets.load("asterisk-prompts")["test"] if r["seconds"] < 8][:4]
    hyps = transcribe(model, processor, [r["audio"] for r in rows])
    refs = [r["text"] for r in rows]
    assert wer(refs, hyps) < 0.15, list(zip(refs, hyps))
    assert wer(refs[1:] + refs[:1], hyps) > 0.6
