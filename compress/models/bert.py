"""BERT-style encoders: BERT, RoBERTa, XLM-R, ELECTRA (query/key/value + output.dense; intermediate/output)."""

from .base import AttentionSite, ConfigFields, MlpSite, ModelAdapter


class BertAdapter(ModelAdapter):
    name = "bert"
    model_types = ("bert", "roberta", "xlm-roberta", "electra", "camembert")
    fields = ConfigFields(num_layers={"encoder": "num_hidden_layers"}, mlp_width={"encoder": "intermediate_size"})

    def stacks(self, model):
        return {"encoder": self.base_model(model).encoder.layer}

    def attentions(self, layer):
        attn = layer.attention.self
        return {
            "attention": AttentionSite(
                module=attn,
                q=attn.query,
                k=attn.key,
                v=attn.value,
                o=layer.attention.output.dense,
                head_dim=attn.attention_head_size,
            )
        }

    def mlp(self, layer):
        return MlpSite(inputs=[layer.intermediate.dense], output=layer.output.dense)

    def post_norms(self, layer):
        return {"attention": layer.attention.output.LayerNorm, "mlp": layer.output.LayerNorm}
