"""Reference values for embedding, gather/index_select/scatter_add, cat/stack/split/chunk and
cross-entropy (ops/embedding.hpp, gather.hpp, join.hpp, cross_entropy.hpp): outputs and the
gradients of sum(out * r) for fixed random r."""
import torch
import torch.nn.functional as F

from fixture import grads, save, seeded

seeded(0)
out = {}

# embedding with repeated indices: rows 2 and 0 are read several times.
w = torch.randn(5, 3, requires_grad=True)
ids = torch.tensor([[0, 2, 2], [4, 0, 2]])
e = F.embedding(ids, w)
r, (gw,) = grads(e, [w], seed=1)
out.update(emb_w=w, emb_ids=ids, emb_out=e, emb_r=r, emb_gw=gw)

# gather along a middle axis with an index smaller than x on the last axis.
x = torch.randn(2, 3, 4, requires_grad=True)
idx = torch.tensor([[[0, 2, 2], [1, 1, 0]], [[2, 2, 2], [0, 1, 2]]])  # [2, 2, 3]
y = torch.gather(x, 1, idx)
r, (gx,) = grads(y, [x], seed=2)
out.update(gat_x=x, gat_idx=idx, gat_out=y, gat_r=r, gat_gx=gx)

# index_select with a repeated index along axis 1.
x = torch.randn(3, 4, 2, requires_grad=True)
sel = torch.tensor([3, 0, 3])
y = torch.index_select(x, 1, sel)
r, (gx,) = grads(y, [x], seed=3)
out.update(isel_x=x, isel_idx=sel, isel_out=y, isel_r=r, isel_gx=gx)

# scatter_add with collisions, differentiated with respect to x and src.
x = torch.randn(2, 4, 3, requires_grad=True)
sidx = torch.tensor([[[0, 3, 1], [0, 0, 1], [2, 3, 3]], [[1, 1, 1], [3, 2, 0], [1, 0, 1]]])  # [2, 3, 3]
src = torch.randn(2, 3, 3, requires_grad=True)
y = torch.scatter_add(x, 1, sidx, src)
r, (gx, gs) = grads(y, [x, src], seed=4)
out.update(sca_x=x, sca_idx=sidx, sca_src=src, sca_out=y, sca_r=r, sca_gx=gx, sca_gsrc=gs)

# cat along axis 0 and along the middle axis of rank-3 parts.
a = torch.randn(1, 3, requires_grad=True)
b = torch.randn(2, 3, requires_grad=True)
y = torch.cat([a, b, a], 0)
r, (ga, gb) = grads(y, [a, b], seed=5)
out.update(cat0_a=a, cat0_b=b, cat0_out=y, cat0_r=r, cat0_ga=ga, cat0_gb=gb)
a = torch.randn(2, 1, 3, requires_grad=True)
b = torch.randn(2, 2, 3, requires_grad=True)
y = torch.cat([a, b], 1)
r, (ga, gb) = grads(y, [a, b], seed=6)
out.update(cat1_a=a, cat1_b=b, cat1_out=y, cat1_r=r, cat1_ga=ga, cat1_gb=gb)

# stack along a new middle axis.
a = torch.randn(2, 3, requires_grad=True)
b = torch.randn(2, 3, requires_grad=True)
y = torch.stack([a, b, a], 1)  # [2, 3, 3]
r, (ga, gb) = grads(y, [a, b], seed=7)
out.update(stk_a=a, stk_b=b, stk_out=y, stk_r=r, stk_ga=ga, stk_gb=gb)

# split and chunk through a loss: sum over pieces of sum(piece_i ** (i + 1)).
x = torch.randn(7, 2, requires_grad=True)
loss = sum((p ** (i + 1)).sum() for i, p in enumerate(torch.chunk(x, 3, 0)))  # pieces 3, 3, 1
(gx,) = torch.autograd.grad(loss, [x])
out.update(chk_x=x, chk_loss=loss, chk_gx=gx)
loss = sum((p ** (i + 1)).sum() for i, p in enumerate(torch.split(x, [2, 4, 1], 0)))
(gx,) = torch.autograd.grad(loss, [x])
out.update(spl_loss=loss, spl_gx=gx)

# cross-entropy on [N, C] with PyTorch's defaults.
logits = torch.randn(4, 5, requires_grad=True)
target = torch.tensor([1, 0, 4, 1])
y = F.cross_entropy(logits, target)
r, (gl,) = grads(y, [logits], seed=8)
out.update(ce2_x=logits, ce2_t=target, ce2_out=y, ce2_r=r, ce2_gx=gl)

# cross-entropy on [N, C, H, W] with ignore_index 255 and class weights, for every reduction.
logits = torch.randn(2, 4, 3, 3, requires_grad=True)
target = torch.randint(0, 4, (2, 3, 3))
target[0, 0, 1] = 255
target[1, 2, :] = 255
cw = torch.rand(4) + 0.5
out.update(ce4_x=logits, ce4_t=target, ce4_w=cw)
for name, fn in [
    ("mean", lambda x, ls=0.0: F.cross_entropy(x, target, weight=cw, ignore_index=255, label_smoothing=ls)),
    ("sum", lambda x, ls=0.0: F.cross_entropy(x, target, weight=cw, ignore_index=255, reduction="sum",
                                              label_smoothing=ls)),
    # mmseg 0.19's CrossEntropyLoss: F.cross_entropy(reduction='none') and then weight_reduce_loss
    # without avg_factor, i.e. loss.mean() over every position, ignored ones counting as 0.
    ("meanall", lambda x, ls=0.0: F.cross_entropy(x, target, weight=cw, ignore_index=255, reduction="none",
                                                  label_smoothing=ls).mean()),
    ("none", lambda x, ls=0.0: F.cross_entropy(x, target, weight=cw, ignore_index=255, reduction="none",
                                               label_smoothing=ls)),
]:
    for ls in (0.0, 0.2):
        key = f"ce4_{name}" + ("_ls" if ls else "")
        y = fn(logits, ls)
        r, (gl,) = grads(y, [logits], seed=9)
        out.update({f"{key}_out": y, f"{key}_r": r, f"{key}_gx": gl})

save("indexing", out)
