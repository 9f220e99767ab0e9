"""GPT-2: fused c_attn (q|k|v along the output) and transposed Conv1D layers; `split_size` follows the head count."""

from .base import AttentionSite, ConfigFields, MlpSite, ModelAdapter


class GPT2Adapter(ModelAdapter):
    name = "gpt2"
    model_types = ("gpt2",)
    fields = ConfigFields(num_layers={"decoder": "n_layer"}, mlp_width={"decoder": "n_inner"})

    def stacks(self, model):
        return {"decoder": self.base_model(model).h}

    def attentions(self, layer):
        a = layer.attn
        return {"attention": AttentionSite(module=a, qkv=a.c_attn, o=a.c_proj, head_dim=a.head_dim)}

    def mlp(self, layer):
        return MlpSite(inputs=[layer.mlp.c_fc], output=layer.mlp.c_proj)
