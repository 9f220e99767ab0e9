"""Llama-family decoders with grouped-query attention: Llama, Mistral, Qwen2, Qwen3, Gemma, Gemma2, Gemma3 (text).

Their configs carry an explicit `head_dim`, so a plan with the same width in every layer is written as a standard
config that plain transformers loads. Gated MLP: gate and up rows are sliced together with down columns."""

from .base import AttentionSite, ConfigFields, MlpSite, ModelAdapter


class LlamaAdapter(ModelAdapter):
    name = "llama"
    model_types = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text")
    fields = ConfigFields(
        num_layers={"decoder": "num_hidden_layers"},
        mlp_width={"decoder": "intermediate_size"},
        heads={"decoder": ("num_attention_heads", "num_key_value_heads")},
    )
    explicit_head_dim = True

    def stacks(self, model):
        return {"decoder": self.base_model(model).layers}

    def attentions(self, layer):
        a = layer.self_attn
        return {
            "self_attn": AttentionSite(module=a, q=a.q_proj, k=a.k_proj, v=a.v_proj, o=a.o_proj, head_dim=a.head_dim)
        }

    def mlp(self, layer):
        m = layer.mlp
        return MlpSite(inputs=[m.gate_proj, m.up_proj], output=m.down_proj)

    def set_num_layers(self, config, stack, kept):
        super().set_num_layers(config, stack, kept)
        if getattr(config, "layer_types", None) is not None:  # sliding/full attention per layer follows its layer
            config.layer_types = [config.layer_types[i] for i in kept]
