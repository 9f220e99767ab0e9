"""ViT / DeiT image encoders (transformers 5 names: layers.N.attention.{q,k,v,o}_proj, mlp.fc1/fc2)."""

from .base import AttentionSite, ConfigFields, MlpSite, ModelAdapter


class ViTAdapter(ModelAdapter):
    name = "vit"
    model_types = ("vit", "deit")
    fields = ConfigFields(num_layers={"encoder": "num_hidden_layers"}, mlp_width={"encoder": "intermediate_size"})

    def stacks(self, model):
        base = self.base_model(model)
        return {"encoder": base.layers if hasattr(base, "layers") else base.encoder.layer}

    def attentions(self, layer):
        a = layer.attention
        return {
            "attention": AttentionSite(module=a, q=a.q_proj, k=a.k_proj, v=a.v_proj, o=a.o_proj, head_dim=a.head_dim)
        }

    def mlp(self, layer):
        return MlpSite(inputs=[layer.mlp.fc1], output=layer.mlp.fc2)
