#!/usr/bin/env python3
"""Prints the device check's one table: weft's GPU benchmarks beside PyTorch's, case by case.

    scripts/device-table.py --weft bench-cuda.json bench-cuda-vit.json ... \\
                            --torch torch-ops.jsonl torch-denseclip.jsonl

--weft takes Google Benchmark JSON files (weft-bench-cuda*, --benchmark_format=json); a file cut
short by a time limit is read up to its last complete case. --torch takes the JSON lines of
bench/gpu/*.py. Missing or unreadable files are named and skipped: the table shows what there is.

Rows pair cases by name. A weft case <case>/<variant> (gemm .../cublas: a direct cuBLAS call;
vit .../class_only: weft's own forward) is compared with PyTorch's <case>. Columns:

  weft ms, torch ms   median time of one case body (one GEMM, one attention, one training step)
  weft/torch          weft's time over PyTorch's: below 1, weft is faster
  TFLOP/s             flop / time; flop is the case's count (weft's, or PyTorch's flop counter's
                      where weft gives none: marked c); bandwidth cases show GB/s instead
  MFU                 TFLOP/s over the GPU's dense peak for the case's dtype from the datasheet
                      (--peak-bf16, --peak-fp32: H200 989.4 and 66.9 TFLOP/s); for bandwidth
                      cases, the fraction of cudaMemcpy's GB/s (marked m)
  /meas               weft's TFLOP/s over the measured peak: cuBLAS's own rate on the 8192³
                      GEMM of the dtype in the same run (printed above the table)
  peak MiB            the case's peak GPU memory, weft / PyTorch: weft's caching allocator
                      (block sizes as it rounds them) and torch.cuda.max_memory_allocated

Standard library only; exit status 0 whatever the data (the device check decides PASS/FAIL).
"""
import argparse
import json
import math
import os
import re
import sys

DATASHEET = {"bf16": 989.4, "fp32": 66.9}  # H200 SXM dense TFLOP/s (bf16 tensor cores; fp32 without)
PEAK_SHAPE = "8192x8192x8192"
VARIANTS = ("cublas", "class_only")
_GB_SUFFIX = re.compile(r"/(iterations|repeats|threads|min_time|min_warmup_time):[^/]+|/(manual_time|real_time)$")


def load_gbench(path):
    """The benchmarks of a Google Benchmark JSON file, salvaging a file cut short."""
    with open(path) as f:
        text = f.read()
    try:
        return json.loads(text).get("benchmarks", []), None
    except ValueError:
        pass
    cut = text[: text.rfind("}") + 1]
    for suffix in ("]}", "\n]\n}", "}"):
        try:
            return json.loads(cut + suffix).get("benchmarks", []), "cut short; read up to its last complete case"
        except ValueError:
            continue
    return [], "unreadable"


def clean_name(name):
    name = name.replace("/manual_time", "").replace("/real_time", "")
    return _GB_SUFFIX.sub("", name)


def to_ms(value, unit):
    return value * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def read_weft(paths, notes):
    """{case: row} from Google Benchmark files; medians of repetitions preferred."""
    rows, medians = {}, set()
    for path in paths:
        if not os.path.exists(path):
            notes.append(f"weft: {path} missing")
            continue
        runs, problem = load_gbench(path)
        if problem:
            notes.append(f"weft: {os.path.basename(path)} {problem}")
        for b in runs:
            aggregate = b.get("run_type") == "aggregate"
            if aggregate and b.get("aggregate_name") != "median":
                continue
            name = clean_name(b.get("run_name", b.get("name", "?")))
            if name in medians and not aggregate:
                continue
            if aggregate:
                medians.add(name)
            row = {"source": os.path.basename(path)}
            if b.get("error_occurred"):
                row["error"] = b.get("error_message", "error")
            else:
                row["ms"] = b["median_ms"] if "median_ms" in b else to_ms(b["real_time"], b.get("time_unit", "ns"))
                for key in ("flop", "peak_mib", "bytes_per_second", "params", "cuda_mallocs"):
                    if key in b:
                        row[key] = b[key]
            rows[name] = row
    return rows


