"""Tiny random models of every supported family, with matching inputs (the one place tests get models from)."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import transformers as T

V = 64  # vocab
COMMON = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=40)
GQA = dict(
    vocab_size=V,
    hidden_size=48,
    num_hidden_layers=3,
    num_attention_heads=6,
    num_key_value_heads=2,
    intermediate_size=40,
    head_dim=8,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
AUDIO = dict(
    conv_dim=(16, 16),
    conv_stride=(4, 4),
    conv_kernel=(8, 8),
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    vocab_size=V,
)


def _text(config_cls, model_cls, **extra):
    return lambda: (model_cls(config_cls(vocab_size=V, **{**COMMON, **extra})), "text")


FAMILIES = {
    "bert": _text(T.BertConfig, T.BertForSequenceClassification),
    "roberta": _text(T.RobertaConfig, T.RobertaForSequenceClassification, pad_token_id=1),
    "xlm-roberta": _text(T.XLMRobertaConfig, T.XLMRobertaForSequenceClassification, pad_token_id=1),
    "electra": _text(T.ElectraConfig, T.ElectraForSequenceClassification, embedding_size=16),
    "mpnet": _text(T.MPNetConfig, T.MPNetForSequenceClassification),
    "distilbert": lambda: (
        T.DistilBertForSequenceClassification(
            T.DistilBertConfig(vocab_size=V, dim=32, n_layers=3, n_heads=4, hidden_dim=40)
        ),
        "text",
    ),
    "vit": lambda: (
        T.ViTForImageClassification(T.ViTConfig(image_size=16, patch_size=4, num_labels=3, **COMMON)),
        "image",
    ),
    "deit": lambda: (
        T.DeiTForImageClassification(T.DeiTConfig(image_size=16, patch_size=4, num_labels=3, **COMMON)),
        "image",
    ),
    "wav2vec2": lambda: (T.Wav2Vec2ForSequenceClassification(T.Wav2Vec2Config(**COMMON, **AUDIO)), "audio"),
    "hubert": lambda: (T.HubertForSequenceClassification(T.HubertConfig(**COMMON, **AUDIO)), "audio"),
    "whisper": lambda: (
        T.WhisperForConditionalGeneration(
            T.WhisperConfig(
                vocab_size=V,
                d_model=32,
                encoder_layers=3,
                decoder_layers=3,
                encoder_attention_heads=4,
                decoder_attention_heads=4,
                encoder_ffn_dim=40,
                decoder_ffn_dim=40,
                num_mel_bins=8,
                max_source_positions=16,
                max_target_positions=32,
                pad_token_id=0,
                bos_token_id=1,
                eos_token_id=2,
                decoder_start_token_id=1,
                suppress_tokens=None,
                begin_suppress_tokens=None,
            )
        ),
        "speech2text",
    ),
    "gpt2": lambda: (
        T.GPT2LMHeadModel(
            T.GPT2Config(
                vocab_size=V, n_embd=32, n_layer=3, n_head=4, n_inner=40, n_positions=64, bos_token_id=1, eos_token_id=2
            )
        ),
        "causal",
    ),
    "llama": lambda: (T.LlamaForCausalLM(T.LlamaConfig(**GQA)), "causal"),
    "mistral": lambda: (T.MistralForCausalLM(T.MistralConfig(**GQA)), "causal"),
    "qwen2": lambda: (T.Qwen2ForCausalLM(T.Qwen2Config(**GQA)), "causal"),
    "qwen3": lambda: (T.Qwen3ForCausalLM(T.Qwen3Config(**GQA)), "causal"),
    "gemma": lambda: (T.GemmaForCausalLM(T.GemmaConfig(**GQA)), "causal"),
    "gemma2": lambda: (T.Gemma2ForCausalLM(T.Gemma2Config(**GQA)), "causal"),
    "gemma3": lambda: (T.Gemma3ForCausalLM(T.Gemma3TextConfig(**GQA)), "causal"),
}
DECODERS = [
    k
    for k, (f) in FAMILIES.items()
    if k in ("gpt2", "llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "whisper")
]


def make(family: str, seed: int = 0):
    """(model in eval mode with random weights, input kind)."""
    torch.manual_seed(seed)
    model, kind = FAMILIES[family]()
    _rescale(model)
    return model.eval(), kind


def _rescale(model):
    """Weights of unit scale (default inits of 0.02 give outputs near zero, which makes 1e-5 checks vacuous) and
    random norm gains and biases, so every head and neuron visibly matters."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0, 1 / max(p.shape[-1], p.shape[0]) ** 0.5)
            elif "norm" in name.lower() or "layer_norm" in name.lower():
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.1)


