"""Wav2Vec2 / HuBERT speech encoders (the convolutional feature extractor is left alone)."""

from .base import AttentionSite, ConfigFields, MlpSite, ModelAdapter


class Wav2Vec2Adapter(ModelAdapter):
    name = "wav2vec2"
    model_types = ("wav2vec2", "hubert")
    fields = ConfigFields(num_layers={"encoder": "num_hidden_layers"}, mlp_width={"encoder": "intermediate_size"})

    def stacks(self, model):
        return {"encoder": self.base_model(model).encoder.layers}

    def attentions(self, layer):
        a = layer.attention
        return {
            "attention": AttentionSite(module=a, q=a.q_proj, k=a.k_proj, v=a.v_proj, o=a.out_proj, head_dim=a.head_dim)
        }

    def mlp(self, layer):
        ff = layer.feed_forward
        return MlpSite(inputs=[ff.intermediate_dense], output=ff.output_dense)

    def post_norms(self, layer):
        if type(layer).__name__.endswith("StableLayerNorm"):  # pre-norm variant (do_stable_layer_norm=True)
            return {}
        return {"attention": layer.layer_norm, "mlp": layer.final_layer_norm}
