"""Reference values for linear and matmul (ops/matmul.hpp): outputs and gradients."""
import torch

from fixture import grads, save, seeded

seeded(0)
x = torch.randn(2, 3, 4, requires_grad=True)
w = torch.randn(5, 4, requires_grad=True)
b = torch.randn(5, requires_grad=True)
y = torch.nn.functional.linear(x, w, b)
r, (gx, gw, gb) = grads(y, [x, w, b])

a = torch.randn(2, 3, 4, requires_grad=True)
m = torch.randn(4, 6, requires_grad=True)
z = torch.matmul(a, m)
rz, (ga, gm) = grads(z, [a, m], seed=2)

save("linear", {"x": x, "w": w, "b": b, "y": y, "r": r, "gx": gx, "gw": gw, "gb": gb,
                "a": a, "m": m, "z": z, "rz": rz, "ga": ga, "gm": gm})
