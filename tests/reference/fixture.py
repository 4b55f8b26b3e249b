"""Writes PyTorch reference values for weft's tests as small safetensors files.

Each tests/reference/<topic>.py script builds inputs with a fixed seed, runs PyTorch, and calls
save("<name>", {...}) with inputs, outputs and gradients. The files land in tests/reference/data/
and are committed; the C++ tests read them with weft's own safetensors reader (CI needs no
Python). Regenerate with Debian's interpreter, which has python3-torch:

    /usr/bin/python3 tests/reference/<topic>.py
"""
import json
import pathlib
import struct

import torch

DATA = pathlib.Path(__file__).resolve().parent / "data"

_DTYPES = {
    torch.float32: "F32",
    torch.float64: "F64",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def save(name, tensors, metadata=None):
    """Writes tensors (a dict name -> torch.Tensor) to data/<name>.safetensors."""
    DATA.mkdir(parents=True, exist_ok=True)
    header = {}
    blobs = []
    offset = 0
    for key in sorted(tensors):
        t = tensors[key].detach().contiguous().cpu()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().tobytes()
        else:
            raw = t.numpy().tobytes()
        header[key] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                       "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"generator": "tests/reference", "torch": torch.__version__,
                              **(metadata or {})}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    path = DATA / f"{name}.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    print(f"wrote {path.relative_to(DATA.parent.parent.parent)} ({path.stat().st_size} bytes)")


def seeded(seed=0):
    """A generator for reproducible inputs (and double precision by default)."""
    torch.manual_seed(seed)
    torch.set_default_dtype(torch.float64)
    return torch.Generator().manual_seed(seed)


def grads(out, inputs, seed=1):
    """Backward of sum(out * r) for fixed random r; returns (r, [grad of each input])."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(out.shape, generator=g, dtype=out.dtype)
    gs = torch.autograd.grad((out * r).sum(), inputs, allow_unused=True)
    return r, [x if x is not None else torch.zeros_like(i) for x, i in zip(gs, inputs)]
