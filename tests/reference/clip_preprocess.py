"""References for weft's image decoding, PIL-exact resize and CLIP preprocessing (tests/image).

Regenerate with Debian's interpreter (python3-pil 9.4, python3-torchvision 0.14) and a C compiler:

    /usr/bin/python3 tests/reference/clip_preprocess.py

Pixels of the real ADE20K image: weft decodes JPEG with stb_image, PIL with libjpeg, and the two
differ by a few levels (docs/image.md). So that PIL's resize and torchvision see exactly the
pixels weft's read_image gives, this script compiles Debian's stb_image.h into a small shared
library, decodes the JPEG with it, and hands that array to PIL. (weft replaces stb's 4:2:2
upsampler, which this plain build keeps; the ADE20K samples are 4:2:0, where the two agree.)
PIL's own decode is stored too (every 12th row of the smallest sample), for the decoder
comparison.

Contents (tensor names):
  ade1.stb_row_sums              I32 [512, 3]  per-row channel sums of stb's decode (detects a
                                               different stb version before a resize fails)
  ade3.pil_rows, .pil_row_index  U8/I64        PIL's decode of ADE_val_00000003.jpg, some rows
  ade3.label_rows                U8 [150, 400] np.array(Image.open(annotation png)), even rows
  img.<name>                     U8 [H, W, C]  seeded synthetic inputs
  resize.<filter>.<name>.<h>x<w> U8            Image.fromarray(img).resize((w, h), filter);
                                               name "ade1" = the stb-decoded ADE image
  preprocess.<name>.<n>          F32 [3, n, n] CLIP's torchvision transform
  center_crop.<name>.<n>         U8 [n, n, 3]  torchvision's F.center_crop on the PIL image
  <fmt>.<case>.bytes             U8 [bytes]    an encoded file (png, jpeg, bmp)
  <fmt>.<case>.rgb               U8 [H, W, 3]  what read_image must give, exactly
  <fmt>.<case>.rgb_pil           U8 [H, W, 3]  PIL's convert("RGB") where weft differs on purpose
                                               (JPEG: bounded; 16-bit grey, which PIL clips)
  png.<case>.label               U8 [H, W]     what read_label_png must give (absent: must fail)
"""
import ctypes
import io
import warnings
import pathlib
import struct
import subprocess
import tempfile
import zlib

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from fixture import save

# PIL suggests RGBA for palette images with per-entry transparency; that case is on purpose.
warnings.filterwarnings("ignore", message="Palette images with Transparency")

ADE = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "ade20k" / "sample"
rng = np.random.default_rng(20261129)
out = {}


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ---- stb_image through ctypes -------------------------------------------------------------
def build_stb():
    tmp = pathlib.Path(tempfile.mkdtemp())
    (tmp / "stb.c").write_text("#define STB_IMAGE_IMPLEMENTATION\n#define STBI_NO_STDIO\n"
                               "#include <stb/stb_image.h>\n")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", str(tmp / "stb.c"), "-o", str(tmp / "stb.so")],
                   check=True)
    lib = ctypes.CDLL(str(tmp / "stb.so"))
    lib.stbi_load_from_memory.restype = ctypes.POINTER(ctypes.c_ubyte)
    lib.stbi_failure_reason.restype = ctypes.c_char_p
    return lib


stb = build_stb()


def stb_decode(data):
    w, h, n = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    p = stb.stbi_load_from_memory(data, len(data), ctypes.byref(w), ctypes.byref(h), ctypes.byref(n), 3)
    assert p, stb.stbi_failure_reason()
    a = np.ctypeslib.as_array(p, shape=(h.value, w.value, 3)).copy()
    stb.stbi_image_free(p)
    return a


# ---- the CLIP transform, as clip.load builds it ---------------------------------------------
def clip_transform(n):
    return transforms.Compose([
        transforms.Resize(n, interpolation=InterpolationMode.BICUBIC),
        transforms.CenterCrop(n),
        lambda im: im.convert("RGB"),
        transforms.ToTensor(),
        transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])


