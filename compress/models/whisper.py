"""Whisper: encoder self-attention, decoder self- and cross-attention (cross-attention reads `num_heads`)."""

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
