#!/usr/bin/env python3
"""PyTorch's side of weft's DenseCLIP training-step benchmark (bench/cuda/denseclip.cu): DenseCLIP
with the ViT-B/16 backbone as weft builds it (examples/denseclip/model.hpp, step.hpp; spec §2,
§5.2), random weights, one training iteration timed.

    python3 bench/gpu/denseclip_torch.py > torch-denseclip.jsonl     # 640x640, batch 4, bf16
    python3 bench/gpu/denseclip_torch.py --device cpu --tiny          # configs/tiny.json, a shape check

The sizes come from the JSON configuration weft reads (examples/denseclip/configs/vit-b16.json,
or tiny.json with --tiny), with the batch set by --batch (4) and the crop to the backbone's
input_resolution (640):

  backbone      CLIP ViT-B/16 dense: conv1, [class token (class_embedding added twice, DenseCLIP's
                quirk); 1600 patches] + positions, ln_pre, 12 blocks with DropPath 0 -> 0.1 drawn
                per token position, taps after blocks 3, 5, 7, 11; every token through ln_post and
                proj: global [B, 512] and local [B, 512, 40, 40]; adapters fpn1..fpn4
                (GroupNorm(1), ConvTranspose 2x2, BatchNorm, GELU; strides 4, 8, 16, 32)
  text encoder  150 classes of 5 tokens with 8 learnable contexts spliced after the start token
                (13 tokens), 12 causal blocks of width 512, ln_final, the end token @ text_projection
  context dec.  memory_proj / text_proj to 256, 3 pre-norm layers (self-attention, cross-attention
                to [global; local], MLP with erf GELU; q/k/v without bias, dropout 0.1), out_proj;
                text = t + gamma * decoder(t, visual)
  score map     cosine of local and text [B, 150, 40, 40], concatenated to level 2 (768 + 150 ch)
  neck, head    mmseg's FPN to 256 channels, FPNHead (ConvModule 3x3 + BN + ReLU, bilinear x2),
                Dropout2d 0.1, conv_seg -> [B, 150, 160, 160]
  losses        CE(resize(logits, 640x640)), ignore 255, mean over every pixel, + 0.4 * the same of
                resize(score_map / 0.07)
  optimizer     AdamW (lr 1e-4, weight decay 1e-4) with mmcv's groups: text_encoder lr x 0,
                backbone lr x 0.1, "norm" weight decay x 0; the poly learning rate set every step

Mixed precision as PyTorch users write it: fp32 parameters (the master weights), the forward and
the losses under torch.autocast(bfloat16), backward, AdamW (PyTorch's default foreach kernels) on
the fp32 parameters; no gradient scaler (bf16 needs none). Training mode throughout (dropout,
DropPath and batch statistics on); cudnn.benchmark as DenseCLIP's configuration sets it.

Timed: one iteration = set the learning rates, zero the gradients (to None), forward, losses,
backward, step. Three warm-up iterations, then --iters (10) timed with CUDA events; the JSON line
(common.py) gives the median, the peak of torch.cuda.max_memory_allocated from before the model
was built, and the step's FLOPs as torch.utils.flop_counter counts them ("flop": matrix products,
convolutions and attention, forward and backward), which the device check also uses for weft's
side of the case.
"""
import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from clip_torch import Transformer, VisionTransformer, causal_mask  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def attention(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v)
    s = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5  # PyTorch < 2.0 (the CPU self-check only)
    return s.softmax(-1) @ v


# ---- backbone ------------------------------------------------------------------------------------

