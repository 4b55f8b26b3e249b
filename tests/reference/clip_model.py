"""Reference checkpoints and outputs for weft's CLIP models (include/weft/models/clip/).

A self-contained PyTorch rendering of OpenAI's CLIP (clip/model.py: modified ResNet, ViT, text
transformer, build_model, convert_weights) and of DenseCLIP's dense image encoders
(segmentation/denseclip/models.py), written from the published architecture. Two tiny models with
random (seeded) weights are saved the ways real checkpoints come, and their outputs are computed in
float64 from the fp16-rounded weights:

  data/clip_vit_tiny.pt               TorchScript archive (torch.jit.trace + torch.jit.save, OpenAI's
                                      release form) of the fp16 ViT model; the root also holds int64
                                      scalar buffers input_resolution, context_length, vocab_size,
                                      which a loader must drop as build_model does
  data/clip_rn_tiny.pt                torch.save(state_dict) of the fp16 ResNet model
  data/clip_model.safetensors         inputs and float64 expected values, keys (m = vit | rn):
      m.images [2,3,R,R] f32, m.text [3,16] i64, m.image_features [2,64], m.text_features [3,64]
        (encode_image / encode_text, before normalisation), m.logits_per_image [2,3]
      vit.dense.images [2,3,48,40] f32, vit.dense.taps.{0,1} [2,128,6,5] (raw residual stream after
        blocks 0 and 1), vit.dense.global [2,64], vit.dense.visual [2,64,6,5]
      vit.resized_positional_embedding [50,128] (grid 4 -> 7)
      rn.dense.images [1,3,96,64] f32, rn.dense.layer{1..4} (stage outputs), rn.dense.global [1,64],
        rn.dense.local [1,64,3,2]
      rn.resized_positional_embedding [17,256] (grid 2 -> 4)

The dense forwards interpolate the model's own stored positional grid (4x4 for the ViT, 2x2 for the
attention pool) to the runtime feature size; no load-time resize is applied before them.

Run with /usr/bin/python3 tests/reference/clip_model.py (Debian's python3-torch).
"""
import copy
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from fixture import DATA, save, seeded

# ------------------------------------------------------------------------------------------------
# The model (OpenAI CLIP)


class Bottleneck(nn.Module):
    """ResNet bottleneck with anti-aliased striding: an average pool replaces the strided conv."""
    expansion = 4

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride > 1 or inplanes != out:
            # Named "-1", "0", "1" so the conv and BN keys are downsample.0.* and downsample.1.*.
            self.downsample = nn.Sequential(OrderedDict([
                ("-1", nn.AvgPool2d(stride)),
                ("0", nn.Conv2d(inplanes, out, 1, bias=False)),
                ("1", nn.BatchNorm2d(out)),
            ]))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(self.avgpool(y)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(y + shortcut)


def interpolate_grid(grid_rows, size):
    """[g*g, C] row-major grid -> bilinear (align_corners=False) resize -> [H*W, C]."""
    n, c = grid_rows.shape
    g = round(math.sqrt(n))
    assert g * g == n, f"positional grid of {n} rows is not square"
    img = grid_rows.reshape(1, g, g, c).permute(0, 3, 1, 2)  # [1, C, g, g]
    img = F.interpolate(img, size=size, mode="bilinear", align_corners=False)
    return img.reshape(c, size[0] * size[1]).permute(1, 0)


def resize_positional_embedding(pos, grid):
    """DenseCLIP's load-time resize: cls row kept, the square grid resized to grid x grid."""
    return torch.cat([pos[:1], interpolate_grid(pos[1:], (grid, grid))], dim=0)


class AttentionPool2d(nn.Module):
    def __init__(self, spacial_dim, embed_dim, num_heads, output_dim):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(spacial_dim ** 2 + 1, embed_dim) / embed_dim ** 0.5)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim)
        self.num_heads = num_heads

    def _attend(self, tokens, queries):
        # tokens [L, N, C] (sequence first), queries [Lq, N, C]
        out, _ = F.multi_head_attention_forward(
            queries, tokens, tokens, tokens.shape[-1], self.num_heads,
            in_proj_weight=None,
            in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
            bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
            out_proj_weight=self.c_proj.weight, out_proj_bias=self.c_proj.bias,
            training=False, need_weights=False, use_separate_proj_weight=True,
            q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight,
            v_proj_weight=self.v_proj.weight)
        return out

    @staticmethod
    def _tokens(x):
        n, c, h, w = x.shape
        x = x.reshape(n, c, h * w).permute(2, 0, 1)  # [HW, N, C]
        return torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)  # [HW+1, N, C]

    def forward(self, x):
        """CLIP: only the mean token queries; stored grid used as is. -> [N, out]"""
        t = self._tokens(x) + self.positional_embedding[:, None, :].to(x.dtype)
        return self._attend(t, t[:1])[0]

    def forward_dense(self, x):
        """DenseCLIP: grid interpolated to (H, W), every token queries. -> [N, out], [N, out, H, W]"""
        n, _, h, w = x.shape
        pos = self.positional_embedding
        pos = torch.cat([pos[:1], interpolate_grid(pos[1:], (h, w))], dim=0).to(x.dtype)
        t = self._tokens(x) + pos[:, None, :]
        out = self._attend(t, t).permute(1, 2, 0)  # [N, out, HW+1]
        return out[:, :, 0], out[:, :, 1:].reshape(n, -1, h, w)


