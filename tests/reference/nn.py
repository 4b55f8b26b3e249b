"""Reference values for weft's nn layers (include/weft/nn/): PyTorch modules with their state
dicts (names in order, values), inputs, outputs and the gradients of sum(out * r) with respect
to the inputs and every parameter.

Keys of data/nn.safetensors, for each module <m>:
  <m>.state.<name>   the module's state_dict (what weft's load_state reads, prefix "<m>.state.")
  <m>.in.<name>      inputs;  <m>.out  the output;  <m>.r  the backward's weights
  <m>.grad_in.<name> gradients of the inputs;  <m>.grad.<param>  gradients of the parameters
Metadata "<m>.keys": the state_dict keys in PyTorch's order, comma-separated.
"""
import torch

from fixture import grads, save, seeded

seeded(0)
tensors = {}
metadata = {}


def record(name, module, inputs, out=None, extra_out=None):
    """Runs module(*inputs) (unless out is given), stores state, inputs, output and gradients."""
    state = module.state_dict()
    metadata[f"{name}.keys"] = ",".join(state.keys())
    for k, v in state.items():
        tensors[f"{name}.state.{k}"] = v.clone()
    for k, v in inputs.items():
        tensors[f"{name}.in.{k}"] = v
    if out is None:
        out = module(*inputs.values())
    tensors[f"{name}.out"] = out
    params = list(module.named_parameters())
    diff_inputs = [v for v in inputs.values() if v.dtype.is_floating_point and v.requires_grad]
    r, gs = grads(out, diff_inputs + [p for _, p in params])
    tensors[f"{name}.r"] = r
    keys = [k for k, v in inputs.items() if v.dtype.is_floating_point and v.requires_grad]
    for k, g in zip(keys, gs[: len(keys)]):
        tensors[f"{name}.grad_in.{k}"] = g
    for (k, _), g in zip(params, gs[len(keys):]):
        tensors[f"{name}.grad.{k}"] = g
    return out


def randn(*shape):
    return torch.randn(*shape).requires_grad_()


# Linear and convolutions.
record("linear", torch.nn.Linear(4, 3), {"x": randn(2, 5, 4)})
record("conv", torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), {"x": randn(2, 3, 7, 7)})
record("convt", torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
       {"x": randn(2, 4, 3, 3)})

# MultiheadAttention, cross-attention with both masks and the averaged weights.
mha = torch.nn.MultiheadAttention(8, 2)
with torch.no_grad():
    mha.in_proj_bias.normal_()  # PyTorch starts the biases at zero: make them count
    mha.out_proj.bias.normal_()
q, k, v = randn(5, 2, 8), randn(6, 2, 8), randn(6, 2, 8)
pad = torch.tensor([[False] * 6, [False, False, False, False, True, True]])
bias = torch.randn(5, 6)
out, weights = mha(q, k, v, key_padding_mask=pad, attn_mask=bias, need_weights=True)
tensors["mha.weights"] = weights
record("mha", mha, {"q": q, "k": k, "v": v, "pad": pad, "bias": bias}, out=out)

# Keys and values of other widths: separate q/k/v projection weights.
mha_kv = torch.nn.MultiheadAttention(8, 4, kdim=6, vdim=5)
with torch.no_grad():
    mha_kv.in_proj_bias.normal_()
q2, k2, v2 = randn(3, 2, 8), randn(4, 2, 6), randn(4, 2, 5)
out2, _ = mha_kv(q2, k2, v2, need_weights=False)
record("mha_kv", mha_kv, {"q": q2, "k": k2, "v": v2}, out=out2)

# Pre-norm transformer layers with GELU, no dropout.
enc = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, activation="gelu",
                                       norm_first=True)
with torch.no_grad():
    for n, p in enc.named_parameters():
        if n.startswith("norm") or n.endswith("bias"):
            p.normal_(mean=1.0 if n.endswith("weight") else 0.0, std=0.3)
src = randn(5, 2, 8)
causal = torch.triu(torch.full((5, 5), float("-inf")), diagonal=1)
src_pad = torch.tensor([[False] * 5, [False, False, False, False, True]])
enc_out = enc(src, src_mask=causal, src_key_padding_mask=src_pad)
record("encoder", enc, {"src": src, "mask": causal, "pad": src_pad}, out=enc_out)

dec = torch.nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0, activation="gelu",
                                       norm_first=True)
with torch.no_grad():
    for n, p in dec.named_parameters():
        if n.startswith("norm") or n.endswith("bias"):
            p.normal_(mean=1.0 if n.endswith("weight") else 0.0, std=0.3)
tgt, memory = randn(4, 2, 8), randn(6, 2, 8)
record("decoder", dec, {"tgt": tgt, "memory": memory},
       out=dec(tgt, memory, tgt_mask=torch.triu(torch.full((4, 4), float("-inf")), diagonal=1)))

# BatchNorm2d: a training step from non-trivial running statistics, then evaluation.
bn = torch.nn.BatchNorm2d(3)
with torch.no_grad():
    bn.weight.normal_(1.0, 0.3)
    bn.bias.normal_()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    bn.num_batches_tracked.fill_(3)
x = randn(4, 3, 3, 3)
record("bn", bn, {"x": x})  # records the state before the step (num_batches_tracked int64)
tensors["bn.after.running_mean"] = bn.running_mean.clone()
tensors["bn.after.running_var"] = bn.running_var.clone()
tensors["bn.after.num_batches_tracked"] = bn.num_batches_tracked.clone()
bn.eval()
tensors["bn.eval_out"] = bn(x).detach()

save("nn", tensors, metadata)
