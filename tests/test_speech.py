"""Speech: the CTranslate2 Whisper converter (round trip through the binary format), WER, label padding, and a tiny
speech-recognition recipe end to end on a handful of clips (cached asset folders faked in a temporary cache)."""

import json

import pytest
import torch
import yaml

import compress
from compress.assets import whisper_ct2
from compress.evaluate.speech import normalize, wer
from compress.recipe.runner import run_recipe
from tiny import whisper_asr


def _ct2_folder(model, processor, folder):
    """What faster-whisper ships: model.bin (fp16, fused q/k/v), config.json, tokenizer.json."""
    folder.mkdir()
    alias = {"decoder/projection/weight": "decoder/embeddings/weight"}
    whisper_ct2.write_ct2(folder / "model.bin", "WhisperSpec", whisper_ct2.ct2_variables(model), alias)
    (folder / "config.json").write_text(json.dumps({"suppress_ids": [5], "suppress_ids_begin": [3]}))
    processor.tokenizer.save_pretrained(folder)
    return folder


def test_ct2_round_trip_gives_identical_weights_and_outputs(tmp_path):
    model, processor = whisper_asr()
    model.half().float()  # what a fp16 CTranslate2 file can hold
    src = _ct2_folder(model, processor, tmp_path / "ct2")
    spec, variables = whisper_ct2.read_ct2(src / "model.bin")
    assert spec == "WhisperSpec" and variables["decoder/projection/weight"] is variables["decoder/embeddings/weight"]
    assert variables["encoder/layer_0/self_attention/linear_0/weight"].shape == (3 * 32, 32)  # fused q, k, v

    out = whisper_ct2.convert(src, tmp_path / "hf")
    again = compress.load(out)
    ref = model.state_dict()
    got = again.state_dict()
    assert set(got) == set(ref)
    for k in ref:  # k_proj has no bias, so the fused bias's k slice must not leak anywhere
        assert torch.equal(got[k], ref[k]), k
    x = {"input_features": torch.randn(2, 8, 32), "decoder_input_ids": torch.tensor([[1, 2, 5, 6], [1, 2, 7, 8]])}
    with torch.no_grad():
        assert torch.equal(again(**x).logits, model(**x).logits)
    gen = again.generation_config
    assert (gen.decoder_start_token_id, gen.eos_token_id, gen.no_timestamps_token_id) == (1, 0, 2)
    assert gen.suppress_tokens == [5] and gen.begin_suppress_tokens == [3] and not gen.is_multilingual
    assert not hasattr(gen, "lang_to_id")  # English-only: no language / task prompt tokens


def test_ct2_reader_rejects_other_versions(tmp_path):
    (tmp_path / "model.bin").write_bytes((5).to_bytes(4, "little"))
    with pytest.raises(compress.CompressError, match="binary version 5"):
        whisper_ct2.read_ct2(tmp_path / "model.bin")


def test_wer_is_the_standard_definition_after_normalising():
    import jiwer

    refs, hyps = ["the cat sat on the mat", "a b c d"], ["the cat sit on mat", "a x c d e"]
    assert wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps))
    assert wer(["a b c d"], ["a x c"]) == pytest.approx(2 / 4)  # one substitution, one deletion
    assert wer(["ten of clubs"], ["10 of clubs."]) == 0.0  # numbers, case and punctuation normalised
    assert normalize("He was not an Ill-Disposed young man!") == "he was not an ill disposed young man"
    assert wer(["five five"], [""]) == 1.0


def test_collate_pads_token_labels_with_ignore_index():
    from compress.distill.data import collate

    batch = collate(
        [
            {"input_features": torch.zeros(8, 32), "labels": torch.tensor([2, 5, 6])},
            {"input_features": torch.ones(8, 32), "labels": torch.tensor([2, 7, 8, 9, 0])},
        ]
    )
    assert batch["input_features"].shape == (2, 8, 32)
    assert batch["labels"].tolist() == [[2, 5, 6, -100, -100], [2, 7, 8, 9, 0]]