def inputs(kind: str, batch: int = 2, seq: int = 10, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    if kind == "image":
        return {"pixel_values": torch.randn(batch, 3, 16, 16, generator=g)}
    if kind == "audio":
        return {"input_values": torch.randn(batch, 800, generator=g)}
    if kind == "speech2text":
        return {
            "input_features": torch.randn(batch, 8, 32, generator=g),
            "decoder_input_ids": torch.randint(3, V, (batch, 6), generator=g),
        }
    ids = torch.randint(3, V, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[0, -3:] = 0  # some padding
    return {"input_ids": ids, "attention_mask": mask}


def with_labels(model, kind: str, batch: dict) -> dict:
    """Inputs plus task labels, for losses (backward tests, gradient criteria)."""
    b = dict(batch)
    n = next(iter(batch.values())).shape[0]
    if kind in ("causal",):
        b["labels"] = batch["input_ids"]
    elif kind == "speech2text":
        b["labels"] = batch["decoder_input_ids"]
        b.pop("decoder_input_ids")
    else:
        b["labels"] = torch.randint(0, model.config.num_labels, (n,))
    return b


def first_output(out) -> torch.Tensor:
    return out.logits if getattr(out, "logits", None) is not None else out[0]


def word_tokenizer():
    """A word-level fast tokenizer over the vocabulary "w0".."w59" (ids 4..63), for tests that need text."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [f"w{i}" for i in range(60)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    out = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    turns = "{% for m in messages %}[CLS] {{ m['content'] }} [SEP] {% endfor %}"
    out.chat_template = turns + "{% if add_generation_prompt %}[CLS] {% endif %}"
    return out


def sentences(n: int, seed: int = 0) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    return [
        " ".join(
            f"w{int(i)}" for i in torch.randint(0, 60, (int(torch.randint(4, 12, (1,), generator=g)),), generator=g)
        )
        for _ in range(n)
    ]


def whisper_asr():
    """The tiny Whisper with a matching WhisperProcessor, for speech-recognition tests: a character-level byte BPE
    tokenizer (no merges) whose ids 0-2 are <|endoftext|>, <|startoftranscript|>, <|notimestamps|> (the model's end,
    decoder start and no-timestamps ids), and a feature extractor making 8 mel bins x 32 frames per 1-second window
    (what `max_source_positions=16` expects)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    model, _ = make("whisper")
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"]
    chars = ["Ġ", *"abcdefghijklmnopqrstuvwxyz.,'", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ", *"01234"]
    vocab = {t: i for i, t in enumerate(specials + chars)}  # exactly V = 64 ids
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    tokenizer = T.WhisperTokenizer(tokenizer_object=tok, predict_timestamps=False)
    features = T.WhisperFeatureExtractor(feature_size=8, hop_length=500, chunk_length=1, n_fft=1024)
    for cfg in (model.config, model.generation_config):
        cfg.eos_token_id = cfg.pad_token_id = 0
        cfg.decoder_start_token_id = 1
    model.generation_config.no_timestamps_token_id = 2
    return model, T.WhisperProcessor(feature_extractor=features, tokenizer=tokenizer)


def accelerate_launch(processes: int = 2) -> list[str]:
    """`accelerate launch --multi_gpu` with N processes on a free port (real gloo processes on a CPU), to which the
    script and its arguments are appended."""
    import socket
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(port)]  # fmt: skip


def hub_style_encoder(path, family: str = "bert") -> None:
    """A checkpoint saved the way sentence-transformers exports are on the Hub: config.json names `*ForMaskedLM`
    while the weights are the bare encoder plus its pooler (keys `embeddings.*`, `encoder.*`, `pooler.*`)."""
    import json
    from pathlib import Path

    encoder = make(family)[0].base_model  # BertModel: embeddings, encoder, pooler
    encoder.save_pretrained(path)
    word_tokenizer().save_pretrained(path)
    config = json.loads((Path(path) / "config.json").read_text())
    config["architectures"] = [f"{type(encoder).__name__.removesuffix('Model')}ForMaskedLM"]
    (Path(path) / "config.json").write_text(json.dumps(config, indent=2))


def write_recipe(path, name: str, model, task: str, files: dict, stages: list, **data):
    """A recipe over local train / test files (csv or plain text, from the suffix) at `path`; `data` overrides the
    small defaults. Returns `path`."""
    import yaml

    source = "csv" if str(next(iter(files.values()))).endswith(".csv") else "text"
    spec = {"source": source, "files": {k: str(v) for k, v in files.items()}}
    spec.update({"calibration_size": 16, "eval_size": 24, "max_length": 16, **data})
    raw = {"name": name, "model": str(model), "task": task, "data": spec, "stages": stages}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


CLI_ENV = {
    "COMPRESS_PROGRESS": "0",
    "HF_HUB_OFFLINE": "1",
    "PATH": "/usr/bin:/bin",
    "HOME": os.environ.get("HOME", "/tmp"),
}


def run_cli(*args, env: dict | None = None, prelude: str = "", **kwargs) -> subprocess.CompletedProcess:
    """`compress ARGS` in a fresh process with a clean environment (no progress bars, the Hub offline; `env` adds or
    overrides variables). `prelude` is Python run before the CLI starts, e.g. hiding an optional dependency."""
    cmd = [sys.executable, "-m", "compress.cli"]
    if prelude:
        main = "import sys\nfrom compress.cli import main\nsys.argv = ['compress', *sys.argv[1:]]\nmain()\n"
        cmd = [sys.executable, "-c", f"import sys\n{prelude}\n{main}"]
    env = {**CLI_ENV, **(env or {})}
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, env=env, **kwargs)
