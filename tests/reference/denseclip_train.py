"""Reference run of DenseCLIP training for weft's parity test (tests/denseclip/train_parity_test.cpp).

The whole DenseCLIP ViT segmentor of the released code (DC:segmentation/denseclip: CLIPVisionTransformer
with fpn1..fpn4, CLIPTextContextEncoder with learnable contexts, ContextDecoder, the gamma text update,
the score map concatenated into the FPN level at score_concat_index, mmseg's FPN neck and FPNHead, the
decode loss and the pixel-text matching loss) in PyTorch float64, with the parameter names of the
official checkpoints (= weft's examples/denseclip/model.hpp names), trained for 10 iterations as
train_denseclip.py does: AdamW with mmcv's custom_keys groups and the poly schedule with a linear
warmup, every group's lr set per iteration by mmcv's LrUpdaterHook rule (spec §5.2), min_lr floor
included (so the lr-0 text encoder still moves).

The configuration is tests/denseclip/parity.json, read here and by the C++ test (one source of truth).
Dropout and drop path are 0 in it, so that both runs are deterministic.

Keys of data/denseclip_train.safetensors:
  init.state.<name>    the initial state (float32 values; both sides train in float64 from them),
                       metadata "init.keys": the state_dict keys in order
  tokens [K, 5] i64    the class tokens (SOT 62, EOT 63: the row maximum, so argmax finds EOT)
  images [N, B, 3, H, W] u8   the batches; the model's input is (x - 128) / 64
  labels [N, B, H, W] u8      class indices 0..K-1, 255 ignored
  loss.total/decode/aux [N]   the losses of each iteration, before its update
  lr.<group> [N]       the lr of each iteration for the groups base, backbone, norm, text_encoder
  step0.text [1, K, C], step0.score_map [B, K, h, w], step0.logits [B, K, H/4, W/4]   iteration 0
  final.<name>         a few tensors after the N updates
and data/denseclip_mmcv.pth: the initial state (float32) laid out as a released DenseCLIP .pth,
torch.save of an mmcv checkpoint dict {"meta", "state_dict", "optimizer"}.

    /usr/bin/python3 tests/reference/denseclip_train.py

Reused from the sibling scripts: clip_model.py (ViT with the dense forward) and denseclip_prompt.py
(ContextDecoder, TextContextEncoder), segmentation.py (FPN, FPNHead, ViT adapters).
"""
import json
import math
import pathlib
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from clip_model import VisionTransformer
from denseclip_prompt import ContextDecoder, TextContextEncoder, segmentation_ce
from fixture import DATA, save, seeded
from segmentation import FPN, FPNHead, ViTAdapters

CONFIG = pathlib.Path(__file__).resolve().parent.parent / "denseclip" / "parity.json"
ITERS = 10                # iterations run (the schedule is config train.iters long)
SOT, EOT = 62, 63         # start / end tokens: EOT is the largest id of each row

# ------------------------------------------------------------------------------------------------
# DenseCLIP


class DenseViT(VisionTransformer):
    """DenseCLIP's CLIPVisionTransformer (patch 16): CLIP's ViT, dense forward, and the multi-scale
    adapters registered after CLIP's own tensors (backbone.fpn1.0.weight ...). SyncBN -> BatchNorm2d."""

    def __init__(self, b):
        super().__init__(b["input_resolution"], b["patch_size"], b["width"], b["layers"], b["heads"],
                         b["output_dim"])
        c = b["width"]
        self.out_indices = b["out_indices"]
        adapters = ViTAdapters(c)  # registered here, beside CLIP's tensors, as DenseCLIP names them
        self.fpn1, self.fpn2, self.fpn3, self.fpn4 = adapters.fpn1, adapters.fpn2, adapters.fpn3, adapters.fpn4

    def features(self, images):
        taps, glob, local = self.forward_dense(images, self.out_indices)  # class embedding added twice
        assert len(taps) == 4, "out_indices must name 4 distinct blocks (DenseCLIP taps block i if i in them)"
        return [op(t) for op, t in zip([self.fpn1, self.fpn2, self.fpn3, self.fpn4], taps)], glob, local


