"""Reference values for weft's optimizers, gradient clipping and lr schedules (include/weft/optim/).

Optimizers: three parameters (ranks 2, 1 and 3) start from fixed values and receive a fixed
sequence of five gradients; at step 3 the bias gets no gradient (torch skips a parameter whose
.grad is None, and its Adam step count stays behind). Stored: the start values `p.<name>`, the
gradients `g<k>.<name>`, and for each configuration `<config>.<k>.<name>`, the parameters
after step k (k = 0..4).

Schedules: mmcv 1.x's LrUpdaterHook formulas (mmcv/runner/hooks/lr_updater.py), transcribed
below as plain Python, evaluated at chosen iterations with by_epoch=False.
"""
import math

import torch

from fixture import save, seeded

seeded(0)
NAMES = ["w", "b", "c"]
start = {"w": torch.randn(3, 4), "b": torch.randn(4), "c": torch.randn(2, 3, 2)}
STEPS = 5
gradients = [{n: torch.randn(t.shape) for n, t in start.items()} for _ in range(STEPS)]
SKIP = (3, "b")  # at step 3, "b" has no gradient

out = {f"p.{n}": t for n, t in start.items()}
for k, g in enumerate(gradients):
    for n, t in g.items():
        out[f"g{k}.{n}"] = t


def run(name, make):
    params = {n: t.clone().requires_grad_() for n, t in start.items()}
    opt = make(params)
    for k, g in enumerate(gradients):
        for n, p in params.items():
            p.grad = None if (k, n) == SKIP else g[n].clone()
        opt.step()
        for n, p in params.items():
            out[f"{name}.{k}.{n}"] = p.detach().clone()


def flat(params):
    return [params[n] for n in NAMES]


run("sgd", lambda p: torch.optim.SGD(flat(p), lr=0.1, weight_decay=0.01, foreach=False))
run("sgd_momentum", lambda p: torch.optim.SGD(flat(p), lr=0.1, momentum=0.9, dampening=0.1,
                                              weight_decay=0.01, foreach=False))
run("sgd_nesterov", lambda p: torch.optim.SGD(flat(p), lr=0.05, momentum=0.8, nesterov=True,
                                              weight_decay=0.001, foreach=False))
run("adamw", lambda p: torch.optim.AdamW(flat(p), lr=0.01, betas=(0.9, 0.99), eps=1e-8,
                                         weight_decay=0.05, foreach=False))
run("adamw_amsgrad", lambda p: torch.optim.AdamW(flat(p), lr=0.02, betas=(0.8, 0.95), eps=1e-6,
                                                 weight_decay=0.1, amsgrad=True, foreach=False))
# Two groups as mmcv builds them from custom_keys: "w" with lr_mult 0.1, "b" and "c" with
# decay_mult 0 (base lr 0.01, base weight decay 0.05).
run("adamw_groups", lambda p: torch.optim.AdamW(
    [{"params": [p["w"]], "lr": 0.01 * 0.1, "weight_decay": 0.05},
     {"params": [p["b"], p["c"]], "lr": 0.01, "weight_decay": 0.05 * 0.0}],
    lr=0.01, weight_decay=0.05, foreach=False))
run("sgd_groups", lambda p: torch.optim.SGD(
    [{"params": [p["w"]], "lr": 0.1 * 0.1, "weight_decay": 0.01},
     {"params": [p["b"], p["c"]], "lr": 0.1, "weight_decay": 0.0}],
    lr=0.1, momentum=0.9, weight_decay=0.01, foreach=False))

# ---- clip_grad_norm_ ---------------------------------------------------------------------------
for tag, max_norm, norm_type in [("l2", 1.0, 2.0), ("inf", 0.5, math.inf), ("l1", 2.0, 1.0),
                                 ("l3", 1.5, 3.0), ("noclip", 100.0, 2.0)]:
    params = {n: t.clone().requires_grad_() for n, t in start.items()}
    for n, p in params.items():
        p.grad = gradients[0][n].clone()
    total = torch.nn.utils.clip_grad_norm_(flat(params), max_norm, norm_type=norm_type)
    out[f"clip_{tag}.total"] = total.reshape(1)
    for n, p in params.items():
        out[f"clip_{tag}.{n}"] = p.grad.clone()


# ---- mmcv lr schedules (by_epoch=False: progress is runner.iter, counted from 0) -----------------
def warmup_factor(kind, it, warmup_iters, ratio):
    """mmcv LrUpdaterHook.get_warmup_lr: multiplies the regular lr while it < warmup_iters."""
    if kind is None or it >= warmup_iters:
        return 1.0
    if kind == "constant":
        return ratio
    if kind == "linear":
        k = (1 - it / warmup_iters) * (1 - ratio)
        return 1 - k
    return ratio ** (1 - it / warmup_iters)  # "exp"


def poly(it, base_lr, max_iters, power, min_lr):
    coeff = (1 - it / max_iters) ** power
    return (base_lr - min_lr) * coeff + min_lr


def cosine(it, base_lr, max_iters, min_lr=None, min_lr_ratio=None):
    target = base_lr * min_lr_ratio if min_lr_ratio is not None else min_lr
    return target + 0.5 * (base_lr - target) * (math.cos(math.pi * it / max_iters) + 1)


def step_lr(it, base_lr, steps, gamma, min_lr=None):
    if isinstance(steps, int):
        e = it // steps
    else:
        e = len(steps)
        for i, s in enumerate(steps):
            if it < s:
                e = i
                break
    lr = base_lr * gamma ** e
    return max(lr, min_lr) if min_lr is not None else lr


iters = torch.tensor([0, 1, 2, 7, 99, 100, 1499, 1500, 1501, 5000, 39999, 79999], dtype=torch.int64)
its = iters.tolist()
# DenseCLIP's ADE20K schedule: AdamW lr 1e-4, poly power 1, min_lr 1e-6, linear warmup 1500 iters
# at ratio 1e-6, 80k iterations; and a group with lr_mult 0.1 (the backbone).
out["sched.iters"] = iters
out["sched.poly_warmup"] = torch.tensor([poly(i, 1e-4, 80000, 1.0, 1e-6) *
                                         warmup_factor("linear", i, 1500, 1e-6) for i in its])
out["sched.poly_warmup_backbone"] = torch.tensor([poly(i, 1e-5, 80000, 1.0, 1e-6) *
                                                  warmup_factor("linear", i, 1500, 1e-6) for i in its])
out["sched.poly_power"] = torch.tensor([poly(i, 0.01, 80000, 0.9, 0.0) for i in its])
out["sched.poly_constant_warmup"] = torch.tensor([poly(i, 0.01, 80000, 0.9, 1e-4) *
                                                  warmup_factor("constant", i, 100, 0.1) for i in its])
out["sched.poly_exp_warmup"] = torch.tensor([poly(i, 0.01, 80000, 1.0, 0.0) *
                                             warmup_factor("exp", i, 1500, 1e-3) for i in its])
out["sched.cosine_min_lr"] = torch.tensor([cosine(i, 0.01, 80000, min_lr=1e-5) for i in its])
out["sched.cosine_ratio_warmup"] = torch.tensor([cosine(i, 0.01, 80000, min_lr_ratio=1e-3) *
                                                 warmup_factor("linear", i, 1500, 0.1) for i in its])
out["sched.step_list"] = torch.tensor([step_lr(i, 0.1, [1500, 40000], 0.1) for i in its])
out["sched.step_every"] = torch.tensor([step_lr(i, 0.1, 1000, 0.5, min_lr=1e-3) for i in its])

save("optim", out)
