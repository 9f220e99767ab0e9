"""Multilingual Whisper in the speech-recognition task: the language and task tokens of the decoder prompt in labels
(calibration, KD), in every `generate` (evaluation, generation timing, teacher transcripts) and in the finished model;
the one-line error when a multilingual model gets no language; `.en` models unchanged. A tiny multilingual Whisper is
built locally: its tokenizer numbers the language tokens as Whisper does (<|en|>, <|zh|>, <|de|> right after
<|startoftranscript|>) and its generation config has `lang_to_id` / `task_to_id`."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import transformers as T
import yaml

import compress
from compress.evaluate.speech import basic_normalize, normalize, transcribe_features, wer
from compress.recipe.runner import run_recipe
from compress.recipe.schema import DataSpec, EvaluateStage, Recipe
from compress.recipe.tasks import whisper_prompt
from compress.recipe.tasks.speech import SpeechRecognition
from conftest import _clips
from tiny import make, whisper_asr

SOT, EN, DE, TRANSLATE, TRANSCRIBE, NO_TIMESTAMPS = 1, 2, 4, 5, 6, 10


def whisper_multilingual():
    """The tiny Whisper (vocabulary 64) with a multilingual tokenizer and generation config."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    model, _ = make("whisper")
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|zh|>", "<|de|>", "<|translate|>",
                "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]  # fmt: skip
    chars = ["Ġ", *"abcdefghijklmnopqrstuvwxyz.,'", *"0123456789", *"ABCDEFGHIJKLM"]
    vocab = {t: i for i, t in enumerate(specials + chars)}
    assert len(vocab) == model.config.vocab_size
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tokenizer = T.WhisperTokenizer(tokenizer_object=tok, predict_timestamps=False)
    features = T.WhisperFeatureExtractor(feature_size=8, hop_length=500, chunk_length=1, n_fft=1024)
    model.config.eos_token_id = model.config.pad_token_id = 0
    model.config.decoder_start_token_id = SOT
    model.generation_config = T.GenerationConfig(  # as a checkpoint's generation_config.json holds it
        decoder_start_token_id=SOT,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        no_timestamps_token_id=NO_TIMESTAMPS,
        is_multilingual=True,
        lang_to_id={"<|en|>": EN, "<|zh|>": 3, "<|de|>": DE},
        task_to_id={"translate": TRANSLATE, "transcribe": TRANSCRIBE},
    )
    return model, T.WhisperProcessor(feature_extractor=features, tokenizer=tokenizer)


def _task(folder, model, **data):
    """A SpeechRecognition task as a recipe run builds it (processor from the saved folder, then the model)."""
    run = SimpleNamespace(recipe=SimpleNamespace(data=DataSpec(source="x", max_length=16, **data)))
    task = SpeechRecognition(run)
    run.processor, run.model = task.processor(str(folder)), model
    return task


class _Prompts:
    """Records the decoder input ids of each `generate`'s first step (the prompt)."""

    def __init__(self, model):
        self.seen, self._first = [], True
        model.model.decoder.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[1] > 1:  # the prompt step; cached steps feed one token
            self.seen.append(ids[:, :4].tolist())


@pytest.fixture
def multilingual(tmp_path):
    model, processor = whisper_multilingual()
    compress.save(model, tmp_path / "ml", tokenizer=processor)
    return model, tmp_path / "ml"