def pil(a):
    """[H, W, C] uint8 as a PIL image: C = 1 -> L, 3 -> RGB, 4 -> CMYK (resampled per channel)."""
    if a.shape[2] == 1:
        return Image.fromarray(a[:, :, 0], "L")
    return Image.fromarray(a, {3: "RGB", 4: "CMYK"}[a.shape[2]])


def resized(a, h, w, filt):
    r = np.array(pil(a).resize((w, h), {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[filt]))
    return r.reshape(h, w, a.shape[2])


# ---- the real image -------------------------------------------------------------------------
ade1 = stb_decode((ADE / "images" / "ADE_val_00000001.jpg").read_bytes())
out["ade1.stb_row_sums"] = t(ade1.astype(np.int32).sum(axis=1, dtype=np.int32))
for filt, h, w in [("bicubic", 29, 37), ("bicubic", 64, 96), ("bicubic", 4, 5), ("bilinear", 40, 50)]:
    out[f"resize.{filt}.ade1.{h}x{w}"] = t(resized(ade1, h, w, filt))
for n in (32, 64):
    out[f"preprocess.ade1.{n}"] = clip_transform(n)(Image.fromarray(ade1))

jpg3 = (ADE / "images" / "ADE_val_00000003.jpg").read_bytes()
pil3 = np.array(Image.open(io.BytesIO(jpg3)).convert("RGB"))
rows = np.arange(0, pil3.shape[0], 12)
out["ade3.pil_rows"] = t(pil3[rows])
out["ade3.pil_row_index"] = t(rows.astype(np.int64))
out["ade3.label_rows"] = t(np.array(Image.open(ADE / "annotations" / "ADE_val_00000003.png"))[::2])
jpeg_stats = {}
for i in (1, 2, 3):
    data = (ADE / "images" / f"ADE_val_0000000{i}.jpg").read_bytes()
    d = np.abs(stb_decode(data).astype(int) - np.array(Image.open(io.BytesIO(data)).convert("RGB")))
    jpeg_stats[f"ade{i}"] = f"max {d.max()}, differing {100 * (d > 0).mean():.2f}%"

# ---- synthetic images -----------------------------------------------------------------------
def smooth(h, w, c=3):
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 255 / max(w - 1, 1)), (y * 255 / max(h - 1, 1)), ((x + y) * 97 % 256)], -1)
    base = np.concatenate([base] * ((c + 2) // 3), -1)[:, :, :c]
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def noise(h, w, c=3):
    return rng.integers(0, 256, (h, w, c), dtype=np.uint8)


imgs = {
    "noise": noise(17, 23), "smooth": smooth(21, 33), "tall": noise(40, 7), "wide": smooth(7, 40),
    "small": noise(5, 9), "row": noise(1, 13), "col": noise(11, 1), "grey": noise(9, 11, 1),
    "cmyk": noise(9, 11, 4), "odd1": noise(17, 16), "odd3": noise(19, 16), "odd5": smooth(21, 16),
    "square": noise(16, 16), "dot": noise(1, 1),
}
for k, a in imgs.items():
    out[f"img.{k}"] = t(a)

resizes = {
    "bicubic": {"noise": [(5, 7), (17, 11), (8, 23), (17, 23), (40, 50), (1, 1), (33, 12)],
                "smooth": [(10, 16), (50, 77), (21, 5)], "tall": [(13, 3), (91, 16)], "wide": [(3, 13)],
                "small": [(16, 28), (2, 3)], "row": [(3, 5), (1, 4)], "col": [(4, 1), (5, 2)],
                "grey": [(4, 5), (20, 23)], "cmyk": [(4, 5), (13, 6)], "dot": [(3, 2)]},
    "bilinear": {"noise": [(5, 7), (40, 50), (17, 11)], "smooth": [(10, 16)], "tall": [(13, 3)],
                 "grey": [(4, 5)]},
}
for filt, per in resizes.items():
    for k, sizes in per.items():
        for h, w in sizes:
            out[f"resize.{filt}.{k}.{h}x{w}"] = t(resized(imgs[k], h, w, filt))

for k, n in [("tall", 16), ("wide", 16), ("small", 16), ("odd1", 16), ("odd3", 16), ("odd5", 16),
             ("square", 16), ("dot", 4), ("noise", 8)]:
    out[f"preprocess.{k}.{n}"] = clip_transform(n)(Image.fromarray(imgs[k]))
for k, n in [("small", 12), ("tall", 12), ("wide", 9), ("odd3", 15), ("dot", 2)]:
    out[f"center_crop.{k}.{n}"] = t(np.array(F.center_crop(Image.fromarray(imgs[k]), n)))


# ---- encoded files --------------------------------------------------------------------------
def png_bytes(w, h, depth, ctype, rows, extra=(), interlaced=None):
    """A PNG from raw scanlines (filter 0), for formats PIL does not write."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + r for r in rows) if interlaced is None else interlaced
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0 if interlaced is None else 1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + b"".join(chunk(k, d) for k, d in extra)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def adam7(a):
    """Interlaced scanlines of an 8-bit [H, W, C] image."""
    raw = b""
    for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                           (0, 1, 1, 2)]:
        sub = a[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\x00" + r.tobytes() for r in sub)
    return raw


def pil_save(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def as_rgb(data):
    return np.array(Image.open(io.BytesIO(data)).convert("RGB"))


def add(fmt, case, data, rgb=None, label=None, rgb_pil=None):
    out[f"{fmt}.{case}.bytes"] = t(np.frombuffer(data, dtype=np.uint8).copy())
    if rgb is not None:
        out[f"{fmt}.{case}.rgb"] = t(rgb)
    if rgb_pil is not None:
        out[f"{fmt}.{case}.rgb_pil"] = t(rgb_pil)
    if label is not None:
        out[f"{fmt}.{case}.label"] = t(label.astype(np.uint8))


a = noise(5, 7)
d = pil_save(Image.fromarray(a), "PNG")
add("png", "rgb8", d, rgb=as_rgb(d))
d = pil_save(Image.fromarray(noise(5, 7, 4), "RGBA"), "PNG")
add("png", "rgba8", d, rgb=as_rgb(d))
g = noise(6, 5, 1)[:, :, 0]
d = pil_save(Image.fromarray(g, "L"), "PNG")
add("png", "grey8", d, rgb=as_rgb(d), label=np.array(Image.open(io.BytesIO(d))))
d = pil_save(Image.fromarray(noise(6, 5, 2), "LA"), "PNG")
add("png", "la8", d, rgb=as_rgb(d), label=np.array(Image.open(io.BytesIO(d)))[:, :, 0])
d = pil_save(Image.fromarray(g, "L"), "PNG", transparency=int(g[0, 0]))
add("png", "grey8_trns", d, rgb=as_rgb(d), label=np.array(Image.open(io.BytesIO(d))))
idx = rng.integers(0, 6, (7, 9), dtype=np.uint8)
p = Image.fromarray(idx, "P")
p.putpalette([200, 10, 10, 0, 0, 0, 0, 0, 0, 10, 200, 10, 200, 10, 10, 5, 5, 250])  # duplicate colours
d = pil_save(p, "PNG", transparency=bytes([255, 0, 128, 255, 255, 7]))
add("png", "palette8", d, rgb=as_rgb(d), label=np.array(Image.open(io.BytesIO(d))))
d = pil_save(p, "PNG", bits=4)
add("png", "palette4", d, rgb=as_rgb(d), label=np.array(Image.open(io.BytesIO(d))))
d = png_bytes(4, 1, 8, 3, [bytes([0, 1, 2, 5])], [(b"PLTE", bytes([10, 20, 30, 40, 50, 60, 70, 80, 90]))])
add("png", "palette_short", d, rgb=as_rgb(d), label=np.array(Image.open(io.BytesIO(d))))
bits = rng.integers(0, 2, (5, 11), dtype=np.uint8)
d = pil_save(Image.fromarray(bits * 255, "L").convert("1"), "PNG")
add("png", "bits1", d, rgb=as_rgb(d), label=np.array(Image.open(io.BytesIO(d))).astype(np.uint8))
q = rng.integers(0, 4, (3, 8), dtype=np.uint8)  # 2-bit grey: PIL scales to 0..255, a label keeps 0..3
d = png_bytes(8, 3, 2, 0, [bytes([r[0] << 6 | r[1] << 4 | r[2] << 2 | r[3], r[4] << 6 | r[5] << 4 | r[6] << 2 | r[7]])
                           for r in q])
add("png", "grey2", d, rgb=as_rgb(d), label=q)
v = rng.integers(0, 256, (4, 6)).astype(">u2")  # 16-bit grey that fits 8 bits
d = png_bytes(6, 4, 16, 0, [r.tobytes() for r in v])
add("png", "grey16_small", d, rgb=np.repeat((v >> 8).astype(np.uint8)[:, :, None], 3, 2), label=np.array(Image.open(io.BytesIO(d))),
    rgb_pil=as_rgb(d))
v = rng.integers(0, 65536, (4, 6)).astype(">u2")
d = png_bytes(6, 4, 16, 0, [r.tobytes() for r in v])
add("png", "grey16", d, rgb=np.repeat((v >> 8).astype(np.uint8)[:, :, None], 3, 2), rgb_pil=as_rgb(d))
v = rng.integers(0, 65536, (3, 5, 3)).astype(">u2")
d = png_bytes(5, 3, 16, 2, [r.tobytes() for r in v])
add("png", "rgb16", d, rgb=as_rgb(d))
assert (as_rgb(d) == v >> 8).all()
v = rng.integers(0, 65536, (3, 5, 4)).astype(">u2")
d = png_bytes(5, 3, 16, 6, [r.tobytes() for r in v])
add("png", "rgba16", d, rgb=as_rgb(d))
assert (as_rgb(d) == v[:, :, :3] >> 8).all()
c = noise(4, 6, 1)
d = pil_save(Image.fromarray(np.repeat(c, 3, 2)), "PNG")
add("png", "rgb_grey", d, rgb=as_rgb(d), label=c[:, :, 0])
a = noise(13, 11)
d = png_bytes(11, 13, 8, 2, None, interlaced=adam7(a))
assert (as_rgb(d) == a).all()
add("png", "interlaced", d, rgb=a)

for case, im, kw in [("q444", smooth(16, 24), dict(subsampling=0)), ("q420", smooth(17, 23), dict(subsampling=2)),
                     ("q422", smooth(16, 21), dict(subsampling=1)), ("q422_even", noise(8, 22), dict(subsampling=1)),
                     ("progressive", smooth(19, 22), dict(subsampling=2, progressive=True))]:
    d = pil_save(Image.fromarray(im), "JPEG", quality=90, **kw)
    add("jpeg", case, d, rgb_pil=as_rgb(d))
d = pil_save(Image.fromarray(smooth(15, 18, 1)[:, :, 0], "L"), "JPEG", quality=90)
add("jpeg", "grey", d, rgb_pil=as_rgb(d))

d = pil_save(Image.fromarray(noise(5, 7)), "BMP")
add("bmp", "rgb24", d, rgb=as_rgb(d))
d = pil_save(p, "BMP")
add("bmp", "palette8", d, rgb=as_rgb(d))

save("clip_preprocess", out, metadata={
    "pillow": PIL.__version__, "torchvision": torchvision.__version__,
    "stb_vs_libjpeg": "; ".join(f"{k}: {v}" for k, v in jpeg_stats.items()),
})
print("stb vs PIL on the ADE20K samples:", jpeg_stats)
