"""Whisper: encoder self-attention, decoder self- and cross-attention (cross-attention reads `num_heads`)."""

import json
from pathlib import Path

from ..errors import CompressError
from .base import AttentionSite, ConfigFields, MlpSite, ModelAdapter


def _site(a):
    return AttentionSite(module=a, q=a.q_proj, k=a.k_proj, v=a.v_proj, o=a.out_proj, head_dim=a.head_dim)


class WhisperAdapter(ModelAdapter):
    name = "whisper"
    model_types = ("whisper",)
    fields = ConfigFields(
        num_layers={"encoder": "encoder_layers", "decoder": "decoder_layers"},
        mlp_width={"encoder": "encoder_ffn_dim", "decoder": "decoder_ffn_dim"},
    )

    def stacks(self, model):
        base = self.base_model(model)
        return {"encoder": base.encoder.layers, "decoder": base.decoder.layers}

    def attentions(self, layer):
        sites = {"self_attn": _site(layer.self_attn)}
        if hasattr(layer, "encoder_attn"):
            sites["cross_attn"] = _site(layer.encoder_attn)
        return sites

    def mlp(self, layer):
        return MlpSite(inputs=[layer.fc1], output=layer.fc2)


# --- audio window ---------------------------------------------------------------------------------------------------
# Whisper reads a fixed 30-second window: 3,000 log-mel frames, 1,500 encoder positions after the stride-2 conv, and
# the encoder's self-attention is quadratic in them. Short clips (commands, phone prompts) are mostly padding. Cutting
# the window to its first N seconds keeps the first 50·N rows of the positional table; the result is a standard
# config (`max_source_positions`), loadable by plain transformers with the saved feature extractor's `chunk_length`.

POSITIONS_PER_SECOND = 50  # 100 mel frames per second (10 ms hop), halved by the encoder's second convolution


def window_frames(model) -> int | None:
    """Mel frames the encoder reads (3,000 for a full 30-second window); None for other families."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) != "whisper":
        return None
    return config.max_source_positions * 2


def cut_window(model, seconds: float) -> int:
    """Keep the encoder's first `seconds` of audio (in place); returns the encoder positions kept."""
    encoder = model.get_encoder()
    positions = encoder.embed_positions.num_embeddings
    kept, full = round(float(seconds) * POSITIONS_PER_SECOND), positions / POSITIONS_PER_SECOND
    if not float(seconds).is_integer() or not 0 < kept <= positions:
        raise CompressError(
            "audio_window",
            f"{seconds!r} is not a whole number of seconds within the model's {full:g}-second window",
            f"use whole seconds in (0, {full:g}]",
        )
    if kept < positions:
        table = encoder.embed_positions
        table.weight = type(table.weight)(table.weight.data[:kept].clone(), requires_grad=False)
        table.num_embeddings = kept
        encoder.max_source_positions = model.config.max_source_positions = kept
    attach_window(model)
    return kept


def _crop_features(encoder, args, kwargs):
    """Forward pre-hook: features longer than the window (a pipeline's shared 30-second features) are cut to it."""
    if args:
        args = (crop_features(encoder, {"input_features": args[0]})["input_features"], *args[1:])
    return args, crop_features(encoder, kwargs)


def attach_window(model) -> None:
    """Let a (window-cut) Whisper encoder read longer features: it keeps their first frames. No-op for others."""
    if window_frames(model) is None:
        return
    encoder = model.get_encoder()
    if not getattr(encoder, "_compress_window_hook", False):
        encoder.register_forward_pre_hook(_crop_features, with_kwargs=True)
        encoder._compress_window_hook = True


def window_samples(model, feature_extractor) -> int:
    """Audio samples in the window the model reads (the feature extractor's own window for other families)."""
    return (window_frames(model) or feature_extractor.nb_max_frames) * feature_extractor.hop_length


def crop_features(model, inputs: dict) -> dict:
    """`inputs` with `input_features` cut to the window of `model` (a Whisper model or its encoder); `generate` must
    get them cut, as it treats longer features as long-form audio."""
    frames = window_frames(model)
    x = inputs.get("input_features")
    if frames is None or x is None or x.shape[-1] <= frames:
        return inputs
    return {**inputs, "input_features": x[..., :frames]}


def save_window(model, folder) -> None:
    """Make the saved feature extractor produce the model's window (plain transformers users call it directly)."""
    frames = window_frames(model)
    if frames is None:
        return
    # transformers 5 nests the feature extractor in processor_config.json; older folders have their own file
    for name, key in (("processor_config.json", "feature_extractor"), ("preprocessor_config.json", None)):
        path = Path(folder) / name
        if not path.exists():
            continue
        saved = json.loads(path.read_text())
        cfg = saved.get(key) if key else saved
        if not isinstance(cfg, dict):
            continue
        hop = cfg.get("hop_length", 160)
        cfg.update(
            nb_max_frames=frames, n_samples=frames * hop, chunk_length=frames * hop // cfg.get("sampling_rate", 16_000)
        )
        path.write_text(json.dumps(saved, indent=2) + "\n")