class DenseViT(VisionTransformer):
    """DenseCLIP's CLIPVisionTransformer: the dense forward and the adapters fpn1..fpn4."""

    def __init__(self, b):
        super().__init__(b["input_resolution"], b["patch_size"], b["width"], b["layers"], b["heads"],
                         b["output_dim"], b.get("drop_path_rate", 0.0), drop_path_axis=1)
        self.out_indices = list(b["out_indices"])
        c = b["width"]
        self.fpn1 = nn.Sequential(nn.GroupNorm(1, c), nn.ConvTranspose2d(c, c, 2, stride=2), nn.BatchNorm2d(c),
                                  nn.GELU(), nn.ConvTranspose2d(c, c, 2, stride=2))
        self.fpn2 = nn.Sequential(nn.GroupNorm(1, c), nn.ConvTranspose2d(c, c, 2, stride=2))
        self.fpn3 = nn.GroupNorm(1, c)
        self.fpn4 = nn.Sequential(nn.GroupNorm(1, c), nn.MaxPool2d(2, stride=2))

    def forward(self, images):
        x, h, w = self.embed(images, class_twice=True)  # [B, 1 + hw, C]
        n = x.shape[0]

        def to_map(t):  # [B, 1 + hw, C'] -> [B, C', h, w]
            return t[:, 1:].permute(0, 2, 1).reshape(n, t.shape[2], h, w)

        taps = []
        for i, block in enumerate(self.transformer.resblocks):
            x = block(x)
            if i in self.out_indices:
                taps.append(to_map(x))
        e = self.ln_post(x) @ self.proj  # [B, 1 + hw, E]
        features = [self.fpn1(taps[0]), self.fpn2(taps[1]), self.fpn3(taps[2]), self.fpn4(taps[3])]
        return features, e[:, 0], to_map(e)


# ---- text encoder --------------------------------------------------------------------------------

class TextContextEncoder(nn.Module):
    def __init__(self, t):
        super().__init__()
        width = t["width"]
        self.transformer = Transformer(width, t["layers"], t["heads"])
        self.token_embedding = nn.Embedding(t["vocab_size"], width)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(t["context_length"], width))
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(width ** -0.5 * torch.randn(width, t["embed_dim"]))

    def forward(self, text, contexts):  # [K, N1] ids, [1, N2, W] -> [1, K, E]
        k, n1 = text.shape
        n2, width = contexts.shape[1], contexts.shape[2]
        x_text = self.token_embedding(text)  # [K, N1, W]
        x = torch.cat([x_text[:, :1], contexts.expand(k, n2, width).to(x_text.dtype), x_text[:, 1:]], dim=1)
        length = n1 + n2
        x = x + self.positional_embedding[:length]
        x = self.ln_final(self.transformer(x, causal_mask(length, x.device)))  # [K, L, W]
        eot = text.argmax(dim=-1) + n2  # the first largest id, after the contexts
        return (x[torch.arange(k, device=x.device), eot] @ self.text_projection).unsqueeze(0)


# ---- context decoder -----------------------------------------------------------------------------

class ContextAttention(nn.Module):
    def __init__(self, d, heads, dropout):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.proj = nn.Linear(d, d)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, q, k, v):  # [B, N, d], [B, M, d], [B, M, d]
        b, n, d = q.shape
        m, e = k.shape[1], d // self.heads
        qh = self.q_proj(q).reshape(b, n, self.heads, e).permute(0, 2, 1, 3)  # [B, H, N, e]
        kh = self.k_proj(k).reshape(b, m, self.heads, e).permute(0, 2, 1, 3)
        vh = self.v_proj(v).reshape(b, m, self.heads, e).permute(0, 2, 1, 3)
        o = attention(qh, kh, vh).permute(0, 2, 1, 3).reshape(b, n, d)
        return self.proj_drop(self.proj(o))


class ContextDecoderLayer(nn.Module):
    def __init__(self, d, heads, dropout):
        super().__init__()
        self.self_attn = ContextAttention(d, heads, dropout)
        self.cross_attn = ContextAttention(d, heads, dropout)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.norm3 = nn.LayerNorm(d)
        self.dropout = nn.Dropout(dropout)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * d, d))

    def forward(self, x, memory):
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h)
        x = x + self.cross_attn(self.norm2(x), memory, memory)
        return x + self.dropout(self.mlp(self.norm3(x)))


class ContextDecoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        visual, d = c["visual_dim"], c["width"]
        self.memory_proj = nn.Sequential(nn.LayerNorm(visual), nn.Linear(visual, d), nn.LayerNorm(d))
        self.text_proj = nn.Sequential(nn.LayerNorm(visual), nn.Linear(visual, d))
        self.decoder = nn.ModuleList([ContextDecoderLayer(d, c["heads"], c["dropout"]) for _ in range(c["layers"])])
        self.out_proj = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, visual))
        for m in self.modules():  # DenseCLIP's _init_weights
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, text, visual):  # [B, K, C], [B, 1 + hw, C] -> [B, K, C]
        memory = self.memory_proj(visual)
        x = self.text_proj(text)
        for layer in self.decoder:
            x = layer(x, memory)
        return self.out_proj(x)


