"""Reference values for softmax, log_softmax, layer_norm, group_norm, batch_norm and normalize
(include/weft/ops/): outputs, gradients of sum(out * r), and batch norm's running statistics
after one training step. Keys are "<case>.<tensor>"; tests/norm/norm_reference_test.cpp reads them."""
import torch
import torch.nn.functional as F

from fixture import grads, save, seeded

seeded(0)
data = {}


def case(name, fn, inputs, seed, **extra):
    """Runs fn(*inputs) and stores the inputs (in0, in1, ...), y, r and grads (g0, g1, ...)."""
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    y = fn(*inputs)
    r, gs = grads(y, inputs, seed=seed)
    data[f"{name}.y"] = y
    data[f"{name}.r"] = r
    for i, (t, g) in enumerate(zip(inputs, gs)):
        data[f"{name}.in{i}"] = t
        data[f"{name}.g{i}"] = g
    for key, value in extra.items():
        data[f"{name}.{key}"] = value


# softmax / log_softmax: last axis, a middle axis, and logits large enough to overflow exp.
case("softmax_last", lambda x: torch.softmax(x, -1), [torch.randn(3, 7)], 1)
case("softmax_mid", lambda x: torch.softmax(x, 1), [torch.randn(2, 5, 3)], 2)
case("softmax_big", lambda x: torch.softmax(x, -1), [torch.randn(2, 5) * 400], 3)
case("log_softmax_last", lambda x: torch.log_softmax(x, -1), [torch.randn(4, 6)], 4)
case("log_softmax_first", lambda x: torch.log_softmax(x, 0), [torch.randn(5, 2, 3)], 5)

# layer_norm over the last axis, with and without the affine transform.
case("layer_norm_affine", lambda x, w, b: F.layer_norm(x, [8], w, b),
     [torch.randn(2, 3, 8), torch.randn(8), torch.randn(8)], 6)
case("layer_norm_plain", lambda x: F.layer_norm(x, [6], eps=1e-3), [torch.randn(4, 6) * 3 + 5], 7)

# group_norm on 4-D and 3-D inputs, with and without the affine transform.
case("group_norm_4d", lambda x, w, b: F.group_norm(x, 3, w, b),
     [torch.randn(2, 6, 3, 4), torch.randn(6), torch.randn(6)], 8)
case("group_norm_3d", lambda x: F.group_norm(x, 2), [torch.randn(2, 4, 5) + 2], 9)

# batch_norm: training (batch statistics, running statistics updated) on 4-D and 2-D inputs,
# and evaluation with given running statistics.
for name, shape, seed in [("batch_norm_train", (4, 3, 2, 3), 10), ("batch_norm_train_2d", (5, 4), 11)]:
    c = shape[1]
    rm, rv = torch.randn(c), torch.rand(c) + 0.5
    rm0, rv0 = rm.clone(), rv.clone()
    case(name, lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3),
         [torch.randn(*shape) * 2 + 1, torch.randn(c), torch.randn(c)], seed,
         rm_before=rm0, rv_before=rv0, rm_after=rm, rv_after=rv)
rm, rv = torch.randn(3), torch.rand(3) + 0.5
case("batch_norm_eval", lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False),
     [torch.randn(2, 3, 4), torch.randn(3), torch.randn(3)], 12, rm=rm, rv=rv)

# normalize: last axis, a middle axis, and a row whose norm is below eps (x / eps there).
case("normalize_last", lambda x: F.normalize(x, dim=-1), [torch.randn(3, 5)], 13)
case("normalize_mid", lambda x: F.normalize(x, dim=1), [torch.randn(2, 4, 3)], 14)
tiny = torch.randn(3, 4)
tiny[1] *= 1e-9
case("normalize_tiny", lambda x: F.normalize(x, dim=-1, eps=1e-6), [tiny], 15)

save("norm", data)
