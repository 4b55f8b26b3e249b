"""Reference values for weft's DenseCLIP prompting modules and losses (tests/prompt/).

A PyTorch rendering of DenseCLIP's segmentation/denseclip/models.py pieces (ContextDecoder with
its timm-style Attention and pre-norm TransformerDecoderLayer, CLIPTextContextEncoder), the text
update and score map of denseclip.py, and mmseg 0.19's loss path (bilinear resize to the label
size, cross-entropy with ignore_index 255 averaged over all pixels, loss weight). Small shapes,
float64, dropout off. Parameters are drawn at a larger scale than DenseCLIP's init so that every
path carries a visible gradient.

    /usr/bin/python3 tests/reference/denseclip_prompt.py
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from fixture import DATA, grads, save, seeded


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, q, k, v):
        B, N, C = q.shape
        M = k.shape[1]
        h = self.heads
        q = self.q_proj(q).reshape(B, N, h, C // h)
        k = self.k_proj(k).reshape(B, M, h, C // h)
        v = self.v_proj(v).reshape(B, M, h, C // h)
        w = (torch.einsum("bnhc,bmhc->bhnm", q, k) * self.scale).softmax(-1)
        return self.proj(torch.einsum("bhnm,bmhc->bnhc", w, v).reshape(B, N, C))


class DecoderLayer(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.self_attn = Attention(d, heads)
        self.cross_attn = Attention(d, heads)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(0.0), nn.Linear(4 * d, d))

    def forward(self, x, mem):
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h)
        x = x + self.cross_attn(self.norm2(x), mem, mem)
        return x + self.mlp(self.norm3(x))


class ContextDecoder(nn.Module):
    def __init__(self, width, heads, layers, visual_dim):
        super().__init__()
        self.memory_proj = nn.Sequential(nn.LayerNorm(visual_dim), nn.Linear(visual_dim, width), nn.LayerNorm(width))
        self.text_proj = nn.Sequential(nn.LayerNorm(visual_dim), nn.Linear(visual_dim, width))
        self.decoder = nn.ModuleList([DecoderLayer(width, heads) for _ in range(layers)])
        self.out_proj = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, visual_dim))

    def forward(self, text, visual):
        mem = self.memory_proj(visual)
        x = self.text_proj(text)
        for layer in self.decoder:
            x = layer(x, mem)
        return self.out_proj(x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads)
        self.ln_1 = nn.LayerNorm(d)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(d, 4 * d))
        self.mlp.add_module("c_proj", nn.Linear(4 * d, d))
        self.ln_2 = nn.LayerNorm(d)

    def forward(self, x, mask):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        u = self.mlp.c_fc(self.ln_2(x))
        return x + self.mlp.c_proj(u * torch.sigmoid(1.702 * u))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])


class TextContextEncoder(nn.Module):
    def __init__(self, context_length, vocab, width, heads, layers, embed_dim):
        super().__init__()
        self.context_length = context_length
        self.transformer = Transformer(width, layers, heads)
        self.token_embedding = nn.Embedding(vocab, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, embed_dim))
        self.embed_dim = embed_dim

    def forward(self, text, context):
        x_text = self.token_embedding(text)
        K, N1, C = x_text.shape
        B, N2, _ = context.shape
        eot = (text.argmax(-1) + N2).reshape(1, K).expand(B, K).reshape(-1)
        x = torch.cat([x_text[None, :, 0:1].expand(B, K, 1, C), context[:, None].expand(B, K, N2, C),
                       x_text[None, :, 1:].expand(B, K, N1 - 1, C)], dim=2).reshape(B * K, N1 + N2, C)
        L = N1 + N2
        x = x + self.positional_embedding[:L]
        mask = torch.full((L, L), float("-inf")).triu(1)
        x = x.permute(1, 0, 2)
        for blk in self.transformer.resblocks:
            x = blk(x, mask)
        x = self.ln_final(x.permute(1, 0, 2))
        x = x[torch.arange(x.shape[0]), eot] @ self.text_projection
        return x.reshape(B, K, self.embed_dim)


def randomize(module, g, scale):
    with torch.no_grad():
        for name, p in module.named_parameters():
            base = 1.0 if (name.endswith("weight") and p.dim() == 1) else 0.0
            p.copy_(base + scale * torch.randn(p.shape, generator=g))


def module_case(out, prefix, module, result, inputs):
    """Saves parameters, the output, and the gradients of sum(result * r) w.r.t. inputs and parameters."""
    names = [n for n, _ in module.named_parameters()]
    params = [p for _, p in module.named_parameters()]
    r, gs = grads(result, list(inputs.values()) + params)
    out[prefix + ".out"] = result
    out[prefix + ".r"] = r
    for (k, v), gv in zip(inputs.items(), gs):
        out[prefix + ".in." + k] = v
        out[prefix + ".grad_in." + k] = gv
    for n, p, gv in zip(names, params, gs[len(inputs):]):
        out[prefix + ".p." + n] = p
        out[prefix + ".grad_p." + n] = gv


def segmentation_ce(logits, labels, weight):
    """mmseg 0.19: resize to the label size, CE(reduction none, ignore 255), mean over all pixels."""
    up = F.interpolate(logits, size=labels.shape[1:], mode="bilinear", align_corners=False)
    return weight * F.cross_entropy(up, labels, ignore_index=255, reduction="none").mean()


def main():
    g = seeded(0)
    out = {}

    # ---- ContextDecoder: visual_dim 24, width 12, 2 heads, 2 layers; B 2, K 5, HW 6 -------------
    dec = ContextDecoder(width=12, heads=2, layers=2, visual_dim=24)
    randomize(dec, g, 0.3)
    text = torch.randn(2, 5, 24, generator=g, requires_grad=True)
    visual = torch.randn(2, 7, 24, generator=g, requires_grad=True)
    module_case(out, "decoder", dec, dec(text, visual), {"text": text, "visual": visual})

    # ---- TextContextEncoder: context 13, vocab 32, width 16, 2 heads, 1 layer, embed 24 ---------
    enc = TextContextEncoder(13, 32, 16, 2, 1, 24)
    randomize(enc, g, 0.3)
    tokens = torch.randint(1, 30, (5, 5), generator=g)
    tokens[:, 0] = 30                                        # start token
    for k, n in enumerate([1, 2, 3, 1, 2]):                  # class names of 1-3 tokens, EOT = 31, pad 0
        tokens[k, n + 1] = 31
        tokens[k, n + 2:] = 0
    contexts = torch.randn(2, 8, 16, generator=g, requires_grad=True)
    res = enc(tokens, contexts)
    module_case(out, "encoder", enc, res, {"contexts": contexts})
    out["encoder.tokens"] = tokens
    # The same encoder with DenseCLIP's single context set [1, 8, 16].
    with torch.no_grad():
        out["encoder.out_single"] = enc(tokens, contexts[:1])

    # ---- text update and score map: C 24, K 5, 2x3 map ----------------------------------------
    t = torch.randn(2, 5, 24, generator=g, requires_grad=True)
    gamma = (0.5 * torch.randn(24, generator=g)).requires_grad_()
    diff = torch.randn(2, 5, 24, generator=g, requires_grad=True)
    vis = torch.randn(2, 24, 2, 3, generator=g, requires_grad=True)
    t2 = t + gamma * diff
    score = torch.einsum("bchw,bkc->bkhw", F.normalize(vis, dim=1), F.normalize(t2, dim=2))
    r, gs = grads(score, [t, gamma, diff, vis])
    out.update({"score.text": t, "score.gamma": gamma, "score.diff": diff, "score.visual": vis, "score.out": score,
                "score.updated": t2, "score.r": r, "score.grad_text": gs[0], "score.grad_gamma": gs[1],
                "score.grad_diff": gs[2], "score.grad_visual": gs[3]})

    # ---- pixel-text matching loss: score map [2, 5, 2, 3] / 0.07, labels [2, 5, 7], weight 0.4 --
    sm = (torch.rand(2, 5, 2, 3, generator=g) * 2 - 1).requires_grad_()
    labels = torch.randint(0, 5, (2, 5, 7), generator=g)
    labels[torch.rand(2, 5, 7, generator=g) < 0.2] = 255
    loss = segmentation_ce(sm / 0.07, labels, 0.4)
    (gsm,) = torch.autograd.grad(loss, [sm])
    out.update({"ptm.score": sm, "ptm.labels": labels, "ptm.loss": loss, "ptm.grad": gsm})

    # ---- decode loss: logits [2, 5, 3, 4] -> labels [2, 7, 9], weight 1 -----------------------
    logits = torch.randn(2, 5, 3, 4, generator=g, requires_grad=True)
    dl = torch.randint(0, 5, (2, 7, 9), generator=g)
    dl[torch.rand(2, 7, 9, generator=g) < 0.2] = 255
    loss = segmentation_ce(logits, dl, 1.0)
    (gl,) = torch.autograd.grad(loss, [logits])
    out.update({"decode.logits": logits, "decode.labels": dl, "decode.loss": loss, "decode.grad": gl})

    # ---- the text encoder loaded from the tiny CLIP archive (context 16 -> first 13 rows) ------
    ck = torch.jit.load(str(DATA / "clip_vit_tiny.pt"), map_location="cpu").float().state_dict()
    width = ck["ln_final.weight"].shape[0]
    layers = len({k.split(".")[2] for k in ck if k.startswith("transformer.resblocks.")})
    tiny = TextContextEncoder(13, ck["token_embedding.weight"].shape[0], width, width // 64, layers,
                              ck["text_projection"].shape[1])
    sd = {k: v.double() for k, v in ck.items()
          if k.startswith(("transformer.", "token_embedding.", "ln_final.")) or k == "text_projection"}
    sd["positional_embedding"] = ck["positional_embedding"][:13].double()
    tiny.load_state_dict(sd)
    ttok = torch.tensor([[254, 17, 255, 0, 0], [254, 40, 41, 42, 255], [254, 9, 99, 255, 0]])
    tctx = torch.randn(2, 8, width, generator=g)
    with torch.no_grad():
        out.update({"tiny.tokens": ttok, "tiny.contexts": tctx, "tiny.out": tiny(ttok, tctx)})

    save("denseclip_prompt", out)


if __name__ == "__main__":
    main()