# ---- neck and decode head (mmseg) ----------------------------------------------------------------

class ConvModule(nn.Module):
    """mmcv's conv [+ BN] [+ ReLU]; a bias exactly when there is no norm."""

    def __init__(self, cin, cout, kernel, padding=0, norm=False, relu=False):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=padding, bias=not norm)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)
        self.bn = nn.BatchNorm2d(cout) if norm else None
        self.relu = relu

    def forward(self, x):
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class Upsample(nn.Module):
    def forward(self, x):  # bilinear to floor(2H) x floor(2W), as mmseg's Upsample(scale_factor=2)
        return F.interpolate(x, size=(2 * x.shape[2], 2 * x.shape[3]), mode="bilinear", align_corners=False)


class FPN(nn.Module):
    def __init__(self, in_channels, out):
        super().__init__()
        self.lateral_convs = nn.ModuleList([ConvModule(c, out, 1) for c in in_channels])
        self.fpn_convs = nn.ModuleList([ConvModule(out, out, 3, padding=1) for _ in in_channels])

    def forward(self, inputs):
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[2:],
                                                              mode="nearest")
        return [conv(x) for conv, x in zip(self.fpn_convs, laterals)]


class FPNHead(nn.Module):
    def __init__(self, h, in_channels):
        super().__init__()
        strides, channels = h["feature_strides"], h["channels"]
        self.conv_seg = nn.Conv2d(channels, h["num_classes"], 1)
        self.scale_heads = nn.ModuleList()
        for i, s in enumerate(strides):
            length = max(1, int(math.log2(s) - math.log2(strides[0])))
            stages = []
            for k in range(length):
                stages.append(ConvModule(in_channels if k == 0 else channels, channels, 3, padding=1, norm=True,
                                         relu=True))
                if s != strides[0]:
                    stages.append(Upsample())
            self.scale_heads.append(nn.Sequential(*stages))
        self.dropout = nn.Dropout2d(h["dropout"])

    def forward(self, x):
        out = self.scale_heads[0](x[0])
        for i in range(1, len(x)):
            out = out + F.interpolate(self.scale_heads[i](x[i]), size=out.shape[2:], mode="bilinear",
                                      align_corners=False)
        return self.conv_seg(self.dropout(out))


# ---- the model -----------------------------------------------------------------------------------

class DenseClip(nn.Module):
    def __init__(self, cfg, texts):
        super().__init__()
        t = cfg["text_encoder"]
        self.cfg = cfg
        self.register_buffer("texts", texts, persistent=False)
        contexts = torch.empty(1, t["n_ctx"], t["width"])
        nn.init.trunc_normal_(contexts, std=1.0, a=-2.0, b=2.0)
        self.contexts = nn.Parameter(contexts)
        self.gamma = nn.Parameter(torch.full((cfg["backbone"]["output_dim"],), cfg["gamma_init"]))
        self.backbone = DenseViT(cfg["backbone"])
        self.text_encoder = TextContextEncoder(t)
        self.context_decoder = ContextDecoder(cfg["context_decoder"])
        self.neck = FPN(cfg["neck"]["in_channels"], cfg["neck"]["out_channels"])
        self.decode_head = FPNHead(cfg["decode_head"], cfg["neck"]["out_channels"])

    def forward(self, images):
        features, global_, local = self.backbone(images)
        b, c, h, w = local.shape
        text = self.text_encoder(self.texts, self.contexts)  # [1, K, C]
        text = text.expand(b, -1, -1)
        visual = torch.cat([global_.reshape(b, c, 1), local.reshape(b, c, h * w)], dim=2).permute(0, 2, 1)
        text = text + self.gamma * self.context_decoder(text, visual)  # [B, K, C]
        v = F.normalize(local, dim=1).reshape(b, c, h * w)
        score = torch.bmm(F.normalize(text, dim=-1), v).reshape(b, -1, h, w)  # [B, K, h, w]
        i = self.cfg["score_concat_index"]
        features[i] = torch.cat([features[i], score], dim=1)
        return self.decode_head(self.neck(features)), score

    def losses(self, images, labels):
        logits, score = self(images)
        loss = self.cfg["loss"]
        size = labels.shape[1:]

        def ce(x):  # mmseg 0.19: ignored pixels count 0 and still count in the mean
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            return F.cross_entropy(x, labels, ignore_index=loss["ignore_index"], reduction="none").mean()

        decode = loss["decode_weight"] * ce(logits)
        aux = loss["identity_weight"] * ce(score / self.cfg["tau"])
        return decode + aux