def test_tiny_whisper_recipe_end_to_end(fake_speech_cache, tmp_path):
    from transformers import AutoProcessor

    model, processor = whisper_asr()
    compress.save(model, tmp_path / "model", tokenizer=processor)
    recipe = {
        "name": "tiny-asr",
        "model": str(tmp_path / "model"),
        "task": "speech-recognition",
        "data": {
            "source": "espeak-speech",
            "subset": "sentences",
            "eval_split": "pocketsphinx-utterances:test",
            "extra_eval_splits": ["test"],
            "calibration_size": 4,
            "max_length": 16,
        },
        "stages": [
            {"prune": {"heads": 0.5, "mlp": 0.5, "criterion": "activation"}},
            {"distill": {"steps": 2, "batch_size": 2, "warmup_steps": 1, "task_weight": 1.0}},
            {"quantize": {"method": "int8-dynamic"}},
            {"evaluate": {"repeats": 3, "latency_batch_sizes": [1], "max_new_tokens": 4}},
        ],
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    run_recipe(tmp_path / "r.yaml", tmp_path / "out")
    ev = json.loads((tmp_path / "out" / "report.json").read_text())["evaluation"]
    assert ev["primary_metric"] == "wer" and ev["higher_is_better"] is False
    rows = ev["rows"]
    assert [r["name"] for r in rows] == ["dense", "01-prune", "02-distill", "03-quantize"]
    for r in rows:
        assert isinstance(r["wer"], float) and r["wer"] >= 0 and isinstance(r["wer@test"], float)
        assert r["macs"] > 0 and isinstance(r["generation"], str)
    assert rows[1]["params"] < rows[0]["params"] and rows[1]["macs"] < rows[0]["macs"]
    assert all(r["speedup_b1"] > 0 and r["gen_speedup"] > 0 and r["e2e_speedup"] > 0 for r in rows)
    assert rows[0]["e2e_ms"] == sorted(r["dense_e2e_ms"] for r in rows[1:])[1]  # end to end, beside the dense model
    report = (tmp_path / "out" / "report.md").read_text()
    assert "`espeak-speech/sentences` **SYNTHETIC**" in report and "pocketsphinx-utterances:test" in report
    final = compress.load(tmp_path / "out" / "final")
    proc = AutoProcessor.from_pretrained(tmp_path / "out" / "final")
    # the rows' WER is each model's own greedy transcripts of the eval split (the 3 "real" clips) and of `test`,
    # recomputed here with compress.evaluate.speech; final/ is the last stage's model
    from compress import assets
    from compress.evaluate.speech import transcribe

    real = assets.module("pocketsphinx-utterances").load()["test"]
    synthetic = assets.module("espeak-speech").load("sentences")["test"]
    for row, stage in zip(rows, ["model", "01-prune/model", "02-distill/model", "03-quantize/model"]):
        m = compress.load(tmp_path / stage) if stage == "model" else compress.load(tmp_path / "out" / stage)
        for key, clips in (("wer", real), ("wer@test", synthetic)):
            hyps = transcribe(m, proc, [c["audio"] for c in clips], max_new_tokens=16)
            assert row[key] == pytest.approx(wer([c["text"] for c in clips], hyps)), (row["name"], key)
    feats = proc.feature_extractor([real[0]["audio"]], sampling_rate=16_000, return_tensors="pt").input_features
    assert torch.equal(
        final.generate(input_features=feats, max_new_tokens=3), m.generate(input_features=feats, max_new_tokens=3)
    )


def test_tiny_keyword_spotter_recipe_end_to_end(fake_speech_cache, tmp_path, monkeypatch):
    import transformers as T

    from compress.recipe.tasks.speech import AudioClassification
    from tiny import make

    monkeypatch.setattr(AudioClassification, "window_seconds", 0.05)  # 800 samples, what the tiny model is built for
    model, _ = make("wav2vec2")
    compress.save(model, tmp_path / "model", tokenizer=T.Wav2Vec2FeatureExtractor())
    recipe = {
        "name": "tiny-kws",
        "model": str(tmp_path / "model"),
        "task": "audio-classification",
        "data": {"source": "espeak-speech", "subset": "keywords", "calibration_size": 4},
        "stages": [
            {"prune": {"heads": 0.5, "mlp": 0.5, "criterion": "activation"}},
            {"distill": {"steps": 2, "batch_size": 4, "warmup_steps": 1}},
            {"quantize": {"method": "int8-dynamic"}},
            {"evaluate": {"repeats": 3, "latency_batch_sizes": [1, 4]}},
        ],
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    run_recipe(tmp_path / "r.yaml", tmp_path / "out")
    ev = json.loads((tmp_path / "out" / "report.json").read_text())["evaluation"]
    rows = ev["rows"]
    assert ev["primary_metric"] == "accuracy" and [r["name"] for r in rows][-1] == "03-quantize"
    assert all(0 <= r["accuracy"] <= 1 and r["macs"] > 0 and r["speedup_b4"] > 0 for r in rows)
    assert rows[1]["macs"] < rows[0]["macs"] and "**SYNTHETIC**" in (tmp_path / "out" / "report.md").read_text()
    assert T.AutoFeatureExtractor.from_pretrained(tmp_path / "out" / "final").sampling_rate == 16_000


@pytest.mark.asset
def test_real_whisper_tiny_en_conversion_transcribes_real_speech():
    """The cached conversion passed its WER check when fetched; it still transcribes a real utterance."""
    from compress import assets
    from compress.evaluate.speech import transcribe

    folder = assets.fetch("whisper-tiny-en")
    assert json.loads((folder.parent / "verification.json").read_text())["wer"] < 0.2
    import transformers as T

    model = compress.load(folder)
    processor = T.AutoProcessor.from_pretrained(folder)
    clip = next(r for r in assets.module("pocketsphinx-utterances").load()["test"] if r["id"] == "cards/001")
    assert wer([clip["text"]], transcribe(model, processor, [clip["audio"]])) == 0.0  # "ten of clubs"


def test_espeak_plan_is_seeded_and_split_by_voice_and_sentence():
    from compress.assets import espeak

    plan = espeak.plan()
    assert plan == espeak.plan()
    kw = plan["keywords"]
    assert [len(kw[s]) for s in ("train", "validation", "test")] == [760, 100, 100]
    assert not {r["voice"] for r in kw["train"]} & {r["voice"] for r in kw["test"]}
    st = plan["sentences"]
    assert not {r["text"] for r in st["train"]} & {r["text"] for r in st["test"]}


def test_whisper_length_warning_is_dropped_and_others_kept():
    import logging

    import compress.evaluate.speech  # noqa: F401  (installs the filter)

    log = logging.getLogger("transformers.generation.utils")
    records, handler = [], logging.Handler()
    handler.emit = records.append  # on the logger itself: other tests may turn transformers' propagation off
    level = log.level
    log.setLevel(logging.WARNING)  # the tests run with TRANSFORMERS_VERBOSITY=error (setLevel: clears the cache)
    log.addHandler(handler)
    try:
        log.warning("Both `max_new_tokens` (=64) and `max_length`(=448) seem to have been set.")
        log.warning("another warning")
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert [r.getMessage() for r in records] == ["another warning"]
