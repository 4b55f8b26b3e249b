"""Reference values for weft's segmentation modules (include/weft/models/segmentation/): mmseg's
FPN neck and FPNHead (Semantic FPN) with mmcv's ConvModule, and DenseCLIP's ViT multi-scale
adapters fpn1..fpn4.

mmcv/mmseg are not installed here, so the modules are rebuilt below in plain PyTorch with the same
submodule names (hence the same state_dict keys) and the same forward as mmseg 0.x / mmcv 1.x /
DenseCLIP's segmentation/denseclip/models.py. Small shapes, double precision.

Keys of data/segmentation.safetensors, for each case <m>:
  <m>.state.<name>    the module's state_dict before the forward (what weft's load_state reads)
  <m>.in.<i>          the input levels;  <m>.out.<i>  the outputs (one per level, or <m>.out)
  <m>.r.<i> / <m>.r   the backward's weights: the loss is sum_i sum(out_i * r_i)
  <m>.grad_in.<i>     gradients of the inputs;  <m>.grad.<param>  gradients of the parameters
  <m>.after.<buffer>  (training cases) the BN running statistics after the forward
Metadata "<m>.keys": the state_dict keys in PyTorch's order, comma-separated.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from fixture import save, seeded


class ConvModule(nn.Module):
    """mmcv ConvModule: conv [+ bn] [+ ReLU]; bias='auto' (bias only without norm)."""

    def __init__(self, cin, cout, k, padding=0, norm=False, act=False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=padding, bias=not norm)
        self.with_norm = norm
        if norm:
            self.bn = nn.BatchNorm2d(cout)
        self.activate = nn.ReLU() if act else None
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x):
        x = self.conv(x)
        if self.with_norm:
            x = self.bn(x)
        if self.activate is not None:
            x = self.activate(x)
        return x


class FPN(nn.Module):
    """mmseg 0.x necks/fpn.py with add_extra_convs=False, no norm, no activation."""

    def __init__(self, in_channels, out_channels, num_outs):
        super().__init__()
        self.num_outs = num_outs
        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for c in in_channels:
            self.lateral_convs.append(ConvModule(c, out_channels, 1))
            self.fpn_convs.append(ConvModule(out_channels, out_channels, 3, padding=1))

    def forward(self, inputs):
        laterals = [conv(inputs[i]) for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(laterals) - 1, 0, -1):
            prev_shape = laterals[i - 1].shape[2:]
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=prev_shape, mode="nearest")
        outs = [self.fpn_convs[i](laterals[i]) for i in range(len(laterals))]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs


class Upsample(nn.Module):
    """mmseg.ops.Upsample with a scale factor: size computed first, then resized to that size."""

    def __init__(self, scale_factor, mode, align_corners):
        super().__init__()
        self.scale_factor, self.mode, self.align_corners = scale_factor, mode, align_corners

    def forward(self, x):
        size = [int(t * self.scale_factor) for t in x.shape[-2:]]
        return F.interpolate(x, size, None, self.mode, self.align_corners)


class FPNHead(nn.Module):
    """mmseg 0.x decode_heads/fpn_head.py on BaseDecodeHead (conv_seg made first, then scale_heads)."""

    def __init__(self, in_channels, feature_strides, channels, num_classes, dropout_ratio=0.1):
        super().__init__()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else None
        self.feature_strides = feature_strides
        self.scale_heads = nn.ModuleList()
        for i, s in enumerate(feature_strides):
            length = max(1, int(math.log2(s) - math.log2(feature_strides[0])))
            blocks = []
            for k in range(length):
                blocks.append(ConvModule(in_channels[i] if k == 0 else channels, channels, 3, padding=1,
                                         norm=True, act=True))
                if s != feature_strides[0]:
                    blocks.append(Upsample(2, "bilinear", False))
            self.scale_heads.append(nn.Sequential(*blocks))

    def forward(self, x):
        out = self.scale_heads[0](x[0])
        for i in range(1, len(self.feature_strides)):
            out = out + F.interpolate(self.scale_heads[i](x[i]), size=out.shape[2:], mode="bilinear",
                                      align_corners=False)
        if self.dropout is not None:
            out = self.dropout(out)
        return self.conv_seg(out)


class ViTAdapters(nn.Module):
    """DenseCLIP CLIPVisionTransformer's fpn1..fpn4 (patch size 16); SyncBatchNorm -> BatchNorm2d."""

    def __init__(self, c):
        super().__init__()
        self.fpn1 = nn.Sequential(nn.GroupNorm(1, c), nn.ConvTranspose2d(c, c, 2, 2), nn.BatchNorm2d(c), nn.GELU(),
                                  nn.ConvTranspose2d(c, c, 2, 2))
        self.fpn2 = nn.Sequential(nn.GroupNorm(1, c), nn.ConvTranspose2d(c, c, 2, 2))
        self.fpn3 = nn.GroupNorm(1, c)
        self.fpn4 = nn.Sequential(nn.GroupNorm(1, c), nn.MaxPool2d(2, 2))

    def forward(self, taps):
        return [op(t) for op, t in zip([self.fpn1, self.fpn2, self.fpn3, self.fpn4], taps)]


