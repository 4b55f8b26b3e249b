"""Reference values for scaled_dot_product_attention (ops/attention.hpp): outputs and gradients.

PyTorch computes each case explicitly, softmax(q·kᵀ·scale + mask)·v in float64, so the fixture
does not depend on which fused kernel a torch version picks. One convention differs on purpose:
a query whose every key is masked gets weights 0 in weft (PyTorch's softmax gives NaN). The
reference builds that in (the scores of such a row are replaced before the softmax and its
weights zeroed after), so its gradients are those of weft's definition.

Per case <c>: <c>.q, <c>.k, <c>.v, the masks used (<c>.mask [L, S], <c>.mask3 [B*H | B, L, S],
<c>.pad [B, S] bool), <c>.out, <c>.r (the weights of sum(out * r)) and <c>.gq, <c>.gk, <c>.gv.
"""
import math

import torch

from fixture import grads, save, seeded


def attention(q, k, v, scale=None, mask=None, mask3=None, causal=False, pad=None):
    B, H, L, E = q.shape
    S = k.shape[2]
    scale = 1 / math.sqrt(E) if scale is None else scale
    s = torch.matmul(q, k.transpose(-2, -1)) * scale  # [B, H, L, S]
    if mask is not None:
        s = s + mask
    if mask3 is not None:
        s = s + (mask3.view(B, H, L, S) if mask3.shape[0] == B * H else mask3.view(B, 1, L, S))
    if causal:
        s = s.masked_fill(torch.ones(L, S, dtype=torch.bool).triu(1), float("-inf"))
    if pad is not None:
        s = s.masked_fill(pad.view(B, 1, 1, S), float("-inf"))
    dead = torch.isneginf(s).all(-1, keepdim=True)  # every key masked
    w = torch.softmax(s.masked_fill(dead, 0.0), -1).masked_fill(dead, 0.0)
    return torch.matmul(w, v)


def case(name, B, H, L, S, E, Ev, seed, **kw):
    g = seeded(seed)
    q = torch.randn(B, H, L, E, generator=g, requires_grad=True)
    k = torch.randn(B, H, S, E, generator=g, requires_grad=True)
    v = torch.randn(B, H, S, Ev, generator=g, requires_grad=True)
    out = attention(q, k, v, **kw)
    r, (gq, gk, gv) = grads(out, [q, k, v], seed=seed + 100)
    d = {"q": q, "k": k, "v": v, "out": out, "r": r, "gq": gq, "gk": gk, "gv": gv}
    for key, tensor_key in (("mask", "mask"), ("mask3", "mask3"), ("pad", "pad")):
        if kw.get(key) is not None:
            d[tensor_key] = kw[key]
    assert not any(torch.isnan(t).any() for t in d.values() if t.dtype != torch.bool), name
    return {f"{name}.{key}": t for key, t in d.items()}


def additive(shape, seed, holes=0.25):
    """Random finite biases with about `holes` of the entries -inf (no row entirely)."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(*shape, generator=g)
    off = torch.rand(*shape, generator=g) < holes
    off[..., 0] = False
    return m.masked_fill(off, float("-inf"))


tensors = {}
tensors.update(case("plain", 2, 2, 5, 7, 4, 4, seed=1))
tensors.update(case("scale", 1, 3, 6, 6, 4, 4, seed=2, scale=0.37))
tensors.update(case("mask", 2, 2, 5, 9, 3, 4, seed=3, mask=additive((5, 9), 30)))
tensors.update(case("mask3", 2, 3, 4, 6, 4, 3, seed=4, mask3=additive((6, 4, 6), 40)))
tensors.update(case("mask3_per_batch", 2, 3, 4, 6, 4, 3, seed=5, mask3=additive((2, 4, 6), 50)))
tensors.update(case("causal", 2, 2, 7, 7, 4, 4, seed=6, causal=True))
tensors.update(case("causal_rect", 1, 2, 5, 9, 4, 3, seed=7, causal=True))
pad = torch.tensor([[False, True, False, False, True, False, False, True],
                    [True, False, False, False, False, False, True, True]])
tensors.update(case("padding", 2, 2, 5, 8, 4, 4, seed=8, pad=pad))
tensors.update(case("shapes", 2, 1, 4, 11, 3, 6, seed=9))
# Everything at once, with batch 1's keys all padding (rows of output 0, gradients 0) and a
# query of batch 0 whose mask row is all -inf.
mask = additive((6, 10), 100)
mask[2, :] = float("-inf")
pad = torch.zeros(2, 10, dtype=torch.bool)
pad[0, 7:] = True
pad[1, :] = True
tensors.update(case("combined", 2, 2, 6, 10, 4, 5, seed=10, mask=mask,
                    mask3=additive((4, 6, 10), 110, holes=0.0), causal=True, pad=pad))

save("attention", tensors)
