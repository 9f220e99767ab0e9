"""Graph rewrites applied to the exported float graph before it is verified against PyTorch.

`attention_3d`: the exporter feeds each ONNX `Attention` node 4-D (batch, heads, sequence, head_dim) tensors, so every
attention layer carries Reshape + Transpose on Q, K and V and Transpose + Reshape on its output. `Attention` also
takes the 3-D (batch, sequence, heads × head_dim) projections with `q_num_heads` / `kv_num_heads` attributes, which
removes those eight nodes per layer (48 of the MiniLM demo's 337). The head counts are read from the exporter's shape
annotations, so per-layer widths of a pruned model come out right.
"""

from __future__ import annotations

import onnx
from onnx import helper

_HEADS_TO_AXIS_1 = [0, 2, 1, 3]  # (b, s, h, d) <-> (b, h, s, d)


def _perm(node) -> list[int] | None:
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), None)


def attention_3d(model: onnx.ModelProto) -> int:
    """Rewrite, in place, every `Attention` fed by Reshape → Transpose and read by Transpose → Reshape to take and
    give 3-D tensors; returns how many were rewritten (the others are left as they are)."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    shapes = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim] for v in g.value_info}

    def only_user(name: str, op: str):
        users = consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op else None

    dropped, rewritten = set(), 0
    for att in [n for n in g.node if n.op_type == "Attention" and n.domain in ("", "ai.onnx")]:
        flat, heads, nodes = [], [], []
        for name in att.input[:3]:  # q, k, v: Transpose(Reshape(x (b, s, h*d)))
            t = producer.get(name)
            r = producer.get(t.input[0]) if t is not None and t.op_type == "Transpose" else None
            if r is None or r.op_type != "Reshape" or _perm(t) != _HEADS_TO_AXIS_1:
                break
            if len(consumers[name]) != 1 or len(consumers[r.output[0]]) != 1 or len(shapes.get(r.input[0], [])) != 3:
                break
            flat.append(r.input[0])
            heads.append(shapes.get(name, [None, None])[1])
            nodes += [t, r]
        out_t = only_user(att.output[0], "Transpose")
        out_r = only_user(out_t.output[0], "Reshape") if out_t is not None else None
        if len(flat) != 3 or out_r is None or _perm(out_t) != _HEADS_TO_AXIS_1:
            continue
        if not all(isinstance(h, int) and h > 0 for h in heads):
            continue
        att.input[0], att.input[1], att.input[2] = flat
        att.attribute.extend(
            [helper.make_attribute("q_num_heads", heads[0]), helper.make_attribute("kv_num_heads", heads[1])]
        )
        att.output[0] = out_r.output[0]
        dropped |= {id(n) for n in (*nodes, out_t, out_r)}
        rewritten += 1
    kept = [n for n in g.node if id(n) not in dropped]
    del g.node[:]
    g.node.extend(kept)
    return rewritten
