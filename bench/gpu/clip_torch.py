"""OpenAI CLIP's transformer modules in PyTorch, batch-first, as weft's clip:: models build them
(include/weft/models/clip/), for PyTorch's side of the GPU benchmarks (ops_torch.py,
denseclip_torch.py).

    vit = VisionTransformer(input_resolution=224, patch_size=16, width=768, layers=12, heads=12,
                            output_dim=512)
    e = vit(images)                      # [N, 3, 224, 224] -> [N, 512], every token through every block

Blocks are pre-norm: x + attn(ln_1(x)), then x + mlp(ln_2(x)), the MLP c_fc -> QuickGELU -> c_proj
(width 4·D). Attention is torch.nn.MultiheadAttention(batch_first=True) called with
need_weights=False, which PyTorch 2 runs through scaled_dot_product_attention. Masks are boolean
(True: may not attend), which nn.MultiheadAttention turns into the query's dtype itself.

DropPath (stochastic depth) with drop_path_axis=1 draws one keep/drop per token position, shared
by the batch, as DenseCLIP's ViT does (its timm drop_path sees sequence-first tensors); axis 0 is
timm's per-sample rule. Rates rise linearly over the blocks, 0 to drop_path_rate.

Parameter names are OpenAI's (conv1, class_embedding, positional_embedding, ln_pre,
transformer.resblocks.{i}.attn.in_proj_weight, ..., ln_post, proj), as weft's.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class DropPath(nn.Module):
    def __init__(self, p=0.0, axis=0):
        super().__init__()
        self.p = p
        self.axis = axis

    def forward(self, x):  # x [N, L, D]
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = [1] * x.dim()
        shape[self.axis] = x.shape[self.axis]
        mask = torch.empty(shape, device=x.device, dtype=x.dtype).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width)
        self.gelu = QuickGELU()
        self.c_proj = nn.Linear(4 * width, width)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, heads, drop_path=0.0, drop_path_axis=0):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = Mlp(width)
        self.ln_2 = nn.LayerNorm(width)
        self.drop_path = DropPath(drop_path, drop_path_axis)

    def forward(self, x, mask=None):  # [N, L, D]
        h = self.ln_1(x)
        x = x + self.drop_path(self.attn(h, h, h, need_weights=False, attn_mask=mask)[0])
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, drop_path_rate=0.0, drop_path_axis=0):
        super().__init__()
        rates = [drop_path_rate * i / (layers - 1) if layers > 1 else 0.0 for i in range(layers)]
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, rates[i], drop_path_axis) for i in range(layers)])

    def forward(self, x, mask=None):
        for block in self.resblocks:
            x = block(x, mask)
        return x


def causal_mask(length, device):
    """[L, L] bool, True above the diagonal: key j > query i may not be attended."""
    return torch.ones(length, length, dtype=torch.bool, device=device).triu(1)


class VisionTransformer(nn.Module):
    def __init__(self, input_resolution=224, patch_size=16, width=768, layers=12, heads=12, output_dim=512,
                 drop_path_rate=0.0, drop_path_axis=0):
        super().__init__()
        scale = width ** -0.5
        grid = input_resolution // patch_size
        self.width = width
        self.patch_size = patch_size
        self.conv1 = nn.Conv2d(3, width, patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads, drop_path_rate, drop_path_axis)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def positions(self, h, w):
        """The positional embedding for an h×w patch grid: [1 + h·w, width], the stored grid
        resized bilinearly when it differs (DenseCLIP's dense forward)."""
        pos = self.positional_embedding
        g = int(round(math.sqrt(pos.shape[0] - 1)))
        if (h, w) == (g, g):
            return pos
        grid = pos[1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
        return torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(h * w, -1)])

    def embed(self, images, class_twice=False):
        """[N, 3, H, W] -> ln_pre([class token; patch tokens] + positions): [N, 1 + hw, width]."""
        x = self.conv1(images)  # [N, width, h, w]
        n, c, h, w = x.shape
        pos = self.positions(h, w).to(x.dtype)
        cls = self.class_embedding.to(x.dtype)
        cls_row = (2 * cls if class_twice else cls) + pos[0]
        patches = x.reshape(n, c, h * w).permute(0, 2, 1) + pos[1:]  # [N, hw, width]
        tokens = torch.cat([cls_row.reshape(1, 1, c).expand(n, 1, c), patches], dim=1)
        return self.ln_pre(tokens), h, w

    def forward(self, images):  # [N, 3, R, R] -> [N, output_dim]
        x, _, _ = self.embed(images)
        x = self.transformer(x)
        return self.ln_post(x[:, 0]) @ self.proj


def vit_train_flop(resolution, batch, patch=16, width=768, layers=12, output_dim=512):
    """ViT-B/16's forward + backward FLOPs as bench/cuda/vit.cu counts them: 3× the forward's
    matrix products (2·m·n·k each): the patch embedding, per block q/k/v, the output projection
    and the MLP (24·L·W²) and attention's two products (4·L²·W), the class token's projection."""
    patches = (resolution // patch) ** 2
    L = patches + 1
    block = 24 * L * width ** 2 + 4 * L * L * width
    image = 2 * patches * (3 * patch * patch) * width + layers * block + 2 * width * output_dim
    return 3.0 * batch * image


def vit_train_label(n):
    """Image n's class (of the 512 outputs), as bench/vit_train.cpp and bench/cuda/vit.cu."""
    return (7 + 256 * n) % 512
