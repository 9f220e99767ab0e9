"""Distil-Whisper-style distillation on tiny Whisper: the labels are the teacher's greedy transcripts in the form the
reference transcripts get, the cache is keyed by teacher and data, the WER filter drops the clips where the teacher
disagrees with the reference, and KL + cross-entropy on pseudo-labels both train the student."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from compress.distill import DistillConfig, distill, pseudo
from compress.recipe.schema import DataSpec, DistillStage, Recipe
from compress.recipe.tasks.speech import SpeechRecognition
from tiny import whisper_asr


def _audio(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(8000) / 16_000
    return [0.3 * np.sin(2 * np.pi * (150 + 60 * i) * t) + 0.05 * rng.standard_normal(8000) for i in range(n)]


@pytest.fixture
def asr():
    model, processor = whisper_asr()
    feats = processor.feature_extractor(_audio(4), sampling_rate=16_000, return_tensors="pt").input_features
    return model.eval(), processor, feats


def test_labels_are_the_teachers_greedy_transcripts(asr, tmp_path):
    model, processor, feats = asr
    labels = pseudo.pseudo_labels(model, processor.tokenizer, feats, ["a"] * 4, tmp_path, max_new_tokens=6)
    with torch.no_grad():
        generated = model.generate(input_features=feats, max_new_tokens=6).tolist()
    for got, seq in zip(labels, generated):
        text_ids = [t for t in seq if t > 2]  # the tiny tokenizer's specials are 0-2
        # the reference form: tokenizer(text) minus the decoder start token = [no-timestamps, text..., (end)]
        assert got["ids"][: 1 + len(text_ids)] == [2, *text_ids]
        assert got["ids"][1 + len(text_ids) :] in ([], [0])
        assert got["text"] == processor.tokenizer.decode(text_ids, skip_special_tokens=True).strip()
    ref = processor.tokenizer("ab").input_ids
    assert ref[:2] == [1, 2] and ref[-1] == 0
    assert pseudo.as_labels(ref[2:-1], processor.tokenizer, 0, 6) == ref[1:]  # the form of a reference transcript


def test_cache_is_keyed_by_teacher_and_data(asr, tmp_path, monkeypatch):
    model, processor, feats = asr
    refs = ["ab"] * 4
    first = pseudo.pseudo_labels(model, processor.tokenizer, feats, refs, tmp_path, 6)
    assert len(list(tmp_path.glob("pseudo_labels-*.json"))) == 1
    calls = []
    real = pseudo.greedy_ids
    monkeypatch.setattr(pseudo, "greedy_ids", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert pseudo.pseudo_labels(model, processor.tokenizer, feats, refs, tmp_path, 6) == first
    assert not calls  # read back, not recomputed

    other = whisper_asr()[0].eval()
    with torch.no_grad():
        other.model.decoder.layers[0].fc1.weight.add_(0.5)  # another teacher
    pseudo.pseudo_labels(other, processor.tokenizer, feats, refs, tmp_path, 6)
    pseudo.pseudo_labels(model, processor.tokenizer, feats[:3], refs[:3], tmp_path, 6)  # other clips
    pseudo.pseudo_labels(model, processor.tokenizer, feats, ["cd"] * 4, tmp_path, 6)  # other references
    assert len(calls) == 3 and len(list(tmp_path.glob("pseudo_labels-*.json"))) == 4


def _task(model, processor, max_length=8):
    data = DataSpec(source="espeak-speech", max_length=max_length)
    return SpeechRecognition(SimpleNamespace(recipe=SimpleNamespace(data=data), processor=processor, model=model))


def test_wer_filter_drops_clips_where_the_teacher_disagrees(asr, tmp_path):
    model, processor, _ = asr
    task = _task(model, processor)
    rows = [{"audio": a, "sampling_rate": 16_000, "text": "x"} for a in _audio(4)]
    teacher_texts = [p["text"] for p in pseudo.pseudo_labels(model, processor.tokenizer, task._features(rows),
                                                             ["x"] * 4, None, 8)]  # fmt: skip
    assert all(teacher_texts)
    rows[0]["text"], rows[2]["text"] = teacher_texts[0], teacher_texts[2]  # the teacher agrees on clips 0 and 2
    stage = DistillStage(pseudo_labels=True, max_label_wer=0.0)
    examples = task.distill_examples(rows, model, stage, tmp_path)
    assert len(examples) == 2 and task.distill_info["kept"] == 2 and task.distill_info["pseudo_labels"] == 4
    everything = task.distill_examples(rows, model, DistillStage(pseudo_labels=True), tmp_path)
    assert len(everything) == 4
    assert [e["labels"].tolist() for e in everything[::2]] == [e["labels"].tolist() for e in examples]
    references = task.distill_examples(rows, model, DistillStage(), tmp_path)
    assert references[1]["labels"].tolist() == processor.tokenizer("x").input_ids[1:]


def test_kl_and_cross_entropy_on_pseudo_labels_train_the_student(asr, tmp_path):
    model, processor, _ = asr
    task = _task(model, processor)
    rows = [{"audio": a, "sampling_rate": 16_000, "text": "ab"} for a in _audio(4, seed=1)]
    examples = task.distill_examples(rows, model, DistillStage(pseudo_labels=True), tmp_path)
    student = whisper_asr()[0]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))  # not the teacher any more
    cfg = DistillConfig(steps=4, batch_size=4, lr=1e-3, warmup_steps=1, logits_weight=1.0, task_weight=1.0)
    curve = distill(student, model, examples, cfg).curve
    assert all(c["logits"] > 0 and c["task"] > 0 for c in curve)
    assert curve[-1]["loss"] < curve[0]["loss"]  # the same four clips every step


def test_pseudo_label_options_are_checked_when_the_recipe_loads():
    with pytest.raises(ValueError, match="max_label_wer filters pseudo-labels"):
        DistillStage(max_label_wer=0.1)
    with pytest.raises(ValueError, match="pseudo_labels needs transcripts"):
        Recipe(name="x", model="m", task="causal-lm", data={"source": "moby-dick"},
               stages=[{"distill": {"pseudo_labels": True}}])  # fmt: skip
