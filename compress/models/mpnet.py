"""MPNet: like BERT, but one relative-position bias of shape (num_buckets, heads) is shared by every layer, so each
pruned layer must select its own kept heads from it (done with a forward pre-hook re-installed on load)."""

import torch

from .base import AttentionSite, ConfigFields, MlpSite, ModelAdapter


def _select_bias_heads(module, args, kwargs):
    # position_bias: (B, heads_of_unpruned_model, T, T) -> keep this layer's heads only
    kept = module._compress_kept_heads  # a list: built under from_pretrained's meta device, a tensor would be empty
    if kwargs.get("position_bias") is not None:
        bias = kwargs["position_bias"]
        kwargs["position_bias"] = bias.index_select(1, torch.tensor(kept, device=bias.device))
    elif len(args) > 2 and args[2] is not None:
        args = (*args[:2], args[2].index_select(1, torch.tensor(kept, device=args[2].device)), *args[3:])
    return args, kwargs


class MPNetAdapter(ModelAdapter):
    name = "mpnet"
    model_types = ("mpnet",)
    fields = ConfigFields(num_layers={"encoder": "num_hidden_layers"}, mlp_width={"encoder": "intermediate_size"})

    def stacks(self, model):
        return {"encoder": self.base_model(model).encoder.layer}

    def attentions(self, layer):
        a = layer.attention.attn
        return {"attention": AttentionSite(module=a, q=a.q, k=a.k, v=a.v, o=a.o, head_dim=a.attention_head_size)}

    def mlp(self, layer):
        return MlpSite(inputs=[layer.intermediate.dense], output=layer.output.dense)

    def post_norms(self, layer):
        return {"attention": layer.attention.LayerNorm, "mlp": layer.output.LayerNorm}

    def set_head_counts(self, site, original_kept):
        super().set_head_counts(site, original_kept)
        first = not hasattr(site.module, "_compress_kept_heads")
        site.module._compress_kept_heads = [int(h) for h in original_kept]
        if first:
            site.module.register_forward_pre_hook(_select_bias_heads, with_kwargs=True)