def test_prompt_holds_language_and_task_in_labels_evaluation_timing_and_teacher_transcripts(multilingual):
    model, folder = multilingual
    task = _task(folder, model, language="German")  # names become codes
    assert task.data.language == "de" and task.prompt == whisper_prompt.WhisperPrompt("de", "transcribe")
    rows = _clips(["go on", "stop it", "left right"], 0)

    # labels (KD and calibration batches): <|de|> <|transcribe|> <|notimestamps|> text <|endoftext|>; the model
    # prepends <|startoftranscript|> itself when it shifts labels right
    labels = task.examples(rows)[0]["labels"].tolist()
    assert labels[:3] == [DE, TRANSCRIBE, NO_TIMESTAMPS] and labels[-1] == 0
    assert task.run.processor.tokenizer.decode(labels, skip_special_tokens=True) == "go on"
    (batch,) = task.batches(rows, 32)
    assert (batch["labels"][:, :3] == torch.tensor([DE, TRANSCRIBE, NO_TIMESTAMPS])).all()

    prompts = _Prompts(model)
    task.prepare(model, rows, EvaluateStage(max_new_tokens=4))
    assert isinstance(task.quality(model)["wer"], float)  # evaluation transcripts
    task.generation_latency({"dense": model}, repeats=3)  # generation timing
    assert prompts.seen and all(p == [SOT, DE, TRANSCRIBE, NO_TIMESTAMPS] for s in prompts.seen for p in s)

    # teacher transcripts (pseudo-labels) through the run's processor take the same prompt, and become labels
    prompts.seen.clear()
    texts = transcribe_features(model, task.run.processor, task.features, max_new_tokens=4)
    assert prompts.seen and all(p == [SOT, DE, TRANSCRIBE, NO_TIMESTAMPS] for s in prompts.seen for p in s)
    pseudo = task.examples([{**r, "text": t} for r, t in zip(rows, texts)])
    assert all(e["labels"][:3].tolist() == [DE, TRANSCRIBE, NO_TIMESTAMPS] for e in pseudo)


def test_translate_task_and_the_saved_processor_keep_the_prompt(multilingual, tmp_path):
    model, folder = multilingual
    task = _task(folder, model, language="de", speech_task="translate")
    assert task.examples(_clips(["go"], 0))[0]["labels"][:3].tolist() == [DE, TRANSLATE, NO_TIMESTAMPS]
    assert task.prompt.text_language == "en"  # translations are English: the English normaliser scores them
    task.run.processor.save_pretrained(tmp_path / "saved")
    again = T.AutoProcessor.from_pretrained(tmp_path / "saved")
    assert whisper_prompt.generate_kwargs(model, again) == {"language": "de", "task": "translate"}