def class_tokens(k, length):
    """[K, length] ids as the tokenizer gives one-word names: SOT, a word, EOT, pads (bench/denseclip.cpp)."""
    t = torch.zeros(k, length, dtype=torch.long)
    t[:, 0] = 49406
    t[:, 1] = torch.arange(320, 320 + k)
    t[:, 2] = 49407
    return t


def make_optimizer(model, train):
    """AdamW with mmcv's custom_keys (longest key first; the first contained in the name decides),
    one torch param group per pair of multipliers."""
    rules = sorted([("text_encoder", train["text_encoder_lr_mult"], 1.0), ("backbone", train["backbone_lr_mult"], 1.0),
                    ("norm", 1.0, train["norm_decay_mult"])], key=lambda r: (-len(r[0]), r[0]))
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        dotted = name if "." in name else "." + name
        mult = next(((lr, wd) for key, lr, wd in rules if key in dotted), (1.0, 1.0))
        groups.setdefault(mult, []).append(p)
    param_groups = [{"params": ps, "lr": train["lr"] * lr, "weight_decay": train["weight_decay"] * wd,
                     "base_lr": train["lr"] * lr} for (lr, wd), ps in groups.items()]
    return torch.optim.AdamW(param_groups, lr=train["lr"], betas=tuple(train["betas"]), eps=train["eps"],
                             weight_decay=train["weight_decay"])


def set_poly_lr(opt, train, it):
    """mmcv's poly schedule past the warmup, floored at min_lr in every group."""
    f = (1.0 - it / train["iters"]) ** train["poly_power"]
    for g in opt.param_groups:
        g["lr"] = (g["base_lr"] - train["min_lr"]) * f + train["min_lr"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="examples/denseclip/configs/tiny.json (a quick check)")
    ap.add_argument("--config", default=None, help="a weft DenseCLIP JSON config (default: vit-b16.json)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16", help="autocast dtype (fp32: none)")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()

    config = args.config or os.path.join(ROOT, "examples/denseclip/configs", "tiny.json" if args.tiny else "vit-b16.json")
    with open(config) as f:
        cfg = json.load(f)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            common.log("denseclip_torch: no CUDA device")
            return 1
        torch.backends.cudnn.benchmark = True
    size = cfg["backbone"]["input_resolution"]
    b = args.batch
    case = f"denseclip/train_step/{args.dtype}/{size}x{b}"
    common.log(f"denseclip_torch: torch {torch.__version__} on {common.device_name(device)}, {os.path.basename(config)}")

    def run():
        common.reset_peak(device)
        torch.manual_seed(0)
        k = cfg["decode_head"]["num_classes"]
        model = DenseClip(cfg, class_tokens(k, cfg["text_encoder"]["token_length"])).to(device)
        model.train()
        train = cfg["train"]
        opt = make_optimizer(model, train)
        images = torch.randn(b, 3, size, size, device=device)
        labels = torch.randint(0, k, (b, size, size), device=device)
        labels[:, :8] = cfg["loss"]["ignore_index"]  # a band of ignored pixels, as a crop's padding
        it = [train["warmup_iters"]]
        last = [None]

        def step():
            set_poly_lr(opt, train, it[0])
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
                loss = model.losses(images, labels)
            loss.backward()
            opt.step()
            last[0] = loss.detach()
            it[0] = it[0] + 1 if it[0] + 1 < train["iters"] else train["warmup_iters"]

        times = common.time_body(step, device, warmup=args.warmup, iters=args.iters)
        peak = common.peak_mib(device)
        flop = common.counted_flop(step)
        common.emit(case, times, device, flop=flop, peak=peak, loss=float(last[0]),
                    params=sum(p.numel() for p in model.parameters()), config=os.path.basename(config))

    common.run_case(case, device, run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
