"""Reference values for tests/loss/clip_contrastive_test.cpp: CLIP's symmetric InfoNCE loss as
open_clip's ClipLoss computes it (world size 1), with its gradients. The numbers are tiny, so
the test holds them inline; this script prints them as C++ initialisers.

    /usr/bin/python3 tests/reference/clip_contrastive.py
"""
import math

import torch
import torch.nn.functional as F

torch.manual_seed(0)
N, E = 3, 4
img = torch.randn(N, E, dtype=torch.float64)
txt = torch.randn(N, E, dtype=torch.float64)
scale = torch.tensor(math.log(1 / 0.07), dtype=torch.float64)
# Rounded inputs, so that the C++ test holds exactly the same numbers.
img = torch.round(img * 1000) / 1000
txt = torch.round(txt * 1000) / 1000
for t in (img, txt, scale):
    t.requires_grad_()

# open_clip.loss.ClipLoss.forward (local_loss=False, world_size 1)
u = F.normalize(img, dim=-1)
v = F.normalize(txt, dim=-1)
logits_per_image = scale.exp() * u @ v.T
logits_per_text = logits_per_image.T
labels = torch.arange(N)
loss = (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2
loss.backward()


def cpp(t):
    t = t.detach()
    if t.dim() == 0:
        return repr(float(t))
    return "{" + ", ".join(cpp(r) for r in t) + "}"


print("scale =", cpp(scale))
print("img =", cpp(img))
print("txt =", cpp(txt))
print("loss =", cpp(loss))
print("grad img =", cpp(img.grad))
print("grad txt =", cpp(txt.grad))
print("grad scale =", cpp(scale.grad))
