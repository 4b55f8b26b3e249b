#!/usr/bin/env python3
"""PyTorch's side of weft's GPU operation benchmarks: GEMM, attention and ViT-B/16 forward +
backward, one JSON line per case (bench/gpu/common.py), named as weft's cases in
bench/cuda/gemm.cu, attention.cu and vit.cu.

    python3 bench/gpu/ops_torch.py > torch-ops.jsonl            # the device check's run
    python3 bench/gpu/ops_torch.py --device cpu --tiny          # a shape check without a GPU

Cases:
  gemm/<bf16|fp32>/<M>x<N>x<K>         torch.matmul(a [M, K], b [K, N]) into a new tensor; fp32
                                       exact (TF32 off, PyTorch's default for matmul)
  sdpa/<dtype>/<fwd|fwd_bwd>[_causal]/<B>x<H>x<L>x<E>
                                       F.scaled_dot_product_attention (PyTorch's own choice of
                                       kernel); fwd_bwd adds torch.autograd.grad of q, k and v
  vit_b16/fwd_bwd/<bf16|fp32>/<R>x<N>  CLIP's ViT-B/16 (clip_torch.py) at R×R, batch N, in
                                       training mode with every parameter in that dtype: forward,
                                       cross-entropy of the 512 outputs against fixed labels,
                                       backward (gradients set to None before each step);
                                       two warm-up steps, 10 timed, as vit.cu
FLOP counts are weft's (gemm.cu, attention.cu, vit.cu); the ViT cases also give
"flop_counted", torch.utils.flop_counter's count of one step, as a cross-check.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from clip_torch import VisionTransformer, vit_train_flop, vit_train_label  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
TOKENS = 4 * 1601  # ViT-B/16 at 640x640, batch 4


def gemm_cases(tiny):
    if tiny:
        return [("bf16", (96, 80, 64)), ("fp32", (96, 80, 64))]
    bf16 = [(TOKENS, 3072, 768), (TOKENS, 768, 3072), (TOKENS, 2304, 768), (4096, 4096, 4096), (8192, 8192, 8192)]
    fp32 = [(TOKENS, 3072, 768), (4096, 4096, 4096), (8192, 8192, 8192)]
    return [("bf16", s) for s in bf16] + [("fp32", s) for s in fp32]


def run_gemm(dtype, shape, device):
    m, n, k = shape
    common.reset_peak(device)
    g = torch.Generator(device=device).manual_seed(7)
    a = torch.randn(m, k, device=device, dtype=DTYPES[dtype], generator=g)
    b = torch.randn(k, n, device=device, dtype=DTYPES[dtype], generator=g)
    out = [torch.zeros(m, n, device=device, dtype=DTYPES[dtype])]

    def body():
        out[0] = torch.matmul(a, b)

    times = common.time_body(body, device)
    common.emit(f"gemm/{dtype}/{m}x{n}x{k}", times, device, flop=2.0 * m * n * k, peak=common.peak_mib(device))


def attention(q, k, v, causal):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    # PyTorch < 2.0 (the CPU self-check only): the same arithmetic, unfused.
    s = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if causal:
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool, device=s.device).triu(1), float("-inf"))
    return s.softmax(-1) @ v


def attention_flop(b, h, length, e, causal, backward):
    pairs = length * (length + 1) / 2 if causal else float(length) * length
    forward = 4.0 * b * h * e * pairs
    return 3.5 * forward if backward else forward


def attention_cases(tiny):
    if tiny:
        return [("bf16", (2, 3, 33, 16), False, False, 2), ("fp32", (2, 3, 33, 16), False, True, 2),
                ("bf16", (2, 3, 13, 16), True, True, 2)]
    vit, text = (4, 12, 1601, 64), (128, 8, 77, 64)
    return [("bf16", vit, False, False, 10), ("bf16", vit, False, True, 10),
            ("fp32", vit, False, False, 10), ("fp32", vit, False, True, 10),
            ("bf16", text, True, False, 50), ("bf16", text, True, True, 50)]


def attention_name(dtype, shape, causal, backward):
    b, h, length, e = shape
    pass_ = ("fwd_bwd" if backward else "fwd") + ("_causal" if causal else "")
    return f"sdpa/{dtype}/{pass_}/{b}x{h}x{length}x{e}"


def run_attention(dtype, shape, causal, backward, inner, device):
    b, h, length, e = shape
    common.reset_peak(device)
    g = torch.Generator(device=device).manual_seed(11)
    q, k, v, grad_out = (torch.randn(b, h, length, e, device=device, dtype=DTYPES[dtype], generator=g)
                         for _ in range(4))
    kept = [None]
    if backward:
        q.requires_grad_()
        k.requires_grad_()
        v.requires_grad_()

    def body():
        if not backward:
            with torch.no_grad():
                kept[0] = attention(q, k, v, causal)
            return
        out = attention(q, k, v, causal)
        kept[0] = torch.autograd.grad(out, (q, k, v), grad_out)

    times = common.time_body(body, device, inner=inner)
    common.emit(attention_name(dtype, shape, causal, backward), times, device,
                flop=attention_flop(b, h, length, e, causal, backward), peak=common.peak_mib(device))


def vit_cases(tiny):
    if tiny:
        return [("bf16", 32, 2), ("fp32", 48, 2)]
    return [("bf16", 224, 32), ("bf16", 640, 4), ("fp32", 224, 32)]


def run_vit(dtype, resolution, batch, device, tiny):
    common.reset_peak(device)
    torch.manual_seed(3)
    width, layers, heads = (32, 2, 2) if tiny else (768, 12, 12)
    model = VisionTransformer(resolution, 16, width, layers, heads, 512).to(device=device, dtype=DTYPES[dtype])
    model.train()
    images = torch.randn(batch, 3, resolution, resolution, device=device, dtype=DTYPES[dtype])
    labels = torch.tensor([vit_train_label(n) for n in range(batch)], device=device)
    last_loss = [None]

    def step():
        for p in model.parameters():
            p.grad = None
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        last_loss[0] = loss.detach()

    times = common.time_body(step, device, warmup=2, iters=10)
    peak = common.peak_mib(device)
    flop = vit_train_flop(resolution, batch, width=width, layers=layers)
    counted = common.counted_flop(step)
    common.emit(f"vit_b16/fwd_bwd/{dtype}/{resolution}x{batch}", times, device, flop=flop, peak=peak,
                flop_counted=counted, loss=float(last_loss[0]),
                params=sum(p.numel() for p in model.parameters()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="small shapes (a quick check, e.g. on the CPU)")
    ap.add_argument("--only", default="", help="run the cases whose name contains this")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            common.log("ops_torch: no CUDA device")
            return 1
        torch.backends.cuda.matmul.allow_tf32 = False  # exact fp32 products, as weft's default
        torch.backends.cudnn.allow_tf32 = False        # the ViT's patch convolution too
        torch.backends.cudnn.benchmark = True
    common.log(f"ops_torch: torch {torch.__version__} on {common.device_name(device)}")

    def wanted(name):
        return args.only in name

    for dtype, shape in gemm_cases(args.tiny):
        name = "gemm/{}/{}x{}x{}".format(dtype, *shape)
        if wanted(name):
            common.run_case(name, device, lambda: run_gemm(dtype, shape, device))
    for dtype, shape, causal, backward, inner in attention_cases(args.tiny):
        name = attention_name(dtype, shape, causal, backward)
        if wanted(name):
            common.run_case(name, device, lambda: run_attention(dtype, shape, causal, backward, inner, device))
    for dtype, resolution, batch in vit_cases(args.tiny):
        name = f"vit_b16/fwd_bwd/{dtype}/{resolution}x{batch}"
        if wanted(name):
            common.run_case(name, device, lambda: run_vit(dtype, resolution, batch, device, args.tiny))
    return 0


if __name__ == "__main__":
    sys.exit(main())
