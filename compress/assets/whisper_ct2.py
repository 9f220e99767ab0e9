"""CTranslate2 Whisper checkpoints (faster-whisper's `model.bin`) -> transformers `WhisperForConditionalGeneration`.

Read without the ctranslate2 package. The binary layout (CTranslate2 `ModelSpec._serialize`, binary version 6), all
little-endian, strings as uint16 length (with the trailing NUL) + bytes:

    uint32 version | string spec name | uint32 revision | uint32 n
    n x (string name | uint8 rank | uint32 x rank dims | uint8 dtype | uint32 nbytes | nbytes data)
    uint32 n_aliases | n_aliases x (string alias | string target)

What the conversion undoes: self-attention q/k/v are fused into one `linear_0` (3D x D) and cross-attention k/v into
`linear_1` (2D x D); Whisper's key projection has no bias (its slice of the fused bias is zero); names follow
CTranslate2's spec (`self_attention/linear_0`, `ffn/linear_1`, `layer_norm/gamma`). Weights are fp16 and become fp32.

    python -m compress.assets.whisper_ct2 CT2_FOLDER OUT_FOLDER
"""

from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import CompressError

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # CTranslate2 DataType ids (5 = bf16)
BINARY_VERSION = 6


# -- the binary format -------------------------------------------------------------------------------------------------
def read_ct2(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """(spec name, {variable name: array}); aliases resolve to the array they name."""
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def string() -> str:
        nonlocal pos
        (n,) = take("H")
        pos += n
        return data[pos - n : pos - 1].decode("utf-8")

    (version,) = take("I")
    if version != BINARY_VERSION:
        raise CompressError("model.bin", f"CTranslate2 binary version {version} is not supported", "expected 6")
    spec = string()
    take("I")  # spec revision
    (n,) = take("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(n):
        name = string()
        (rank,) = take("B")
        dims = take(f"{rank}I")
        dtype, nbytes = take("BI")
        if dtype not in DTYPES:
            raise CompressError("model.bin", f"{name}: CTranslate2 dtype id {dtype} is not supported")
        variables[name] = np.frombuffer(data, DTYPES[dtype], nbytes // np.dtype(DTYPES[dtype]).itemsize, pos)
        variables[name] = variables[name].reshape(dims)
        pos += nbytes
    (n_alias,) = take("I")
    for _ in range(n_alias):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return spec, variables


def write_ct2(path: str | Path, spec: str, variables: dict[str, np.ndarray], aliases: dict[str, str] = {}) -> None:  # noqa: B006 (read only)
    """The same layout, written (tests build tiny CTranslate2 models with it)."""
    codes = {np.dtype(t): c for c, t in DTYPES.items()}

    def string(s: str) -> bytes:
        b = s.encode("utf-8") + b"\0"
        return struct.pack("<H", len(b)) + b

    out = [struct.pack("<I", BINARY_VERSION), string(spec), struct.pack("<II", 3, len(variables))]
    for name, a in sorted(variables.items()):
        a = np.asarray(a)  # tobytes() is C order; ascontiguousarray would turn scalars into 1-d arrays
        out += [
            string(name),
            struct.pack(f"<B{a.ndim}I", a.ndim, *a.shape),
            struct.pack("<BI", codes[a.dtype], a.nbytes),
        ]
        out.append(a.tobytes())
    out.append(struct.pack("<I", len(aliases)))
    out += [string(a) + string(t) for a, t in aliases.items()]
    Path(path).write_bytes(b"".join(out))


# -- Whisper names -----------------------------------------------------------------------------------------------------
def _layers(variables: dict, stack: str) -> int:
    return len({k.split("/")[1] for k in variables if re.match(rf"{stack}/layer_\d+/", k)})


def whisper_config_kwargs(variables: dict[str, np.ndarray]) -> dict:
    """WhisperConfig sizes read from the tensors and the spec's scalar attributes."""
    if bool(variables.get("decoder/scale_embeddings", np.zeros(())).item()):
        raise CompressError("model.bin", "scaled decoder embeddings are not Whisper", "is this a Whisper model?")
    conv1 = variables["encoder/conv1/weight"]  # (D, mel bins, 3)
    return dict(
        vocab_size=variables["decoder/embeddings/weight"].shape[0],
        num_mel_bins=conv1.shape[1],
        d_model=conv1.shape[0],
        encoder_layers=_layers(variables, "encoder"),
        decoder_layers=_layers(variables, "decoder"),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
    )


def _linear(out: dict, hf: str, v: dict, ct2: str, rows: slice = slice(None), bias: bool = True) -> None:
    out[f"{hf}.weight"] = v[f"{ct2}/weight"][rows]
    if bias:
        out[f"{hf}.bias"] = v[f"{ct2}/bias"][rows]


def _norm(out: dict, hf: str, v: dict, ct2: str) -> None:
    out[f"{hf}.weight"], out[f"{hf}.bias"] = v[f"{ct2}/gamma"], v[f"{ct2}/beta"]


def _attention(out: dict, hf: str, v: dict, ct2: str, d: int, cross: bool) -> None:
    """Split fused projections: self-attention linear_0 = [q; k; v]; cross-attention linear_0 = q, linear_1 = [k; v]."""
    q, kv, o = ("linear_0", "linear_1", "linear_2") if cross else ("linear_0", "linear_0", "linear_1")
    first = 0 if cross else d  # where k starts in its fused matrix
    _linear(out, f"{hf}.q_proj", v, f"{ct2}/{q}", slice(0, d))
    _linear(out, f"{hf}.k_proj", v, f"{ct2}/{kv}", slice(first, first + d), bias=False)
    _linear(out, f"{hf}.v_proj", v, f"{ct2}/{kv}", slice(first + d, first + 2 * d))
    _linear(out, f"{hf}.out_proj", v, f"{ct2}/{o}")


def whisper_state_dict(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """transformers state dict (fp32) of `WhisperForConditionalGeneration` from CTranslate2 Whisper variables."""
    v, out = variables, {}
    d = v["encoder/conv1/weight"].shape[0]
    for name in ("conv1", "conv2"):
        _linear(out, f"model.encoder.{name}", v, f"encoder/{name}")
    out["model.encoder.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    out["model.decoder.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    out["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    for stack in ("encoder", "decoder"):
        _norm(out, f"model.{stack}.layer_norm", v, f"{stack}/layer_norm")
        for i in range(_layers(v, stack)):
            hf, ct2 = f"model.{stack}.layers.{i}", f"{stack}/layer_{i}"
            _attention(out, f"{hf}.self_attn", v, f"{ct2}/self_attention", d, cross=False)
            _norm(out, f"{hf}.self_attn_layer_norm", v, f"{ct2}/self_attention/layer_norm")
            if stack == "decoder":
                _attention(out, f"{hf}.encoder_attn", v, f"{ct2}/attention", d, cross=True)
                _norm(out, f"{hf}.encoder_attn_layer_norm", v, f"{ct2}/attention/layer_norm")
            _linear(out, f"{hf}.fc1", v, f"{ct2}/ffn/linear_0")
            _linear(out, f"{hf}.fc2", v, f"{ct2}/ffn/linear_1")
            _norm(out, f"{hf}.final_layer_norm", v, f"{ct2}/ffn/layer_norm")
    return {k: torch.from_numpy(np.asarray(a, dtype=np.float32).copy()) for k, a in out.items()}


def ct2_variables(model) -> dict[str, np.ndarray]:
    """The inverse (fp16, fused q/k/v as CTranslate2's converter writes them): tests round-trip tiny models."""
    sd = {k: t.detach().float().numpy() for k, t in model.state_dict().items()}
    cfg, v = model.config, {}

    def lin(ct2, *hf, bias=True):
        v[f"{ct2}/weight"] = np.concatenate([sd[f"{h}.weight"] for h in hf])
        if bias:
            zeros = [np.zeros(sd[f"{h}.weight"].shape[0], np.float32) for h in hf]
            v[f"{ct2}/bias"] = np.concatenate([sd.get(f"{h}.bias", z) for h, z in zip(hf, zeros)])

    def norm(ct2, hf):
        v[f"{ct2}/gamma"], v[f"{ct2}/beta"] = sd[f"{hf}.weight"], sd[f"{hf}.bias"]

    for name in ("conv1", "conv2"):
        lin(f"encoder/{name}", f"model.encoder.{name}")
    v["encoder/position_encodings/encodings"] = sd["model.encoder.embed_positions.weight"]
    v["decoder/position_encodings/encodings"] = sd["model.decoder.embed_positions.weight"]
    v["decoder/embeddings/weight"] = sd["model.decoder.embed_tokens.weight"]
    for stack, n in (("encoder", cfg.encoder_layers), ("decoder", cfg.decoder_layers)):
        norm(f"{stack}/layer_norm", f"model.{stack}.layer_norm")
        for i in range(n):
            hf, ct2 = f"model.{stack}.layers.{i}", f"{stack}/layer_{i}"
            a = f"{hf}.self_attn"
            lin(f"{ct2}/self_attention/linear_0", f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj")
            lin(f"{ct2}/self_attention/linear_1", f"{a}.out_proj")
            norm(f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
            if stack == "decoder":
                c = f"{hf}.encoder_attn"
                lin(f"{ct2}/attention/linear_0", f"{c}.q_proj")
                lin(f"{ct2}/attention/linear_1", f"{c}.k_proj", f"{c}.v_proj")
                lin(f"{ct2}/attention/linear_2", f"{c}.out_proj")
                norm(f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
            lin(f"{ct2}/ffn/linear_0", f"{hf}.fc1")
            lin(f"{ct2}/ffn/linear_1", f"{hf}.fc2")
            norm(f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm")
    v = {k: a.astype(np.float16) for k, a in v.items()}
    v["encoder/num_heads"] = np.array(cfg.encoder_attention_heads, np.int16)
    v["decoder/num_heads"] = np.array(cfg.decoder_attention_heads, np.int16)
    v["decoder/scale_embeddings"] = np.array(0, np.int8)
    return v


# -- the whole folder --------------------------------------------------------------------------------------------------
def special_tokens(tokenizer_json: Path) -> dict[str, int]:
    """Ids of Whisper's special tokens as this tokenizer numbers them (.en models: sot 50257, not 50258)."""
    added = {t["content"]: t["id"] for t in json.loads(tokenizer_json.read_text(encoding="utf-8"))["added_tokens"]}
    for needed in ("<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"):
        if needed not in added:
            raise CompressError("tokenizer.json", f"has no {needed} token", "is this a Whisper tokenizer?")
    return added


def convert(ct2_folder: str | Path, out: str | Path) -> Path:
    """CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json) -> transformers folder (safetensors, fp32,
    generation config, WhisperProcessor)."""
    import transformers as T

    src, out = Path(ct2_folder), Path(out)
    spec, variables = read_ct2(src / "model.bin")
    if spec != "WhisperSpec":
        raise CompressError("model.bin", f"holds a {spec}, not a WhisperSpec")
    extra = json.loads((src / "config.json").read_text()) if (src / "config.json").exists() else {}
    ids = special_tokens(src / "tokenizer.json")
    sizes = whisper_config_kwargs(variables)
    eot, sot = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
    multilingual = sizes["vocab_size"] >= 51865  # .en vocabularies lack one language token
    config = T.WhisperConfig(
        **sizes,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        suppress_tokens=extra.get("suppress_ids"),
        begin_suppress_tokens=extra.get("suppress_ids_begin"),
        architectures=["WhisperForConditionalGeneration"],
    )
    model = T.WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(whisper_state_dict(variables), strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]  # tied to the token embeddings
    if missing or unexpected:
        raise CompressError("model.bin", f"conversion left tensors unmatched: {(missing + unexpected)[:4]}")
    model.tie_weights()
    gen = T.GenerationConfig(
        decoder_start_token_id=sot,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=sizes["max_target_positions"],
        suppress_tokens=extra.get("suppress_ids"),
        begin_suppress_tokens=extra.get("suppress_ids_begin"),
        alignment_heads=extra.get("alignment_heads"),
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids.get("<|startofprev|>"),
        is_multilingual=multilingual,
        return_timestamps=False,
    )
    if multilingual:  # language and task prompts exist only for multilingual models
        gen.lang_to_id = {t: i for t, i in ids.items() if sot < i < ids["<|translate|>"]}  # <|en|> ... <|yue|>
        gen.task_to_id = {t: ids[f"<|{t}|>"] for t in ("translate", "transcribe")}
    model.generation_config = gen
    tokenizer = T.WhisperTokenizer(tokenizer_file=str(src / "tokenizer.json"), predict_timestamps=False)
    features = T.WhisperFeatureExtractor(feature_size=sizes["num_mel_bins"])
    processor = T.WhisperProcessor(feature_extractor=features, tokenizer=tokenizer)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


if __name__ == "__main__":
    print(convert(sys.argv[1], sys.argv[2]))
