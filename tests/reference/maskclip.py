"""Reference values for weft's MaskCLIP dense features (include/weft/models/clip/maskclip.hpp).

MaskCLIP (Zhou et al., ECCV 2022) reads dense labels out of a frozen CLIP by sending every spatial
token through the last attention layer's value and output projections only (no query-key mixing):

  ResNet: f = c_proj(v_proj(layer4 output)) at every position, as 1x1 convolutions; no positional
          embedding (MaskCLIP's MaskClipHead with vit=False).
  ViT:    blocks 0..L-2 as usual (class embedding added once, positional grid resized bilinearly to
          the patch grid); in the last block v = x + out_proj(v_proj(ln_1(x))), v = v + mlp(ln_2(v))
          (MaskCLIP's TransformerEncoderLayer with return_qkv); then ln_post(v) @ proj.

The tiny models are tests/reference/data/clip_{vit,rn}_tiny.pt (written by clip_model.py), loaded
through clip_model.build_model and run in float64 on the dense images stored in
data/clip_model.safetensors (vit.dense.images [2,3,48,40], rn.dense.images [1,3,96,64]), which keeps
this file small. Written: data/maskclip.safetensors with
  vit.features [2,64,6,5], rn.features [1,64,3,2]   dense_value_features
  text [3,64]                                       random text features
  vit.logits [2,3,6,5], rn.logits [1,3,3,2]         cosine similarities with text

Each reference is checked against an independent route: a standard block (or attention) run on
every token as its own length-1 sequence, where attention can only return the token's own value.

Run with /usr/bin/python3 tests/reference/maskclip.py (after clip_model.py, if that is rerun).
"""
import json
import struct

import numpy as np
import torch
import torch.nn.functional as F

from clip_model import build_model, interpolate_grid
from fixture import DATA, save, seeded


def read_safetensors(path, keys):
    """The named tensors of a safetensors file (F32/F64 only, which is all this script needs)."""
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    dtypes = {"F32": np.float32, "F64": np.float64}
    out = {}
    for k in keys:
        h = header[k]
        a, b = h["data_offsets"]
        arr = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dtypes[h["dtype"]]).reshape(h["shape"])
        out[k] = torch.from_numpy(arr.copy())
    return out


def load64(name):
    path = DATA / f"clip_{name}_tiny.pt"
    if name == "vit":
        sd = torch.jit.load(str(path), map_location="cpu").state_dict()
    else:
        sd = torch.load(path, map_location="cpu")
    return build_model(dict(sd)).double()


def vit_tokens(visual, images):
    """[class; patches] + resized positions, ln_pre: [N, 1+hw, C] (class embedding once)."""
    x = visual.conv1(images)  # [N, C, h, w]
    n, c, h, w = x.shape
    x = x.reshape(n, c, h * w).permute(0, 2, 1)
    pos = visual.positional_embedding
    pos = torch.cat([pos[:1], interpolate_grid(pos[1:], (h, w))], dim=0)
    cls = visual.class_embedding.expand(n, 1, c)
    return visual.ln_pre(torch.cat([cls, x], dim=1) + pos), h, w


def vit_maskclip(visual, images):
    x, h, w = vit_tokens(visual, images)
    x = x.permute(1, 0, 2)  # [L, N, C], as the reference blocks take
    blocks = list(visual.transformer.resblocks)
    for block in blocks[:-1]:
        x = block(x)
    x = x.permute(1, 0, 2)  # [N, L, C]
    last = blocks[-1]
    # MaskCLIP's last layer: the packed in-projection, out_proj applied to q, k and v alike; keep v.
    y = F.linear(last.ln_1(x), last.attn.in_proj_weight, last.attn.in_proj_bias)
    n, l, c3 = y.shape
    q, k, v = F.linear(y.view(n, l, 3, c3 // 3).permute(2, 0, 1, 3), last.attn.out_proj.weight,
                       last.attn.out_proj.bias)
    v = v + x
    v = v + last.mlp(last.ln_2(v))
    e = visual.ln_post(v[:, 1:]) @ visual.proj  # [N, hw, E]
    feats = e.permute(0, 2, 1).reshape(n, -1, h, w)

    # Independent route: the ordinary last block on each token alone (a length-1 sequence).
    tokens = x[:, 1:].reshape(1, -1, x.shape[-1])  # [1, N*hw, C]: sequence length 1, batch N*hw
    alone = visual.ln_post(last(tokens)[0]) @ visual.proj  # [N*hw, E]
    check("vit value path == block on single tokens", feats, alone.reshape(n, h * w, -1).permute(0, 2, 1)
          .reshape(n, -1, h, w))
    return feats


def rn_maskclip(visual, images):
    f = visual.stages(images)[-1]  # [N, C, h, w]
    pool = visual.attnpool
    v = F.conv2d(f, pool.v_proj.weight[:, :, None, None], pool.v_proj.bias)
    feats = F.conv2d(v, pool.c_proj.weight[:, :, None, None], pool.c_proj.bias)

    # Independent route: the pool's attention with every position as its own one-token sequence
    # and no positional embedding.
    n, c, h, w = f.shape
    tokens = f.reshape(n, c, h * w).permute(0, 2, 1).reshape(1, n * h * w, c)  # [1, N*hw, C]
    alone = pool._attend(tokens, tokens)[0]  # [N*hw, E]
    check("rn value path == pool attention on single tokens", feats,
          alone.reshape(n, h * w, -1).permute(0, 2, 1).reshape(n, -1, h, w))
    return feats


def cosine_map(feats, text):
    v = F.normalize(feats, dim=1)
    t = F.normalize(text, dim=-1)
    return torch.einsum("nchw,kc->nkhw", v, t)


def check(name, a, b, tol=1e-12):
    diff = (a - b).abs().max().item()
    assert diff <= tol * max(1.0, b.abs().max().item()), f"{name}: max |diff| {diff:.3g}"
    print(f"  ok {name}: max |diff| {diff:.3g}")


@torch.no_grad()
def main():
    g = seeded(0)
    images = read_safetensors(DATA / "clip_model.safetensors", ["vit.dense.images", "rn.dense.images"])
    vit = load64("vit")
    rn = load64("rn")
    out = {}
    out["vit.features"] = vit_maskclip(vit.visual, images["vit.dense.images"].double())
    out["rn.features"] = rn_maskclip(rn.visual, images["rn.dense.images"].double())
    text = torch.randn(3, 64, generator=g)
    out["text"] = text
    out["vit.logits"] = cosine_map(out["vit.features"], text)
    out["rn.logits"] = cosine_map(out["rn.features"], text)
    for k in sorted(out):
        v = out[k]
        assert v.dtype == torch.float64 and torch.isfinite(v).all() and v.std() > 1e-3, f"{k} is degenerate"
        print(f"  {k:14s} {list(v.shape)}  std {v.std().item():.3g}")
    save("maskclip", out, {"note": "MaskCLIP dense features of the tiny CLIP models (tests/reference/maskclip.py)"})


if __name__ == "__main__":
    main()
