"""Fixtures for weft's PyTorch archive reader (include/weft/io/torch_archive.hpp).

Writes small archives to tests/reference/data/torch_archive/ and the values their tensors must
read as to tests/reference/data/torch_archive.safetensors (keys "<archive>/<tensor name>"):

  state.pt          torch.save of a state dict: fp32, fp16, bf16, fp64, int64, int32, uint8, bool,
                    a scalar, a Parameter, a transposed (non-contiguous) view, two views of one storage at offsets
  script.pt         torch.jit.save of a scripted module with nested submodules, a Sequential,
                    a parameter and buffers; script_fp16.pt the same module in fp16
  zip64.pt          state.pt's entries rewritten in reverse order with ZIP64 records everywhere
  bad_opcode.pt     a data.pkl with an opcode PyTorch never writes (INT, 0x49)
  bad_global.pt     a data.pkl that names os.system
  wrong_size.pt     state.pt with one storage entry 4 bytes short
  deflated_pkl.pt   state.pt with data.pkl deflated
  graph_bomb.pt     a 200-byte data.pkl whose tuples share children: 2^40 paths from the root

Run with /usr/bin/python3 tests/reference/torch_archive.py (Debian's python3-torch).
"""
import pathlib
import struct
import zipfile
import zlib

import torch

from fixture import save, seeded

OUT = pathlib.Path(__file__).resolve().parent / "data" / "torch_archive"


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.register_buffer("steps", torch.arange(4))

    def forward(self, x):
        return self.lin(x)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.scale = torch.nn.Parameter(torch.randn(2, 3))
        self.head = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))

    def forward(self, x):
        return self.head(self.block(x + self.scale))


def read_zip(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip(path, entries, zip64=False, deflate=()):
    """A minimal ZIP writer: stored entries (deflated for names in `deflate`); with zip64 every
    size and offset goes through ZIP64 extra fields and the ZIP64 end records."""
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        raw = name.encode()
        method = 8 if name in deflate else 0
        body = data
        if method:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            body = c.compress(data) + c.flush()
        crc = zlib.crc32(data)
        offset = len(out)
        if zip64:
            extra = struct.pack("<HHQQ", 1, 16, len(data), len(body))
            out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                               len(raw), len(extra)) + raw + extra + body
            cextra = struct.pack("<HHQQQ", 1, 24, len(data), len(body), offset)
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 0, crc, 0xFFFFFFFF,
                                   0xFFFFFFFF, len(raw), len(cextra), 0, 0, 0, 0, 0xFFFFFFFF) + raw + cextra
        else:
            out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(body), len(data),
                               len(raw), 0) + raw + body
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, len(body),
                                   len(data), len(raw), 0, 0, 0, 0, 0, offset) + raw
    cd_offset = len(out)
    out += central
    n = len(entries)
    if zip64:
        z64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central), cd_offset)
        out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), cd_offset, 0)
    path.write_bytes(bytes(out))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    expected = {}
    seeded()
    torch.set_default_dtype(torch.float32)  # the archives hold fp32 like real checkpoints
    base = torch.randn(12)
    state = {
        "fp32": torch.randn(3, 4),
        "fp16": torch.randn(5).half(),
        "bf16": torch.randn(2, 2).bfloat16(),
        "fp64": torch.randn(2, 3, dtype=torch.float64),
        "int64": torch.randint(-1000, 1000, (2, 3)),
        "int32": torch.randint(-1000, 1000, (3,), dtype=torch.int32),
        "uint8": torch.randint(0, 255, (4,), dtype=torch.uint8),
        "bool": torch.rand(5) > 0.5,
        "scalar": torch.tensor(2.5),
        "param": torch.nn.Parameter(torch.tensor([1.5, -2.25])),  # via _rebuild_parameter; no RNG draw
        "transposed": torch.randn(4, 3).t(),             # strides (1, 3)
        "shared_a": base[2:8].view(2, 3),                # offset 2 into base's storage
        "shared_b": base[5:].as_strided((3, 2), (1, 3)),  # offset 5, overlapping shared_a, strided
    }
    torch.save(state, OUT / "state.pt")
    for k, v in state.items():
        expected[f"state/{k}"] = v

    net = Net()
    script = torch.jit.script(net)
    torch.jit.save(script, OUT / "script.pt")
    for k, v in script.state_dict().items():
        expected[f"script/{k}"] = v
    script16 = torch.jit.script(Net().half())
    torch.jit.save(script16, OUT / "script_fp16.pt")
    for k, v in script16.state_dict().items():
        expected[f"script_fp16/{k}"] = v
    save("torch_archive", expected)

    entries = read_zip(OUT / "state.pt")
    write_zip(OUT / "zip64.pt", list(reversed(entries)), zip64=True)
    pkl = next(n for n, _ in entries if n.endswith("/data.pkl"))
    write_zip(OUT / "deflated_pkl.pt", entries, deflate={pkl})
    # INT (0x49), protocol-0 text integers: valid pickle that PyTorch never emits.
    write_zip(OUT / "bad_opcode.pt", [("archive/data.pkl", b"\x80\x02I5\n.")])
    write_zip(OUT / "bad_global.pt", [("archive/data.pkl", b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.")])
    bomb = bytearray(b"\x80\x02Nq\x00")  # None, memo 0
    for k in range(1, 41):                  # memo k = (memo k-1, memo k-1), left on the stack
        bomb += b"h" + bytes([k - 1]) + b"\x86q" + bytes([k])
    write_zip(OUT / "graph_bomb.pt", [("archive/data.pkl", bytes(bomb) + b".")])
    key = next(n for n, _ in entries if "/data/" in n)
    write_zip(OUT / "wrong_size.pt", [(n, d[:-4] if n == key else d) for n, d in entries])


if __name__ == "__main__":
    main()
