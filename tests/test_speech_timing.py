"""End-to-end transcription timing of speech models side by side, including half-precision ones (bf16 Whisper reads
bf16 features: the evaluation casts float inputs to each model's dtype)."""

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import compress
from compress.evaluate.speech import transcribe
from compress.recipe.schema import DataSpec, EvaluateStage
from compress.recipe.tasks.speech import SpeechRecognition
from compress.stats import inputs_for, latency_side_by_side
from tiny import whisper_asr


@pytest.mark.filterwarnings("ignore:bf16 on a CPU without AVX-512")
def test_bf16_whisper_is_timed_and_scored_beside_the_fp32_model():
    model, processor = whisper_asr()
    half = compress.quantize(copy.deepcopy(model), method="bf16")
    audio = [0.1 * np.sin(np.arange(8000) / (7 + i)) for i in range(2)]
    assert all(isinstance(t, str) for t in transcribe(half, processor, audio, max_new_tokens=4))
    x = {"input_features": torch.randn(1, 8, 32), "decoder_input_ids": torch.ones(1, 3, dtype=torch.long)}
    assert inputs_for(half, x)["input_features"].dtype == torch.bfloat16
    assert inputs_for(half, x)["decoder_input_ids"].dtype == torch.long
    with torch.inference_mode():
        assert set(latency_side_by_side({"dense": model, "bf16": half}, x, repeats=1, warmup=0)) == {"dense", "bf16"}

    data = DataSpec(source="espeak-speech", max_length=6)
    task = SpeechRecognition(SimpleNamespace(recipe=SimpleNamespace(data=data), processor=processor, model=model))
    rows = [{"audio": a, "sampling_rate": 16_000, "text": "ab"} for a in audio]
    task.prepare(model, rows, EvaluateStage(max_new_tokens=3))
    seconds = task.transcription_latency({"dense": model, "bf16": half}, repeats=3)
    assert set(seconds) == {"dense", "bf16"} and all(s > 0 for s in seconds.values())
    assert isinstance(task.quality(half)["wer"], float)
