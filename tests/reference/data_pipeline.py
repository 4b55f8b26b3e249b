"""References for weft's segmentation data pipeline (tests/data): OpenCV-exact resizes and colour
conversions, mmseg's photometric steps, mmcv's normalisation and rescale rule, RandomCrop's
category-ratio test.

Regenerate with Debian's interpreter and python3-opencv (4.6) installed:

    /usr/bin/python3 tests/reference/data_pipeline.py

mmseg/mmcv are not installed; their few lines that matter are written out below, each as
mmseg 0.x / mmcv 1.x compute it (numpy float32 arithmetic, cv2 calls). Inputs are crops of the
real ADE20K sample decoded by cv2 (libjpeg): weft's stb decode differs by a few levels, so the
C++ tests take the stored crop as input instead of decoding the JPEG.

Contents (tensor names):
  crop.bgr                  U8 [64, 80, 3]  cv2.imread(ADE_val_00000001.jpg)[100:164, 150:230]
  crop.label                U8 [64, 80]     the raw annotation (0..150), same window
  resize.linear.<h>x<w>     U8 [h, w, 3]    cv2.resize(crop.bgr, (w, h), INTER_LINEAR)
  resize.nearest.<h>x<w>    U8 [h, w]       cv2.resize(crop.label, (w, h), INTER_NEAREST)
  hsv.crop                  U8 [64, 80, 3]  cv2.cvtColor(crop.bgr, COLOR_BGR2HSV)
  hsv.digest                I64 [256, 3]    for each B, sums over all (G, R) of H, S, V times
                                            (G * 256 + R + 1): all 2^24 colours, compactly
  hsv.grid_in / grid_bgr    U8 [N, 3]       every H < 180 with S, V on an 8-level grid, and
                                            cv2.cvtColor(COLOR_HSV2BGR) of it
  photo.<step>.<param>      U8 [32, 40, 3]  mmseg's step on crop.bgr[:32, :40] with that parameter
  normalize.<preset>        F32 [32, 40, 3] mmcv.imnormalize(crop.bgr[:32, :40], to_rgb=True), HWC RGB
  rescale.in / rescale.out  I64 [N, 4] / [N, 2]  (w, h, scale_long, scale_short) -> mmcv.rescale_size
  cropcat.boxes / accept    I64 [N, 4] / [N]     (y0, y1, x0, x1) on ADE_val_00000001's reduced
                                            label and RandomCrop's cat_max_ratio=0.75 verdict
"""
import pathlib

import cv2
import numpy as np
import torch

from fixture import save

SAMPLE = pathlib.Path("/work/shared/data/ade20k/sample")


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ---- mmseg / mmcv, as they compute ------------------------------------------------------------

def convert(img, alpha=1, beta=0):  # mmseg PhotoMetricDistortion.convert
    img = img.astype(np.float32) * alpha + beta
    img = np.clip(img, 0, 255)
    return img.astype(np.uint8)


def brightness(img, beta):
    return convert(img, beta=beta)


def contrast(img, alpha):
    return convert(img, alpha=alpha)


def saturation(img, alpha):
    img = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    img[:, :, 1] = convert(img[:, :, 1], alpha=alpha)
    return cv2.cvtColor(img, cv2.COLOR_HSV2BGR)


def hue(img, delta):
    img = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    img[:, :, 0] = (img[:, :, 0].astype(int) + delta) % 180
    return cv2.cvtColor(img, cv2.COLOR_HSV2BGR)


def imnormalize(img, mean, std):  # mmcv.imnormalize(img, mean, std, to_rgb=True)
    img = img.copy().astype(np.float32)
    mean = np.float64(np.array(mean).reshape(1, -1))
    stdinv = 1 / np.float64(np.array(std).reshape(1, -1))
    cv2.cvtColor(img, cv2.COLOR_BGR2RGB, img)
    cv2.subtract(img, mean, img)
    cv2.multiply(img, stdinv, img)
    return img


def rescale_size(w, h, scale):  # mmcv.rescale_size(old_size, scale: tuple)
    max_long_edge, max_short_edge = max(scale), min(scale)
    f = min(max_long_edge / max(h, w), max_short_edge / min(h, w))
    return int(w * float(f) + 0.5), int(h * float(f) + 0.5)


