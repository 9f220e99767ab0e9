"""DistilBERT: q_lin/k_lin/v_lin/out_lin attention, ffn.lin1/lin2."""

from .base import AttentionSite, ConfigFields, MlpSite, ModelAdapter


class DistilBertAdapter(ModelAdapter):
    name = "distilbert"
    model_types = ("distilbert",)
    fields = ConfigFields(num_layers={"encoder": "n_layers"}, mlp_width={"encoder": "hidden_dim"})

    def stacks(self, model):
        return {"encoder": self.base_model(model).transformer.layer}

    def attentions(self, layer):
        a = layer.attention
        return {
            "attention": AttentionSite(
                module=a, q=a.q_lin, k=a.k_lin, v=a.v_lin, o=a.out_lin, head_dim=a.attention_head_size
            )
        }

    def mlp(self, layer):
        return MlpSite(inputs=[layer.ffn.lin1], output=layer.ffn.lin2)

    def post_norms(self, layer):
        return {"attention": layer.sa_layer_norm, "mlp": layer.output_layer_norm}