def test_multilingual_model_without_language_is_a_one_line_error_before_anything_is_written(multilingual, tmp_path):
    _, folder = multilingual
    recipe = {
        "name": "ml",
        "model": str(folder),
        "task": "speech-recognition",
        "data": {"source": "espeak-speech", "subset": "sentences"},
        "stages": [{"evaluate": {}}],
    }
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(compress.CompressError) as e:
        run_recipe(tmp_path / "r.yaml", tmp_path / "out")
    assert str(e.value).startswith("`data.language`: ") and "\n" not in str(e.value) and "language: en" in str(e.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(compress.CompressError, match="data.language.*no <|fr|> token.*use one of de, en, zh"):
        run_recipe(tmp_path / "r.yaml", tmp_path / "out", overrides=["data.language=fr"])
    assert not (tmp_path / "out").exists()


def test_english_only_model_is_unchanged_and_rejects_other_languages(tmp_path):
    model, processor = whisper_asr()
    compress.save(model, tmp_path / "en", tokenizer=processor)
    task = _task(tmp_path / "en", model)
    assert task.prompt == whisper_prompt.WhisperPrompt(None, None) and task.prompt.text_language == "en"
    assert whisper_prompt.generate_kwargs(model, task.run.processor) == {}
    labels = task.examples(_clips(["go on"], 0))[0]["labels"].tolist()
    assert labels == processor.tokenizer("go on").input_ids[1:]  # <|notimestamps|> text <|endoftext|>, as before
    assert labels[0] == 2
    assert _task(tmp_path / "en", model, language="english").prompt.language is None  # English is what it reads
    with pytest.raises(compress.CompressError, match=r"^`data.language`: the model is English-only"):
        _task(tmp_path / "en", model, language="de")
    with pytest.raises(compress.CompressError, match=r"^`data.speech_task`: an English-only model cannot translate"):
        _task(tmp_path / "en", model, speech_task="translate")


def test_tokenizer_that_disagrees_with_the_generation_config_is_rejected(multilingual):
    model, folder = multilingual
    gen = T.GenerationConfig.from_pretrained(folder)
    gen.lang_to_id = {"<|en|>": EN, "<|de|>": 3}  # <|de|> is id 4 in the tokenizer
    gen.save_pretrained(folder)
    with pytest.raises(compress.CompressError, match=r"^`tokenizer`: its prompt for de/transcribe is \[1, 4, 6, 10\]"):
        _task(folder, model, language="de")


def test_recipe_fields_are_validated():
    base = {"name": "x", "model": "m", "data": {"source": "espeak-speech"}, "stages": [{"evaluate": {}}]}
    ok = Recipe.model_validate({**base, "task": "speech-recognition", "data": {"source": "s", "language": "<|EN|>"}})
    assert ok.data.language == "en" and ok.data.speech_task is None
    with pytest.raises(ValueError, match="unknown language 'klingon'"):
        DataSpec(source="s", language="klingon")
    with pytest.raises(ValueError, match="speech_task"):
        DataSpec(source="s", speech_task="summarise")
    with pytest.raises(ValueError, match="data.language is for speech-recognition recipes only"):
        Recipe.model_validate({**base, "task": "text-classification", "data": {"source": "s", "language": "en"}})


def test_normaliser_is_english_only_for_english():
    assert normalize("Ten of clubs.", "en") == normalize("10 of clubs", "en") == "10 of clubs"
    assert normalize("Zehn Kreuz, bitte!", "de") == "zehn kreuz bitte"
    assert normalize("Ten of clubs.", "de") == "ten of clubs"  # no English number rules for other languages
    assert basic_normalize("Größe — Straße! «Ça va?»") == "größe straße ça va"
    assert basic_normalize("हिन्दी भाषा।") == "हिन्दी भाषा"  # combining vowel signs kept (Whisper's basic one drops them)
    assert wer(["Zehn Kreuz"], ["zehn, kreuz!"], "de") == 0.0


def test_tiny_multilingual_recipe_end_to_end_writes_the_prompt_into_the_final_model(
    fake_speech_cache,
    multilingual,
    tmp_path,
):
    _, folder = multilingual
    recipe = {
        "name": "tiny-asr-de",
        "model": str(folder),
        "task": "speech-recognition",
        "data": {"source": "espeak-speech", "subset": "sentences", "language": "de", "calibration_size": 4,
                 "eval_size": 2, "max_length": 16},
        "stages": [
            {"prune": {"heads": 0.5, "mlp": 0.5, "criterion": "activation"}},
            {"distill": {"steps": 2, "batch_size": 2, "warmup_steps": 1, "task_weight": 1.0}},
            {"evaluate": {"repeats": 3, "latency_batch_sizes": [1], "max_new_tokens": 4, "peak_memory": False}},
        ],
    }  # fmt: skip
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    run_recipe(tmp_path / "r.yaml", tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "report.json").read_text())["evaluation"]["rows"]
    assert [r["name"] for r in rows] == ["dense", "01-prune", "02-distill"]
    final = tmp_path / "out" / "final"
    gen = json.loads((final / "generation_config.json").read_text())
    assert (gen["language"], gen["task"]) == ("de", "transcribe")
    assert json.loads((final / "tokenizer_config.json").read_text())["language"] == "de"
    card = (final / "README.md").read_text()
    assert "language:\n- de" in card and "<|startoftranscript|> <|de|> <|transcribe|> <|notimestamps|>" in card
    assert "basic normaliser" in card
    model = compress.load(final)  # plain generate decodes with the recipe's prompt
    prompts = _Prompts(model)
    fe = T.AutoProcessor.from_pretrained(final).feature_extractor
    feats = fe([np.zeros(4000)], sampling_rate=16_000, return_tensors="pt").input_features
    model.generate(input_features=feats, max_new_tokens=2)
    assert prompts.seen[0] == [[SOT, DE, TRANSCRIBE, NO_TIMESTAMPS]]