class DenseClip(nn.Module):
    def __init__(self, cfg, tokens):
        super().__init__()
        t, d, b = cfg["text_encoder"], cfg["context_decoder"], cfg["backbone"]
        C = b["output_dim"]
        self.contexts = nn.Parameter(torch.empty(1, t["n_ctx"], t["width"]))
        self.gamma = nn.Parameter(torch.full((C,), cfg["gamma_init"]))
        self.backbone = DenseViT(b)
        self.text_encoder = TextContextEncoder(t["context_length"], t["vocab_size"], t["width"], t["heads"],
                                               t["layers"], t["embed_dim"])
        self.context_decoder = ContextDecoder(d["width"], d["heads"], d["layers"], d["visual_dim"])
        self.neck = FPN(cfg["neck"]["in_channels"], cfg["neck"]["out_channels"], 4)
        h = cfg["decode_head"]
        self.decode_head = FPNHead([cfg["neck"]["out_channels"]] * 4, h["feature_strides"], h["channels"],
                                   h["num_classes"], dropout_ratio=h["dropout"])
        self.tokens = tokens
        self.score_concat_index = cfg["score_concat_index"]
        self.tau = cfg["tau"]
        self.loss_cfg = cfg["loss"]

    def text_embeddings(self):
        return self.text_encoder(self.tokens, self.contexts)  # [1, K, C]

    def forward(self, images):
        feats, glob, local = self.backbone.features(images)
        B, C, h, w = local.shape
        t0 = self.text_embeddings()
        t = t0.expand(B, -1, -1)                                                      # [B, K, C]
        visual_context = torch.cat([glob.reshape(B, C, 1), local.reshape(B, C, h * w)], dim=2).permute(0, 2, 1)
        t = t + self.gamma * self.context_decoder(t, visual_context)
        score = torch.einsum("bchw,bkc->bkhw", F.normalize(local, dim=1), F.normalize(t, dim=2))
        feats[self.score_concat_index] = torch.cat([feats[self.score_concat_index], score], dim=1)
        return self.decode_head(self.neck(feats)), score, t0

    def losses(self, images, labels):
        logits, score, t0 = self(images)
        decode = segmentation_ce(logits, labels, self.loss_cfg["decode_weight"])
        aux = segmentation_ce(score / self.tau, labels, self.loss_cfg["identity_weight"])
        return decode + aux, decode, aux, (t0, score, logits)


@torch.no_grad()
def initialise(model, cfg, g):
    """A seeded init at scales where every path carries a visible gradient (DenseCLIP's own init
    leaves biases and norm shifts at 0, gamma at 1e-4, CLIP's token embeddings at std 0.02)."""
    for name, p in model.named_parameters():
        shape = p.shape
        if name == "contexts":
            v = torch.randn(shape, generator=g).clamp(-2, 2)              # trunc_normal(std 1), as DenseCLIP
        elif name == "gamma":
            v = cfg["gamma_init"] * (1 + 0.5 * torch.randn(shape, generator=g))
        elif name.endswith("token_embedding.weight"):
            v = 0.5 * torch.randn(shape, generator=g)
        elif name.endswith(("positional_embedding", "class_embedding")):
            v = 0.2 * torch.randn(shape, generator=g)
        elif name in ("backbone.proj", "text_encoder.text_projection"):
            v = torch.randn(shape, generator=g) / math.sqrt(shape[0])     # x @ proj: fan in is the row count
        elif p.dim() == 1 and name.endswith("weight"):
            v = 1 + 0.1 * torch.randn(shape, generator=g)                 # LayerNorm / GroupNorm / BatchNorm scale
        elif p.dim() == 1:
            v = 0.1 * torch.randn(shape, generator=g)                     # biases and norm shifts
        else:
            v = torch.randn(shape, generator=g) / math.sqrt(p[0].numel())  # Linear / Conv: fan in
        p.copy_(v.float().double())                                        # float32 values, stored as such


def group_of(name, train):
    """mmcv DefaultOptimizerConstructor custom_keys: longest key first, first substring match wins."""
    keys = {"text_encoder": (train["text_encoder_lr_mult"], 1.0), "backbone": (train["backbone_lr_mult"], 1.0),
            "norm": (1.0, train["norm_decay_mult"])}
    for key in sorted(keys, key=len, reverse=True):
        if key in name:
            return key, keys[key]
    return "base", (1.0, 1.0)


def lr_at(t, base, train):
    """mmcv PolyLrUpdaterHook with linear warmup (by_epoch=False), for a group whose initial lr is base."""
    regular = (base - train["min_lr"]) * (1 - t / train["iters"]) ** train["poly_power"] + train["min_lr"]
    if t < train["warmup_iters"]:
        regular *= 1 - (1 - t / train["warmup_iters"]) * (1 - train["warmup_ratio"])
    return regular


def make_batches(g, n, b, k, size):
    """Blocky scenes: an 8x8 class map upsampled to size, each class a colour plus noise; some
    blocks and scattered pixels ignored (255)."""
    block = size // 8
    cls = torch.randint(0, k, (n, b, 8, 8), generator=g)
    colours = torch.randint(40, 216, (k, 3), generator=g).double()
    labels = cls.repeat_interleave(block, 2).repeat_interleave(block, 3)           # [n, b, size, size]
    images = colours[labels].permute(0, 1, 4, 2, 3)                               # [n, b, 3, size, size]
    images = (images + 24 * torch.randn(images.shape, generator=g)).round().clamp(0, 255).to(torch.uint8)
    ignored = torch.rand(n, b, 8, 8, generator=g) < 0.1
    ignored = ignored.repeat_interleave(block, 2).repeat_interleave(block, 3)
    ignored |= torch.rand(n, b, size, size, generator=g) < 0.02
    labels[ignored] = 255
    return images, labels.to(torch.uint8)


