"""mmseg 0.19's segmentation metrics re-implemented in NumPy, as reference values for weft.

mmseg/core/evaluation/metrics.py: intersect_and_union (ignored pixels masked out, then
torch.histc(bins=K, min=0, max=K-1) of the intersection, the prediction and the label),
total_intersect_and_union (float64 sums over images), total_area_to_metrics (IoU = I/U,
Acc = I/label, aAcc = sum I / sum label; 0/0 = NaN) and CustomDataset.evaluate's nanmean for
mIoU and mAcc. Only NumPy is needed (no torch, no mmseg):

    /usr/bin/python3 tests/reference/metrics.py

writes tests/reference/data/metrics.safetensors. Two sets:
  small_*: K = 6, four maps of odd sizes with ignored pixels (255); class 4 is neither labelled
           nor predicted (IoU and Acc NaN), class 5 is only predicted (Acc NaN, IoU 0).
  ade_*:   K = 150, three maps in ADE20K's encoding (0 = other, k + 1 = class k), read with
           reduce_zero_label as mmseg's ADE20KDataset does.
"""
import json
import pathlib
import struct

import numpy as np

DATA = pathlib.Path(__file__).resolve().parent / "data"
_DTYPES = {np.dtype(np.float64): "F64", np.dtype(np.int64): "I64", np.dtype(np.uint8): "U8"}


def save(name, arrays):
    """Writes arrays (name -> numpy array) to data/<name>.safetensors."""
    header, blobs, offset = {}, [], 0
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        raw = a.tobytes()
        header[key] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"generator": "tests/reference/metrics.py", "numpy": np.__version__}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    path = DATA / f"{name}.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def histc(x, bins, lo, hi):
    """torch.histc on a float tensor: equal-width bins over [lo, hi], values outside dropped,
    the value hi counted in the last bin."""
    x = x.astype(np.float32)
    x = x[(x >= lo) & (x <= hi)]
    idx = ((x - np.float32(lo)) * np.float32(bins) / np.float32(hi - lo)).astype(np.int64)
    idx[idx == bins] = bins - 1
    return np.bincount(idx, minlength=bins).astype(np.float32)


def reduce_zero_label(label):
    label = label.copy()
    label[label == 0] = 255
    label = label - 1          # uint8: 255 -> 254
    label[label == 254] = 255
    return label


def intersect_and_union(pred, label, num_classes, ignore_index, reduce_zero=False):
    if reduce_zero:
        label = reduce_zero_label(label)
    mask = label != ignore_index
    pred = pred[mask]
    label = label[mask]
    intersect = pred[pred == label]
    area_intersect = histc(intersect, num_classes, 0, num_classes - 1)
    area_pred = histc(pred, num_classes, 0, num_classes - 1)
    area_label = histc(label, num_classes, 0, num_classes - 1)
    return area_intersect, area_pred + area_label - area_intersect, area_pred, area_label


def total_area_to_metrics(inter, union, pred, label):
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"aAcc": inter.sum() / label.sum(), "IoU": inter / union, "Acc": inter / label}


def make_set(prefix, preds, labels, num_classes, reduce_zero, out):
    totals = [np.zeros(num_classes, np.float64) for _ in range(4)]
    for i, (p, l) in enumerate(zip(preds, labels)):
        out[f"{prefix}_pred{i}"] = p
        out[f"{prefix}_label{i}"] = l
        areas = intersect_and_union(p, l, num_classes, 255, reduce_zero)
        for t, a in zip(totals, areas):
            t += a
        if i == 0:  # one image's histograms on their own, for intersect_and_union
            for key, a in zip(("intersect", "union", "pred_label", "label"), areas):
                out[f"{prefix}_image0_area_{key}"] = a.astype(np.float64)
    for key, t in zip(("intersect", "union", "pred_label", "label"), totals):
        out[f"{prefix}_area_{key}"] = t
    m = total_area_to_metrics(*totals)
    with np.errstate(invalid="ignore"):
        out[f"{prefix}_IoU"] = m["IoU"]
        out[f"{prefix}_Acc"] = m["Acc"]
        out[f"{prefix}_aAcc"] = np.array([m["aAcc"]])
        out[f"{prefix}_mIoU"] = np.array([np.nanmean(m["IoU"])])
        out[f"{prefix}_mAcc"] = np.array([np.nanmean(m["Acc"])])
    out[f"{prefix}_count"] = np.array([len(preds)], np.int64)


def main():
    rng = np.random.default_rng(20261129)
    out = {}

    # K = 6: classes 0..3 labelled and predicted, 4 nowhere, 5 only predicted.
    preds, labels = [], []
    for h, w in [(5, 7), (8, 3), (6, 6), (1, 9)]:
        label = rng.choice(np.array([0, 1, 2, 3], np.uint8), size=(h, w), p=[0.4, 0.3, 0.2, 0.1])
        label[rng.random((h, w)) < 0.2] = 255
        noise = rng.choice(np.array([0, 1, 2, 3, 5], np.uint8), size=(h, w))
        pred = np.where(rng.random((h, w)) < 0.55, np.where(label == 255, noise, label), noise).astype(np.uint8)
        preds.append(pred)
        labels.append(label)
    make_set("small", preds, labels, 6, False, out)

    # K = 150 in ADE20K's encoding: a few dozen classes present, about 10% "other" (0).
    present = rng.choice(150, size=30, replace=False)
    preds, labels = [], []
    for h, w in [(16, 20), (12, 9), (10, 14)]:
        cls = rng.choice(present, size=(h, w))
        encoded = (cls + 1).astype(np.uint8)
        encoded[rng.random((h, w)) < 0.1] = 0
        noise = rng.choice(present, size=(h, w))
        pred = np.where(rng.random((h, w)) < 0.6, cls, noise).astype(np.int64)
        preds.append(pred)
        labels.append(encoded)
    make_set("ade", preds, labels, 150, True, out)

    save("metrics", out)


if __name__ == "__main__":
    main()
