"""Timing and reporting shared by PyTorch's side of the GPU benchmarks (bench/gpu/*.py).

Each case prints one JSON line on stdout, which scripts/device-table.py pairs with weft's case of
the same name (bench/cuda/*.cu):

    {"case": "gemm/bf16/4096x4096x4096", "side": "torch", "ms": 0.21, "flop": 1.37e11,
     "peak_mib": 96.0, "iters": 40, ...}

Timing follows bench/cuda/timing.cuh: one timed iteration records a CUDA event, runs the body
`inner` times, records a second event and waits for it; the iteration's time is the elapsed
time divided by `inner`. Untimed warm-up bodies run first. "ms" is the median over the timed
iterations. Iterations continue until they add up to `min_time` seconds (at least `min_iters`),
as Google Benchmark's --benchmark_min_time does on weft's side, or exactly `iters` when given.

"peak_mib" is torch.cuda.max_memory_allocated since the case reset it (before it made its
inputs or model), in MiB. On the CPU (the --device cpu self-checks) times come from
time.perf_counter and there is no peak.
"""
import json
import math
import statistics
import sys
import time

import torch


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device):
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device):
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def time_body(body, device, *, inner=1, warmup=1, min_time=0.2, min_iters=5, iters=None, max_iters=2000):
    """Per-body times in ms of the timed iterations (see the module's comment)."""
    for _ in range(warmup):
        body()
    synchronize(device)
    times = []
    total = 0.0
    while True:
        if iters is not None:
            if len(times) >= iters:
                break
        elif (total >= min_time and len(times) >= min_iters) or len(times) >= max_iters:
            break
        if device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            stop = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                body()
            stop.record()
            stop.synchronize()
            ms = start.elapsed_time(stop) / inner
        else:
            t0 = time.perf_counter()
            for _ in range(inner):
                body()
            ms = (time.perf_counter() - t0) * 1e3 / inner
        times.append(ms)
        total += ms * inner * 1e-3
    return times


def emit(case, times, device, *, flop=None, peak=None, **extra):
    """Prints the case's JSON line (stdout) and a readable line (stderr)."""
    ms = statistics.median(times) if times else None
    row = {
        "case": case,
        "side": "torch",
        "ms": ms,
        "ms_min": min(times) if times else None,
        "iters": len(times),
        "flop": flop,
        "peak_mib": peak,
        "device": device_name(device),
        "torch": torch.__version__,
    }
    row.update(extra)
    print(json.dumps(row), flush=True)
    rate = f"{flop / (ms * 1e-3) / 1e12:8.1f} TFLOP/s" if flop and ms else ""
    mem = f"{peak:9.0f} MiB" if peak is not None else ""
    log(f"  {case:44s} {ms if ms is not None else float('nan'):10.3f} ms {rate} {mem}")


def emit_error(case, device, error):
    """A case that could not run: the table shows it as an error, not as missing."""
    print(json.dumps({"case": case, "side": "torch", "error": str(error)[:300], "device": device_name(device)}),
          flush=True)
    log(f"  {case:44s} error: {error}")


def run_case(case, device, fn):
    """Runs fn() -> None (it emits its own line); an exception becomes an error line, and the
    other cases still run."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
        emit_error(case, device, f"{type(e).__name__}: {e}")
        if device.type == "cuda":
            torch.cuda.empty_cache()


def counted_flop(step):
    """FLOPs of one call of step() as torch.utils.flop_counter counts them (matrix products,
    convolutions and attention, forward and backward), or None where this PyTorch lacks it."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return None
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            step()
        return float(counter.get_total_flops())
    except Exception as e:  # noqa: BLE001 - the count is a cross-check; the timing stands without it
        log(f"  (torch.utils.flop_counter failed: {type(e).__name__}: {e})")
        return None


def finite(x):
    return x is not None and math.isfinite(x)