def make_tokens(g, k):
    tokens = torch.zeros(k, 5, dtype=torch.int64)
    for row in range(k):
        n = 1 + row % 3                                            # class names of 1..3 tokens
        tokens[row, 0] = SOT
        tokens[row, 1:n + 1] = torch.randint(1, SOT, (n,), generator=g)
        tokens[row, n + 1] = EOT                                   # pad 0 after it
    return tokens


def main():
    g = seeded(0)
    cfg = json.loads(CONFIG.read_text())
    train = cfg["train"]
    K = cfg["decode_head"]["num_classes"]
    size = cfg["backbone"]["input_resolution"]
    assert cfg["context_decoder"]["dropout"] == 0 and cfg["decode_head"]["dropout"] == 0 and \
        cfg["backbone"]["drop_path_rate"] == 0, "parity needs a deterministic model: no dropout, no drop path"

    tokens = make_tokens(g, K)
    model = DenseClip(cfg, tokens)
    initialise(model, cfg, g)
    model.train()  # BatchNorm on batch statistics, as in training
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    images_u8, labels_u8 = make_batches(g, ITERS, train["batch_size"], K, size)

    groups = []
    for name, p in model.named_parameters():
        key, (lr_mult, decay_mult) = group_of(name, train)
        groups.append({"params": [p], "lr": train["lr"] * lr_mult, "initial_lr": train["lr"] * lr_mult,
                       "weight_decay": train["weight_decay"] * decay_mult, "key": key})
    opt = torch.optim.AdamW(groups, lr=train["lr"], betas=tuple(train["betas"]), eps=train["eps"],
                            weight_decay=train["weight_decay"])
    print("groups:", {k: sum(gr["key"] == k for gr in groups) for k in ("base", "backbone", "norm", "text_encoder")})

    out = {"tokens": tokens, "images": images_u8, "labels": labels_u8}
    losses = {"total": [], "decode": [], "aux": []}
    lrs = {k: [] for k in ("base", "backbone", "norm", "text_encoder")}
    for t in range(ITERS):
        for gr in opt.param_groups:
            gr["lr"] = lr_at(t, gr["initial_lr"], train)
        for k in lrs:
            lrs[k].append(next(gr["lr"] for gr in opt.param_groups if gr["key"] == k))
        images = (images_u8[t].double() - 128) / 64
        labels = labels_u8[t].long()
        opt.zero_grad()
        total, decode, aux, (t0, score, logits) = model.losses(images, labels)
        total.backward()
        opt.step()
        for k, v in zip(("total", "decode", "aux"), (total, decode, aux)):
            losses[k].append(v.item())
        if t == 0:
            out.update({"step0.text": t0, "step0.score_map": score, "step0.logits": logits})
        print(f"iter {t}: loss {total.item():.6f} (decode {decode.item():.6f}, aux {aux.item():.6f})")

    for k, v in losses.items():
        out[f"loss.{k}"] = torch.tensor(v)
    for k, v in lrs.items():
        out[f"lr.{k}"] = torch.tensor(v)
    state = model.state_dict()
    for name in ("gamma", "contexts", "text_encoder.text_projection", "decode_head.conv_seg.weight",
                 "backbone.fpn1.2.running_var"):
        out[f"final.{name}"] = state[name].detach().clone()
    moved = (state["text_encoder.text_projection"] - init["text_encoder.text_projection"]).abs().max().item()
    print(f"text_projection moved by at most {moved:.3g} (min_lr leak)")
    assert 0 < moved < 1e-5
    assert losses["total"][-1] < losses["total"][0]

    for k, v in init.items():
        out[f"init.state.{k}"] = v.float()

    # The initial state once more, as a released DenseCLIP .pth is laid out: torch.save of an
    # mmcv checkpoint dict (meta with strings, tuples and lists; the optimizer's state_dict; the
    # model under "state_dict"), for the loader test.
    fresh = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1e-4)
    torch.save({"meta": {"mmseg_version": "0.19.0", "config": "parity.json", "iter": 0, "epoch": 1,
                         "CLASSES": tuple(f"class{k}" for k in range(K)), "PALETTE": [[k, 2 * k, 3 * k] for k in range(K)]},
                "state_dict": OrderedDict((k, v.float()) for k, v in init.items()),
                "optimizer": fresh.state_dict()},
               DATA / "denseclip_mmcv.pth")
    save("denseclip_train", out, {"init.keys": ",".join(init.keys()), "config": "tests/denseclip/parity.json"})


if __name__ == "__main__":
    main()