tensors = {}
metadata = {}


def randomize(module, running=True):
    """Random values for every tensor PyTorch's init leaves constant (biases, norm affines, BN stats)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("bias") or ".bn." in name or "GroupNorm" in name:
                p.normal_(0.0, 0.5)
        for m in module.modules():
            if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)):
                m.weight.normal_(1.0, 0.3)
                m.bias.normal_(0.0, 0.3)
            if running and isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(3)


def record(name, module, inputs, after=False):
    """Runs module(inputs) (a list of levels); stores state, inputs, outputs, gradients."""
    state = module.state_dict()
    metadata[f"{name}.keys"] = ",".join(state.keys())
    for k, v in state.items():
        tensors[f"{name}.state.{k}"] = v.clone()
    for i, x in enumerate(inputs):
        tensors[f"{name}.in.{i}"] = x
    out = module(inputs)
    outs = out if isinstance(out, list) else [out]
    g = torch.Generator().manual_seed(1)
    loss = 0
    for i, o in enumerate(outs):
        r = torch.randn(o.shape, generator=g)
        suffix = f".{i}" if isinstance(out, list) else ""
        tensors[f"{name}.out{suffix}"] = o
        tensors[f"{name}.r{suffix}"] = r
        loss = loss + (o * r).sum()
    params = list(module.named_parameters())
    gs = torch.autograd.grad(loss, inputs + [p for _, p in params])
    for i, gx in enumerate(gs[: len(inputs)]):
        tensors[f"{name}.grad_in.{i}"] = gx
    for (k, _), gp in zip(params, gs[len(inputs):]):
        tensors[f"{name}.grad.{k}"] = gp
    if after:
        for k, v in module.state_dict().items():
            if "running" in k or "num_batches" in k:
                tensors[f"{name}.after.{k}"] = v.clone().double()  # the counter too (int64 in torch)


def levels(batch, channels, sizes):
    return [torch.randn(batch, c, h, w).requires_grad_() for c, (h, w) in zip(channels, sizes)]


def main():
    seeded(0)
    # FPN: odd sizes so that the nearest top-down resize is not an exact doubling.
    fpn = FPN([6, 8, 10, 4], 6, 4)
    randomize(fpn)
    record("fpn", fpn, levels(2, [6, 8, 10, 4], [(7, 9), (4, 5), (2, 3), (1, 2)]))

    # FPN with one extra output (max_pool2d(kernel 1, stride 2) of the last).
    fpn5 = FPN([4, 6], 5, 3)
    randomize(fpn5)
    record("fpn_extra", fpn5, levels(2, [4, 6], [(6, 7), (3, 4)]))

    # FPNHead in evaluation (BN with random running statistics; no dropout).
    head_in = [6, 4, 5, 4]
    head = FPNHead(head_in, [4, 8, 16, 32], 4, 5)
    randomize(head)
    head.eval()
    record("head_eval", head, levels(2, head_in, [(8, 10), (4, 5), (2, 3), (1, 2)]))

    # FPNHead in training: BN batch statistics and running-statistic updates (dropout off, since
    # its random masks cannot be shared with weft; dropout2d is tested on its own in C++).
    head_t = FPNHead(head_in, [4, 8, 16, 32], 4, 5, dropout_ratio=0.0)
    randomize(head_t)
    head_t.train()
    record("head_train", head_t, levels(2, head_in, [(8, 10), (4, 5), (2, 3), (1, 2)]), after=True)

    # DenseCLIP's adapters, evaluation (BN running statistics) and training (batch statistics).
    for mode in ("eval", "train"):
        ad = ViTAdapters(4)
        randomize(ad)
        ad.train(mode == "train")
        record(f"adapters_{mode}", ad, levels(2, [4] * 4, [(2, 3)] * 4), after=(mode == "train"))

    save("segmentation", tensors, metadata)


if __name__ == "__main__":
    main()