def read_torch(paths, notes):
    rows = {}
    for path in paths:
        if not os.path.exists(path):
            notes.append(f"torch: {path} missing")
            continue
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                try:
                    r = json.loads(line)
                except ValueError:
                    notes.append(f"torch: {os.path.basename(path)}: a line that is not JSON")
                    continue
                if "case" in r:
                    rows[r["case"]] = r
    return rows


def dtype_of(case):
    for part in case.split("/"):
        if part in DATASHEET:
            return part
    return None


def counterpart(case, torch_rows):
    if case in torch_rows:
        return torch_rows[case]
    head, _, last = case.rpartition("/")
    if last in VARIANTS and head in torch_rows:
        return torch_rows[head]
    return None


def tflops(flop, ms):
    if not flop or not ms or ms <= 0:
        return None
    return flop / (ms * 1e-3) / 1e12


def fmt(x, spec, width, empty="-"):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return f"{empty:>{width}}"
    return f"{x:{width}{spec}}"


def measured_peaks(weft, torch_rows):
    peaks = {}
    for dtype in DATASHEET:
        case = f"gemm/{dtype}/{PEAK_SHAPE}"
        w = weft.get(case + "/cublas", {})
        t = torch_rows.get(case, {})
        if w.get("ms"):
            peaks[dtype] = (tflops(w.get("flop"), w["ms"]), "cuBLAS direct, weft-bench-cuda")
        elif t.get("ms"):
            peaks[dtype] = (tflops(t.get("flop"), t["ms"]), "torch.matmul (weft's case did not run)")
    return peaks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weft", nargs="*", default=[])
    ap.add_argument("--torch", nargs="*", default=[])
    ap.add_argument("--peak-bf16", type=float, default=DATASHEET["bf16"])
    ap.add_argument("--peak-fp32", type=float, default=DATASHEET["fp32"])
    args = ap.parse_args()
    datasheet = {"bf16": args.peak_bf16, "fp32": args.peak_fp32}

    notes = []
    weft = read_weft(args.weft, notes)
    torch_rows = read_torch(args.torch, notes)
    device = next((r["device"] for r in torch_rows.values() if r.get("device")), None)
    versions = sorted({r["torch"] for r in torch_rows.values() if r.get("torch")})

    print(f"GPU: {device or 'unknown (no PyTorch results)'}" + (f"; PyTorch {', '.join(versions)}" if versions else ""))
    peaks = measured_peaks(weft, torch_rows)
    for dtype, sheet in datasheet.items():
        if dtype in peaks and peaks[dtype][0]:
            rate, how = peaks[dtype]
            print(f"peak {dtype}: measured {rate:.1f} TFLOP/s ({PEAK_SHAPE} GEMM, {how}) = {rate / sheet:.2f} "
                  f"of the datasheet's {sheet:g} dense")
        else:
            print(f"peak {dtype}: not measured in this run; datasheet {sheet:g} TFLOP/s dense")

    memcpy = next((r["bytes_per_second"] for c, r in weft.items() if "memcpy" in c and r.get("bytes_per_second")), None)
    # weft's cases in their order, then PyTorch's that have no weft case of the same name.
    order = list(weft) + [c for c in torch_rows if c not in weft]

    width = max([44] + [len(c) for c in order])
    header = (f"{'case':<{width}} {'weft ms':>9} {'torch ms':>9} {'weft/torch':>10} {'TFLOP/s weft':>12} "
              f"{'torch':>7} {'MFU weft':>8} {'torch':>6} {'/meas':>6} {'peak MiB weft/torch':>19}")
    print(header)
    print("-" * len(header))
    errors = []
    for case in order:
        w = weft.get(case, {})
        t = counterpart(case, torch_rows) if case in weft else torch_rows.get(case, {})
        t = t or {}
        dtype = dtype_of(case)
        w_ms, t_ms = w.get("ms"), t.get("ms")
        flop, mark = w.get("flop"), " "
        if not flop and t.get("flop"):
            flop, mark = t["flop"], "c"
        ratio = w_ms / t_ms if w_ms and t_ms else None
        if "bytes_per_second" in w:  # a bandwidth case
            gbs = w["bytes_per_second"] / 1e9
            w_rate = f"{gbs:8.0f} GB/s"
            frac = w["bytes_per_second"] / memcpy if memcpy else None
            mfu_w = (fmt(frac, ".2f", 7) + "m") if frac else fmt(None, "", 8)
            t_rate, mfu_t, meas = fmt(None, "", 7), fmt(None, "", 6), fmt(None, "", 6)
        else:
            rw, rt = tflops(flop, w_ms), tflops(flop, t_ms)
            sheet = datasheet.get(dtype)
            peak = peaks.get(dtype, (None, ""))[0]
            w_rate = fmt(rw, ".1f", 11) + (mark if rw is not None else " ")
            t_rate = fmt(rt, ".1f", 7)
            mfu_w = fmt(rw / sheet if rw and sheet else None, ".3f", 8)
            mfu_t = fmt(rt / sheet if rt and sheet else None, ".3f", 6)
            meas = fmt(rw / peak if rw and peak else None, ".2f", 6)
        w_peak, t_peak = w.get("peak_mib"), t.get("peak_mib")
        mem = f"{fmt(w_peak, '.0f', 9)} / {fmt(t_peak, '.0f', 7)}" if (w_peak or t_peak) else f"{'-':>19}"
        w_cell = "error" if "error" in w else fmt(w_ms, ".3f", 9)
        t_cell = "error" if "error" in t else fmt(t_ms, ".3f", 9)
        print(f"{case:<{width}} {w_cell:>9} {t_cell:>9} {fmt(ratio, '.2f', 10)} {w_rate:>12} {t_rate:>7} "
              f"{mfu_w:>8} {mfu_t:>6} {meas:>6} {mem:>19}")
        for side, r in (("weft", w), ("torch", t)):
            if "error" in r:
                errors.append((case, side, r["error"]))
        if w.get("params") and t.get("params") and not case.endswith(VARIANTS):
            same = int(w["params"]) == int(t["params"])
            notes.append(f"{case}: {int(w['params'])} parameters in weft's model, {int(t['params'])} in PyTorch's"
                         + ("" if same else " (the models differ)"))
        if "cuda_mallocs" in w:  # issue 6: no cudaMalloc in the steady-state step
            n = int(w["cuda_mallocs"])
            notes.append(f"{case}: {n} cudaMalloc call{'' if n == 1 else 's'} in weft's steady-state steps"
                         + ("" if n == 0 else " (the caching allocator should serve them all)"))
        if t.get("flop_counted") and w.get("flop"):
            notes.append(f"{case}: flop {w['flop']:.4g} as weft counts it, {t['flop_counted']:.4g} by "
                         f"torch.utils.flop_counter")

    for case, w in weft.items():
        if case.endswith("/cublas"):
            base = weft.get(case[: -len("/cublas")], {})
            if base.get("ms") and w.get("ms"):
                notes.append(f"{case[: -len('/cublas')]}: weft::matmul / cuBLAS direct = {base['ms'] / w['ms']:.2f}")
    if not order:
        print("(no results)")
    print("weft/torch < 1: weft faster. c: FLOPs from PyTorch's flop counter. m: fraction of cudaMemcpy's GB/s.")
    print("Times are medians of CUDA-event timings (bench/cuda/timing.cuh, bench/gpu/common.py).")
    for line in notes:
        print(f"note: {line}")
    # One line per distinct message: a missing GPU or kernel fails every case the same way.
    by_message = {}
    for case, side, message in errors:
        by_message.setdefault((side, message), []).append(case)
    for (side, message), cases in by_message.items():
        which = cases[0] if len(cases) == 1 else f"{cases[0]} and {len(cases) - 1} more"
        print(f"error ({side}): {which}: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