def cat_ok(seg, box, ratio=0.75, ignore=255):  # mmseg RandomCrop's test
    y0, y1, x0, x1 = box
    labels, cnt = np.unique(seg[y0:y1, x0:x1], return_counts=True)
    cnt = cnt[labels != ignore]
    return len(cnt) > 1 and np.max(cnt) / np.sum(cnt) < ratio


def main():
    out = {}
    img = cv2.imread(str(SAMPLE / "images/ADE_val_00000001.jpg"))
    ann = cv2.imread(str(SAMPLE / "annotations/ADE_val_00000001.png"), cv2.IMREAD_UNCHANGED)
    crop = np.ascontiguousarray(img[100:164, 150:230])
    lab = np.ascontiguousarray(ann[100:164, 150:230])
    out["crop.bgr"], out["crop.label"] = t(crop), t(lab)
    for h, w in [(37, 53), (32, 40), (64, 80), (75, 97), (5, 200), (128, 3)]:
        out[f"resize.linear.{h}x{w}"] = t(cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR))
        out[f"resize.nearest.{h}x{w}"] = t(cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST))

    out["hsv.crop"] = t(cv2.cvtColor(crop, cv2.COLOR_BGR2HSV))
    a = np.arange(1 << 24, dtype=np.int64)
    bgr = np.stack([(a >> 16) & 255, (a >> 8) & 255, a & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV).reshape(256, 65536, 3).astype(np.int64)
    weight = (np.arange(65536, dtype=np.int64) + 1).reshape(1, -1, 1)  # G * 256 + R + 1
    out["hsv.digest"] = t((hsv * weight).sum(1))
    levels = np.array([0, 1, 46, 115, 161, 200, 254, 255])
    hh, ss, vv = np.meshgrid(np.arange(180), levels, levels, indexing="ij")
    grid = np.stack([hh, ss, vv], -1).reshape(-1, 1, 3).astype(np.uint8)
    out["hsv.grid_in"] = t(grid.reshape(-1, 3))
    out["hsv.grid_bgr"] = t(cv2.cvtColor(grid, cv2.COLOR_HSV2BGR).reshape(-1, 3))

    small = np.ascontiguousarray(crop[:32, :40])
    for beta in [17.3, -25.7, 31.99]:
        out[f"photo.brightness.{beta}"] = t(brightness(small, beta))
    for alpha in [0.63, 1.41]:
        out[f"photo.contrast.{alpha}"] = t(contrast(small, alpha))
    for alpha in [0.55, 1.37]:
        out[f"photo.saturation.{alpha}"] = t(saturation(small.copy(), alpha))
    for delta in [11, -18]:
        out[f"photo.hue.{delta}"] = t(hue(small.copy(), delta))
    out["normalize.clip"] = t(imnormalize(small, [122.7709383, 116.7460125, 104.09373615],
                                          [68.5005327, 66.6321579, 70.32316305]))
    out["normalize.imagenet"] = t(imnormalize(small, [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]))

    rng = np.random.RandomState(0)
    cases = []
    for h, w in [(512, 683), (683, 512), (375, 500), (256, 256), (1080, 1920), (97, 3000)]:
        for ratio in [0.5, 0.731, 1.0, 1.337, 1.999, rng.random_sample() * 1.5 + 0.5]:
            scale = (int(2048 * ratio), int(512 * ratio))
            cases.append((w, h, scale[0], scale[1]))
        cases.append((w, h, 2048, 640))
    out["rescale.in"] = t(np.array(cases, dtype=np.int64))
    out["rescale.out"] = t(np.array([rescale_size(w, h, (a, b)) for w, h, a, b in cases], dtype=np.int64))

    seg = ann.astype(np.int64)
    seg = np.where(seg == 0, 255, seg - 1)  # reduce_zero_label
    boxes, verdicts = [], []
    H, W = seg.shape
    for _ in range(64):
        ch, cw = rng.randint(16, 300), rng.randint(16, 300)
        y0, x0 = rng.randint(0, H - ch + 1), rng.randint(0, W - cw + 1)
        box = (y0, y0 + ch, x0, x0 + cw)
        boxes.append(box)
        verdicts.append(int(cat_ok(seg, box)))
    out["cropcat.boxes"] = t(np.array(boxes, dtype=np.int64))
    out["cropcat.accept"] = t(np.array(verdicts, dtype=np.int64))
    save("data_pipeline", out, {"opencv": cv2.__version__, "numpy": np.__version__})
    print("accepted boxes:", sum(verdicts), "of", len(verdicts))


if __name__ == "__main__":
    main()