class ModifiedResNet(nn.Module):
    def __init__(self, layers, output_dim, heads, input_resolution, width):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.avgpool = nn.AvgPool2d(2)
        inplanes = width
        for i, blocks in enumerate(layers):
            planes = width * 2 ** i
            stage = [Bottleneck(inplanes, planes, 1 if i == 0 else 2)]
            inplanes = planes * Bottleneck.expansion
            stage += [Bottleneck(inplanes, planes) for _ in range(1, blocks)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*stage))
        self.attnpool = AttentionPool2d(input_resolution // 32, width * 32, heads, output_dim)

    def stages(self, x):
        x = x.type(self.conv1.weight.dtype)
        for conv, bn in [(self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)]:
            x = F.relu(bn(conv(x)))
        x = self.avgpool(x)
        outs = []
        for stage in [self.layer1, self.layer2, self.layer3, self.layer4]:
            x = stage(x)
            outs.append(x)
        return outs

    def forward(self, x):
        return self.attnpool(self.stages(x)[-1])

    def forward_dense(self, x):
        outs = self.stages(x)
        return outs, *self.attnpool.forward_dense(outs[-1])


class LayerNorm(nn.LayerNorm):
    """CLIP's LayerNorm: fp16 inputs are normalised in fp32 (fp32/fp64 inputs in their own type,
    so the float64 reference stays float64)."""

    def forward(self, x):
        if x.dtype in (torch.float16, torch.bfloat16):
            return super().forward(x.float()).to(x.dtype)
        return super().forward(x)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d_model, n_head, attn_mask=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_head)
        self.ln_1 = LayerNorm(d_model)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(d_model, d_model * 4)),
            ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(d_model * 4, d_model)),
        ]))
        self.ln_2 = LayerNorm(d_model)
        self.attn_mask = attn_mask  # a plain attribute: not part of the state dict

    def forward(self, x):
        mask = None if self.attn_mask is None else self.attn_mask.to(dtype=x.dtype, device=x.device)
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, attn_mask=None):
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, attn_mask) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    def __init__(self, input_resolution, patch_size, width, layers, heads, output_dim):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn((input_resolution // patch_size) ** 2 + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def _patches(self, x):
        x = self.conv1(x.type(self.conv1.weight.dtype))  # [N, C, h, w]
        n, c, h, w = x.shape
        return x.reshape(n, c, h * w).permute(0, 2, 1), h, w  # [N, hw, C]

    def _with_class(self, x, cls):
        return torch.cat([cls.to(x.dtype).expand(x.shape[0], 1, x.shape[-1]), x], dim=1)  # [N, hw+1, C]

    def forward(self, x):
        x, _, _ = self._patches(x)
        x = self._with_class(x, self.class_embedding) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj

    def forward_dense(self, x, out_indices, class_twice=True):
        """DenseCLIP's CLIPVisionTransformer with get_embeddings. The CLS token gets the class
        embedding twice (once prepended, once added to pos[0]) when class_twice, as DenseCLIP does."""
        x, h, w = self._patches(x)
        n = x.shape[0]
        pos = self.positional_embedding.to(x.dtype)
        cls_pos = pos[:1] + (self.class_embedding.to(x.dtype) if class_twice else 0)
        pos = torch.cat([cls_pos, interpolate_grid(pos[1:], (h, w))], dim=0)
        x = self._with_class(x, self.class_embedding) + pos
        x = self.ln_pre(x).permute(1, 0, 2)  # [L, N, C]
        taps = []
        for i, block in enumerate(self.transformer.resblocks):
            x = block(x)
            if i in out_indices:
                taps.append(x[1:].permute(1, 2, 0).reshape(n, -1, h, w))  # [N, C, h, w]
        x = self.ln_post(x.permute(1, 0, 2)) @ self.proj  # [N, hw+1, E]
        return taps, x[:, 0], x[:, 1:].permute(0, 2, 1).reshape(n, -1, h, w)


class CLIP(nn.Module):
    def __init__(self, embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
                 context_length, vocab_size, transformer_width, transformer_heads, transformer_layers):
        super().__init__()
        self.context_length = context_length
        if isinstance(vision_layers, (tuple, list)):
            self.visual = ModifiedResNet(vision_layers, embed_dim, vision_width * 32 // 64, image_resolution,
                                         vision_width)
        else:
            self.visual = VisionTransformer(image_resolution, vision_patch_size, vision_width, vision_layers,
                                            vision_width // 64, embed_dim)
        causal = torch.full((context_length, context_length), float("-inf")).triu_(1)
        self.transformer = Transformer(transformer_width, transformer_layers, transformer_heads, causal)
        self.token_embedding = nn.Embedding(vocab_size, transformer_width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, transformer_width))
        self.ln_final = LayerNorm(transformer_width)
        self.text_projection = nn.Parameter(torch.empty(transformer_width, embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.initialize_parameters()

    def initialize_parameters(self):
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        if isinstance(self.visual, ModifiedResNet):
            pool = self.visual.attnpool
            for lin in [pool.q_proj, pool.k_proj, pool.v_proj, pool.c_proj]:
                nn.init.normal_(lin.weight, std=pool.c_proj.in_features ** -0.5)
            for name, p in self.visual.named_parameters():
                if name.startswith("layer") and name.endswith("bn3.weight"):
                    nn.init.zeros_(p)
        width, layers = self.transformer.width, self.transformer.layers
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=width ** -0.5)
            nn.init.normal_(block.attn.out_proj.weight, std=width ** -0.5 * (2 * layers) ** -0.5)
            nn.init.normal_(block.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(block.mlp.c_proj.weight, std=width ** -0.5 * (2 * layers) ** -0.5)
        nn.init.normal_(self.text_projection, std=width ** -0.5)

    @property
    def dtype(self):
        return self.visual.conv1.weight.dtype

    def encode_image(self, image):
        return self.visual(image.type(self.dtype))

    def encode_text(self, text):
        x = self.token_embedding(text).type(self.dtype) + self.positional_embedding.type(self.dtype)
        x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)  # [N, L, D]
        x = self.ln_final(x).type(self.dtype)
        # The end-of-text token has the largest id in each row.
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection

    def forward(self, image, text):
        img = self.encode_image(image)
        txt = self.encode_text(text)
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        logits_per_image = self.logit_scale.exp() * img @ txt.t()
        return logits_per_image, logits_per_image.t()


def convert_weights(model):
    """OpenAI's mixed-precision release form: Conv/Linear (incl. MHA's out_proj), MHA in_proj and
    the proj / text_projection matrices in fp16; norms, embeddings and logit_scale stay fp32."""
    def to_half(p):
        if p is not None:
            p.data = p.data.half()

    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            to_half(m.weight)
            to_half(m.bias)
        if isinstance(m, nn.MultiheadAttention):
            for attr in ["in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias",
                         "bias_k", "bias_v"]:
                to_half(getattr(m, attr))
        for attr in ["text_projection", "proj"]:
            if isinstance(getattr(m, attr, None), torch.Tensor):
                to_half(getattr(m, attr))


def build_model(state_dict):
    """OpenAI's build_model: every hyper-parameter is read off the state dict's keys and shapes."""
    sd = state_dict
    if "visual.proj" in sd:
        vision_width = sd["visual.conv1.weight"].shape[0]
        vision_layers = len([k for k in sd if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")])
        vision_patch_size = sd["visual.conv1.weight"].shape[-1]
        grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        image_resolution = vision_patch_size * grid
    else:
        vision_layers = tuple(len({k.split(".")[2] for k in sd if k.startswith(f"visual.layer{b}")})
                              for b in [1, 2, 3, 4])
        vision_width = sd["visual.layer1.0.conv1.weight"].shape[0]
        grid = round((sd["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
        assert grid ** 2 + 1 == sd["visual.attnpool.positional_embedding"].shape[0]
        vision_patch_size = None
        image_resolution = grid * 32
    embed_dim = sd["text_projection"].shape[1]
    context_length = sd["positional_embedding"].shape[0]
    vocab_size = sd["token_embedding.weight"].shape[0]
    transformer_width = sd["ln_final.weight"].shape[0]
    transformer_layers = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks")})
    model = CLIP(embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size, context_length,
                 vocab_size, transformer_width, transformer_width // 64, transformer_layers)
    for key in ["input_resolution", "context_length", "vocab_size"]:
        sd.pop(key, None)
    convert_weights(model)
    model.load_state_dict(sd)
    return model.eval()


# ------------------------------------------------------------------------------------------------
# Fixture generation

CONFIGS = {
    "vit": dict(embed_dim=64, image_resolution=32, vision_layers=2, vision_width=128, vision_patch_size=8,
                context_length=16, vocab_size=256, transformer_width=64, transformer_heads=1, transformer_layers=2),
    "rn": dict(embed_dim=64, image_resolution=64, vision_layers=(1, 2, 1, 1), vision_width=8, vision_patch_size=None,
               context_length=16, vocab_size=256, transformer_width=64, transformer_heads=1, transformer_layers=2),
}
EOT = 255


@torch.no_grad()
def randomise(model, g):
    """Makes every tensor informative: CLIP's init leaves biases 0, norms at 1/0 and bn3 at 0."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None:
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        if isinstance(m, nn.Conv2d):
            # He-normal keeps activations O(1) through the ReLU stack (the default init shrinks them).
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2 / fan_in))
        if isinstance(m, nn.MultiheadAttention):
            m.in_proj_bias.copy_(0.1 * torch.randn(m.in_proj_bias.shape, generator=g))
        if isinstance(m, (nn.LayerNorm, nn.BatchNorm2d)):
            m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    model.logit_scale.fill_(math.log(1 / 0.07) + 0.3)


def make_text(g, eot_positions, length=16):
    text = torch.zeros(len(eot_positions), length, dtype=torch.int64)
    for row, pos in enumerate(eot_positions):
        text[row, :pos] = torch.randint(1, EOT - 1, (pos,), generator=g)
        text[row, pos] = EOT
    return text


def close(name, a, b, rtol, atol):
    a, b = a.double(), b.double()
    assert torch.allclose(a, b, rtol=rtol, atol=atol), f"{name}: max |diff| {(a - b).abs().max().item():.3g}"
    print(f"  ok {name}: max |diff| {(a - b).abs().max().item():.3g}")


def new_model(name, g):
    torch.set_default_dtype(torch.float32)  # the checkpoints hold fp32/fp16 like real ones
    model = CLIP(**CONFIGS[name]).eval()
    randomise(model, g)
    convert_weights(model)
    return model


def expected_outputs(name, model64, images, text):
    with torch.no_grad():
        img = model64.encode_image(images.double())
        txt = model64.encode_text(text)
        logits, _ = model64(images.double(), text)
    # encode_* plus forward's own normalisation agree with a direct cosine computation
    cos = F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()
    close(f"{name}.logits_per_image (cosine)", logits, model64.logit_scale.exp() * cos, 1e-12, 1e-12)
    return {f"{name}.images": images, f"{name}.text": text, f"{name}.image_features": img,
            f"{name}.text_features": txt, f"{name}.logits_per_image": logits}


def dtype_groups(sd):
    groups = {}
    for k, v in sd.items():
        groups.setdefault(str(v.dtype).replace("torch.", ""), []).append(k)
    return groups


@torch.no_grad()
def main():
    g = seeded(0)
    out = {}

    # ---- ViT: TorchScript archive ----------------------------------------------------------------
    vit = new_model("vit", g)
    images = torch.randn(2, 3, 32, 32, generator=g, dtype=torch.float32)
    text = make_text(g, [5, 15, 9])
    # CPU PyTorch cannot run fp16 conv/matmul, so trace an fp32 copy holding the fp16-rounded values,
    # then put the traced module's fp16 parameters back in fp16.
    tracer = copy.deepcopy(vit).float()
    del tracer.context_length  # a plain int on the eager model; a tensor in OpenAI's archives
    for key, value in [("input_resolution", 32), ("context_length", 16), ("vocab_size", 256)]:
        tracer.register_buffer(key, torch.tensor(value, dtype=torch.int64))
    traced = torch.jit.trace(tracer, (images, text))
    half = {k for k, v in vit.state_dict().items() if v.dtype == torch.float16}
    for k, p in traced.named_parameters():
        if k in half:
            p.data = p.data.half()
    path = DATA / "clip_vit_tiny.pt"
    torch.jit.save(traced, str(path))

    loaded = torch.jit.load(str(path), map_location="cpu")
    sd = loaded.state_dict()
    ref = vit.state_dict()
    assert set(sd) == set(ref) | {"input_resolution", "context_length", "vocab_size"}, set(sd) ^ set(ref)
    for k, v in ref.items():
        assert sd[k].dtype == v.dtype and torch.equal(sd[k], v), k
    print("vit archive dtypes:", {d: len(ks) for d, ks in dtype_groups(sd).items()})
    vit64 = build_model(dict(sd)).double()
    out.update(expected_outputs("vit", vit64, images, text))
    # DenseCLIP's path: jit.load(...).float() and run the traced graph.
    close("vit traced fp32 logits", loaded.float()(images, text)[0], out["vit.logits_per_image"], 1e-4, 1e-4)
    # The eager fp16-valued model in float64 gives the same numbers as the reloaded one.
    close("vit eager vs reloaded", vit.double().encode_image(images.double()), out["vit.image_features"], 0, 0)

    dense_images = torch.randn(2, 3, 48, 40, generator=g, dtype=torch.float32)
    taps, glob, visual = vit64.visual.forward_dense(dense_images.double(), out_indices=(0, 1))
    out.update({"vit.dense.images": dense_images, "vit.dense.taps.0": taps[0], "vit.dense.taps.1": taps[1],
                "vit.dense.global": glob, "vit.dense.visual": visual})
    # Without the double class embedding, at the native size, the dense global token is encode_image.
    _, plain, _ = vit64.visual.forward_dense(images.double(), out_indices=(), class_twice=False)
    close("vit dense global == encode_image (class once, native size)", plain, out["vit.image_features"], 1e-12, 1e-12)
    out["vit.resized_positional_embedding"] = resize_positional_embedding(vit64.visual.positional_embedding, 7)

    # ---- RN: torch.save state dict (fp16) -----------------------------------------------------------
    rn = new_model("rn", g)
    images = torch.randn(2, 3, 64, 64, generator=g, dtype=torch.float32)
    text = make_text(g, [3, 12, 15])
    path = DATA / "clip_rn_tiny.pt"
    torch.save(rn.state_dict(), path)
    sd = torch.load(path, map_location="cpu")
    print("rn archive dtypes:", {d: len(ks) for d, ks in dtype_groups(sd).items()})
    rn64 = build_model(dict(sd)).double()
    out.update(expected_outputs("rn", rn64, images, text))

    dense_images = torch.randn(1, 3, 96, 64, generator=g, dtype=torch.float32)
    stages, glob, local = rn64.visual.forward_dense(dense_images.double())
    out["rn.dense.images"] = dense_images
    for i, s in enumerate(stages):
        out[f"rn.dense.layer{i + 1}"] = s
    out.update({"rn.dense.global": glob, "rn.dense.local": local})
    # At the native size the grid interpolation is the identity and token 0 is CLIP's pooled output.
    _, native, _ = rn64.visual.forward_dense(images.double())
    close("rn dense global == encode_image (native size)", native, out["rn.image_features"], 1e-12, 1e-12)
    out["rn.resized_positional_embedding"] = resize_positional_embedding(rn64.visual.attnpool.positional_embedding, 4)
    # Resizing to the same grid is the identity (align_corners=False, equal sizes).
    close("rn resize to same grid", resize_positional_embedding(rn64.visual.attnpool.positional_embedding, 2),
          rn64.visual.attnpool.positional_embedding, 0, 0)

    for k in sorted(out):
        v = out[k]
        if v.is_floating_point() and "images" not in k:
            assert v.dtype == torch.float64, k
            assert torch.isfinite(v).all() and v.std() > 1e-3, f"{k} is degenerate"
        print(f"  {k:36s} {str(v.dtype):14s} {list(v.shape)}  std {v.double().std().item():.3g}")
    save("clip_model", out, {"note": "CLIP tiny models (tests/reference/clip_model.py), float64 expected"})


if __name__ == "__main__":
    main()
